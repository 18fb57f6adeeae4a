"""Maximise figures of merit with optax: bounds, norm constraints, vmapped restarts.

:func:`optimize` maximises any differentiable ``objective(params)`` over a
pytree of parameters (a dict of arrays).  Constraints are handled by
reparametrisation, so Adam and L-BFGS both run unconstrained in a latent
variable ``z`` and every iterate is feasible:

=============== ============================================ =====================================
constraint      map ``z -> x``                               use
=============== ============================================ =====================================
``Box(lo, hi)`` ``lo + (hi - lo) sigmoid(z)``;               bounded couplings, ``|lambda| <= 1``
                ``lo + softplus(z)`` one-sided
``Sphere(r)``   ``r z / |z|``                                fixed total coupling ``|g| = r``
``Ball(r)``     ``r tanh(|z|/r) z / |z|``                    ``|g| <= r``
``Simplex(s)``  ``s softmax(z)``                             ``g_i >= 0``, ``sum g_i = s``
=============== ============================================ =====================================

Restarts are vmapped (one compiled step for all of them): restart 0 starts
at the given point, the others at random feasible points.  The history of
every restart's objective is returned as plain arrays.

:func:`optimize_model` wraps it for a battery model's leaves and the
figures of merit ``max_power``, ``energy_at`` (``E_B(tau)``), ``ergotropy``
(at ``tau``), or a weighted sum of them.
"""

from __future__ import annotations

import math
import sys
import warnings
from collections.abc import Callable, Mapping, Sequence

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optax

__all__ = ["Box", "Sphere", "Ball", "Simplex", "optimize", "optimize_model", "OptimizeResult", "model_objective",
           "bracketed_root"]


class Box(eqx.Module):
    """``lo <= x <= hi`` elementwise (either side may be ``None``)."""

    lo: float | None = None
    hi: float | None = None

    def __check_init__(self):
        if self.lo is not None and self.hi is not None and not self.lo < self.hi:
            raise ValueError(f"Box needs lo < hi, got ({self.lo}, {self.hi})")

    def forward(self, z):
        if self.lo is not None and self.hi is not None:
            return self.lo + (self.hi - self.lo) * jax.nn.sigmoid(z)
        if self.lo is not None:
            return self.lo + jax.nn.softplus(z)
        if self.hi is not None:
            return self.hi - jax.nn.softplus(z)
        return z

    def inverse(self, x):
        x = jnp.asarray(x, jnp.float64)
        if self.lo is not None and self.hi is not None:
            # a bound itself is at z = +-inf, where the sigmoid has no gradient: start 1% inside
            u = jnp.clip((x - self.lo) / (self.hi - self.lo), 0.01, 0.99)
            return jnp.log(u) - jnp.log1p(-u)
        if self.lo is not None:
            return _softplus_inv(jnp.maximum(x - self.lo, 1e-3))
        if self.hi is not None:
            return _softplus_inv(jnp.maximum(self.hi - x, 1e-3))
        return x

    def sample(self, key, x0):
        if self.lo is not None and self.hi is not None:
            return self.inverse(jax.random.uniform(key, x0.shape, minval=self.lo, maxval=self.hi))
        return self.inverse(x0) + 0.5 * jax.random.normal(key, x0.shape)


def _softplus_inv(y):
    return y + jnp.log(-jnp.expm1(-y))


class Sphere(eqx.Module):
    """``|x|_2 = radius`` (for example a fixed total coupling strength)."""

    radius: float

    def __check_init__(self):
        if not (isinstance(self.radius, (int, float)) and math.isfinite(self.radius) and self.radius > 0):
            raise ValueError(f"{type(self).__name__} radius must be finite and > 0, got {self.radius!r}")

    def forward(self, z):
        return self.radius * z / jnp.linalg.norm(z)

    def inverse(self, x):
        return jnp.asarray(x, jnp.float64)

    def sample(self, key, x0):
        return jax.random.normal(key, x0.shape)


class Ball(eqx.Module):
    """``|x|_2 <= radius`` (smooth: ``x = radius tanh(|z|/radius) z/|z|``)."""

    radius: float

    def __check_init__(self):
        if not (isinstance(self.radius, (int, float)) and math.isfinite(self.radius) and self.radius > 0):
            raise ValueError(f"{type(self).__name__} radius must be finite and > 0, got {self.radius!r}")

    def forward(self, z):
        n = jnp.linalg.norm(z)
        return self.radius * jnp.tanh(n / self.radius) * z / n

    def inverse(self, x):
        x = jnp.asarray(x, jnp.float64)
        n = jnp.linalg.norm(x)
        r = jnp.clip(n / self.radius, 1e-12, 1 - 1e-9)
        return x / n * self.radius * jnp.arctanh(r)

    def sample(self, key, x0):
        return jax.random.normal(key, x0.shape) * self.radius


class Simplex(eqx.Module):
    """``x >= 0`` and ``sum x = total`` (an L1 sphere on the positive orthant)."""

    total: float

    def forward(self, z):
        return self.total * jax.nn.softmax(z.reshape(-1)).reshape(z.shape)

    def inverse(self, x):
        x = jnp.asarray(x, jnp.float64)
        return jnp.log(jnp.maximum(x / self.total, 1e-12))

    def sample(self, key, x0):
        return jax.random.normal(key, x0.shape)


class OptimizeResult(eqx.Module):
    """The best point and the whole run.

    Attributes:
        params: the best parameters found (over all restarts).
        value: the objective there.
        best_restart: its restart index.
        restart_params: every restart's final parameters (leading axis: restart).
        restart_values: every restart's final objective ``(R,)``.
        history: objective of every restart at every step ``(steps, R)`` (before the step);
            after an early stop (``tol``) the remaining rows repeat the last values.
        method: ``"adam"`` or ``"lbfgs"``.
        steps_run: optimiser steps actually taken (``< steps`` after an early stop).
    """

    params: dict
    value: jax.Array
    best_restart: int = eqx.field(static=True)
    restart_params: dict
    restart_values: jax.Array
    history: np.ndarray
    method: str = eqx.field(static=True)
    steps_run: int = eqx.field(static=True, default=-1)


def _split_constraints(params, constraints):
    constraints = dict(constraints or {})
    unknown = set(constraints) - set(params)
    if unknown:
        raise ValueError(f"constraints name unknown parameters {sorted(unknown)}; parameters: {sorted(params)}")
    return {k: constraints.get(k, Box()) for k in params}


def optimize(objective: Callable, params: Mapping, *, constraints: Mapping | None = None, restarts: int = 1,
             steps: int = 200, method: str = "adam", learning_rate: float = 0.05, seed: int = 0,
             progress: bool = True, maximize: bool = True, tol: float | None = 1e-12,
             patience: int | None = None, keep_best: bool = False, desc: str | None = None,
             starts: Sequence[Mapping] | None = None) -> OptimizeResult:
    """Maximise ``objective(params)`` (a differentiable scalar) with optax.

    Arguments:
        objective: ``dict -> scalar``.
        params: the starting point, ``{name: array}``.
        constraints: ``{name: Box | Sphere | Ball | Simplex}`` (unconstrained otherwise).
        restarts: number of starts, run together under ``vmap``; restart 0
            starts at ``params``.
        steps: optimiser steps (L-BFGS: iterations, each with a line search).
        method: ``"adam"`` or ``"lbfgs"`` (zoom line search).
        learning_rate: Adam's step size.
        maximize: ``False`` minimises.
        tol: stop early once every restart's objective has changed by at most
            ``tol * (1 + |value|)`` over three consecutive steps (a converged
            L-BFGS otherwise spends each remaining step in a line search that
            cannot succeed); ``None`` always runs ``steps`` steps.
        patience: instead, stop once every restart's best objective has
            improved by at most ``tol * |best|`` over the last ``patience``
            steps (for noisy or slowly creeping ascents, such as a schedule's
            stored energy under Adam).
        keep_best: return each restart's best point of the whole run (the
            final point included) rather than its final point.
        desc: the progress bar's label.
        starts: the starting point of every restart (``restarts`` is then
            ``len(starts)``, and ``params`` only names the parameters);
            default: restart 0 at ``params``, the others at random feasible points.

    Returns:
        An :class:`OptimizeResult`.
    """
    if method not in ("adam", "lbfgs"):
        raise ValueError(f"method must be 'adam' or 'lbfgs', got {method!r}")
    if restarts < 1 or steps < 0:
        raise ValueError(f"restarts must be >= 1 and steps >= 0, got {restarts}, {steps}")
    if tol is not None and not tol >= 0:
        raise ValueError(f"tol must be >= 0 or None, got {tol!r}")
    if patience is not None and (tol is None or int(patience) < 1):
        raise ValueError(f"patience must be >= 1 and needs a tol, got patience={patience!r}, tol={tol!r}")
    params = {k: jnp.asarray(v, jnp.float64) for k, v in params.items()}
    if starts is not None:
        starts = [{k: jnp.asarray(st[k], jnp.float64) for k in params} for st in starts]
        if not starts:
            raise ValueError("starts must hold at least one starting point")
        restarts = len(starts)
    cons = _split_constraints(params, constraints)
    sign = 1.0 if maximize else -1.0

    def to_x(z):
        return {k: cons[k].forward(z[k]) for k in z}

    def loss(z):
        return -sign * objective(to_x(z))

    z0 = {k: cons[k].inverse(v) for k, v in params.items()}
    keys = jax.random.split(jax.random.PRNGKey(seed), max(restarts - 1, 1) * len(params)).reshape(
        max(restarts - 1, 1), len(params), -1)
    if starts is not None:
        latent = [{k: cons[k].inverse(v) for k, v in st.items()} for st in starts]
    else:
        latent = [z0]
        for r in range(restarts - 1):
            latent.append({k: cons[k].sample(keys[r, i], params[k]) for i, k in enumerate(params)})
    Z = jax.tree.map(lambda *xs: jnp.stack(xs), *latent)

    if method == "adam":
        opt = optax.adam(learning_rate)

        def step(z, s):
            v, g = jax.value_and_grad(loss)(z)
            updates, s = opt.update(g, s, z)
            return optax.apply_updates(z, updates), s, v
    else:
        opt = optax.lbfgs()
        vg = optax.value_and_grad_from_state(loss)

        def step(z, s):
            v, g = vg(z, state=s)
            updates, s = opt.update(g, s, z, value=v, grad=g, value_fn=loss)
            return optax.apply_updates(z, updates), s, v

    S = jax.vmap(opt.init)(Z)
    step_all = jax.jit(jax.vmap(step))
    # the optimiser state comes back from a step with strong dtypes where
    # init made weak ones: match them up front, or the step compiles twice
    out_S = jax.eval_shape(step_all, Z, S)[1]
    S = jax.tree.map(lambda x, ref: jnp.asarray(x, ref.dtype), S, out_S)
    S = jax.tree.map(lambda x, ref: x if x.weak_type == ref.weak_type else jax.lax.convert_element_type(x, ref.dtype),
                     S, out_S)
    history = np.zeros((steps, restarts))
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=steps, desc=desc or f"optimize ({method}, {restarts} restarts)", file=sys.stderr,
                   mininterval=0.5)
    dropped = set()
    steps_run, quiet = steps, 0
    best_Z, best_score = Z, np.full(restarts, -np.inf)
    for i in range(steps):
        Z_before = Z
        Z, S, v = step_all(Z, S)
        history[i] = -sign * np.asarray(v)
        if keep_best:  # the value is that of the point before the step
            score = np.where(np.isfinite(history[i]), sign * history[i], -np.inf)
            better = score > best_score
            if better.any():
                best_score = np.where(better, score, best_score)
                best_Z = jax.tree.map(lambda b, z: jnp.where(better.reshape((-1,) + (1,) * (z.ndim - 1)), z, b),
                                      best_Z, Z_before)
        bad = ~np.isfinite(history[i])
        if bad.all():
            x0 = {k: np.asarray(v[0]).tolist() for k, v in to_x(jax.tree.map(lambda z: z, Z_before)).items()} \
                if i == 0 else None
            where = f"at the starting point {x0}" if i == 0 else f"at step {i}"
            raise FloatingPointError(f"optimize: the objective is not finite at any of the {restarts} restart(s) "
                                     f"{where} (a failed solve, or parameters outside the objective's domain)")
        new = set(np.flatnonzero(bad).tolist()) - dropped
        if new:
            dropped |= new
            warnings.warn(f"optimize: the objective is not finite at restart(s) {sorted(new)} from step {i}; "
                          "they are left out of the best point", RuntimeWarning, stacklevel=2)
        if patience is not None:
            scores = np.where(np.isfinite(history[: i + 1]), sign * history[: i + 1], -np.inf)
            if i >= patience:
                best_now, best_then = scores.max(axis=0), scores[: i + 1 - patience].max(axis=0)
                if np.all(best_now - best_then <= tol * np.abs(best_now)):
                    steps_run = i + 1
                    history[i + 1:] = history[i]
                    if bar is not None:
                        bar.update(steps - i)
                    break
        elif tol is not None and i > 0:
            ok = ~bad & np.isfinite(history[i - 1])
            change = np.abs(history[i] - history[i - 1])[ok]
            quiet = quiet + 1 if np.all(change <= tol * (1.0 + np.abs(history[i][ok]))) else 0
            if quiet >= 3:
                steps_run = i + 1
                history[i + 1:] = history[i]
                if bar is not None:
                    bar.update(steps - i)
                break
        if bar is not None:
            bar.update(1)
            bar.set_postfix(best=f"{np.nanmax(history[i]) if maximize else np.nanmin(history[i]):.6g}")
    if bar is not None:
        bar.close()
    X = jax.vmap(to_x)(Z)
    values = jax.vmap(objective)(X)
    if keep_best:  # the final point competes with the best of the run
        final = np.where(np.isnan(np.asarray(values)), -np.inf, sign * np.asarray(values))
        earlier = best_score > final
        if earlier.any():
            Z = jax.tree.map(lambda b, z: jnp.where(earlier.reshape((-1,) + (1,) * (z.ndim - 1)), b, z), best_Z, Z)
            X = jax.vmap(to_x)(Z)
            values = jax.vmap(objective)(X)
    score = jnp.where(jnp.isnan(values), -jnp.inf, sign * values)
    best = int(jnp.argmax(score))
    return OptimizeResult({k: v[best] for k, v in X.items()}, values[best], best, X, values, history, method,
                          steps_run)


FIGURES = ("max_power", "energy_at", "ergotropy")


def model_objective(model, names, figure="max_power", *, tau=None, t_max=None, num_times: int | None = None,
                    method: str = "auto") -> Callable:
    """``{name: value} -> figure of merit`` of ``model`` with those leaves replaced.

    Arguments:
        figure: ``"max_power"`` (``Pbar`` on the fixed time grid
            ``time_grid(model, t_max, num_times)``), ``"energy_at"``
            (``E_B(tau)``), ``"ergotropy"`` (of the battery at ``tau``;
            ``tau=None``: the time of maximum power of the *starting*
            model, then held fixed so that the gradient is exact), or
            ``{figure: weight}`` for a weighted sum (a trade-off).
    """
    from .analysis import replace_params
    from .charging import battery_ergotropy_status, charge, time_grid
    from .metrics import max_power
    from .status import is_concrete, merge

    weights = {figure: 1.0} if isinstance(figure, str) else dict(figure)
    for f in weights:
        if f not in FIGURES:
            raise ValueError(f"unknown figure {f!r}; allowed: {', '.join(FIGURES)} (or a dict of weights)")
    if any(f == "energy_at" for f in weights) and tau is None:
        raise ValueError("figure 'energy_at' needs tau")
    if tau is not None and not (is_concrete(tau) and np.isfinite(float(tau)) and float(tau) > 0):
        if is_concrete(tau):
            raise ValueError(f"tau must be a finite time > 0 (the charging time), got {tau!r}")
    for n in names:
        if not hasattr(model, n):
            raise ValueError(f"unknown parameter {n!r} of {type(model).__name__}")
    ts = time_grid(model, t_max, num_times)
    if "ergotropy" in weights and tau is None:
        # the time of maximum power of the starting model, held fixed: the
        # ergotropy at a moving taubar(theta) would need d taubar / d theta,
        # which the envelope theorem does not remove (unlike for Pbar itself)
        tau = float(max_power(charge(model, ts, method=method), warn=False).time)

    def value(p):
        m = replace_params(model, **p)
        out, mp, flags = 0.0, None, []
        if "max_power" in weights:
            traj = charge(m, ts, method=method)
            flags.append(traj.status)
            mp = max_power(traj, warn=False)
        for f, w in weights.items():
            if f == "max_power":
                out = out + w * mp.power
            elif f == "energy_at":
                traj = charge(m, jnp.stack([jnp.zeros(()), jnp.asarray(tau, jnp.float64)]), method=method)
                flags.append(traj.status)
                out = out + w * traj.energy[-1]
            else:
                erg, st = battery_ergotropy_status(m, tau)
                flags.append(st)
                out = out + w * erg
        # a failed solve (qbjax.status) becomes NaN, which optimize() reports
        # on the host: no callback inside the compiled step
        return jnp.where(merge(*flags) == 0, out, jnp.nan)

    return value


def optimize_model(model, params, figure="max_power", *, tau=None, t_max=None, num_times: int | None = None,
                   method: str = "auto", **kwargs):
    """Maximise a figure of merit of ``model`` over the named leaves.

    Arguments:
        model: a battery model (its values are the starting point).
        params: ``[name, ...]`` or ``{name: constraint}`` (constraints as in :func:`optimize`).
        figure, tau, t_max, num_times, method: see :func:`model_objective`.
        kwargs: passed to :func:`optimize` (``restarts``, ``steps``, ``method``...;
            the optimiser is ``optimizer=``).

    Returns:
        ``(best model, OptimizeResult)``.
    """
    from .analysis import replace_params

    cons = dict(params) if isinstance(params, Mapping) else {}
    names = list(params)
    obj = model_objective(model, names, figure, tau=tau, t_max=t_max, num_times=num_times, method=method)
    start = {n: jnp.asarray(getattr(model, n), jnp.float64) for n in names}
    optimizer = kwargs.pop("optimizer", "adam")
    res = optimize(obj, start, constraints=cons, method=optimizer, **kwargs)
    return replace_params(model, **res.params), res


def bracketed_root(value_and_grad: Callable, lo: float, hi: float, *, f_lo: float | None = None,
                   f_hi: float | None = None, x0: float | None = None, tol: float = 1e-10,
                   max_steps: int = 100) -> dict:
    """A root of a scalar ``f`` inside ``[lo, hi]``, where ``f(lo)`` and ``f(hi)`` differ in sign.

    Newton steps with the exact derivative (``value_and_grad(x) -> (f, f')``,
    typically ``jax.value_and_grad`` of a jitted function), safeguarded by
    bisection: a step that leaves the current bracket, or does not halve it
    every other step, is replaced by the midpoint, and the bracket shrinks
    around every new point.  Converges quadratically near a simple root and
    never leaves the bracket.

    Arguments:
        lo, hi: the bracket; ``f_lo``, ``f_hi`` its values when known (else evaluated).
        x0: the first point (default: the secant point of the bracket).
        tol: stop when ``|f| <= tol`` or the bracket is below ``1e-15`` of its scale.
        max_steps: at most this many evaluations inside the bracket.

    Returns:
        ``{"x", "f", "steps", "bracket", "history"}`` with ``history`` the ``(x, f)``
        of each evaluation (plain floats).

    Raises:
        ValueError: ``f(lo)`` and ``f(hi)`` have the same strict sign, or the bracket is empty.
    """
    lo, hi = float(lo), float(hi)
    if not lo < hi:
        raise ValueError(f"bracketed_root: need lo < hi, got [{lo!r}, {hi!r}]")

    def evaluate(x):
        f, d = value_and_grad(jnp.asarray(x, jnp.float64))
        return float(f), float(d)

    f_lo = evaluate(lo)[0] if f_lo is None else float(f_lo)
    f_hi = evaluate(hi)[0] if f_hi is None else float(f_hi)
    if f_lo == 0.0 or f_hi == 0.0:
        x = lo if f_lo == 0.0 else hi
        return {"x": x, "f": 0.0, "steps": 0, "bracket": (lo, hi), "history": []}
    if np.sign(f_lo) == np.sign(f_hi):
        raise ValueError(f"bracketed_root: f(lo) = {f_lo:g} and f(hi) = {f_hi:g} have the same sign")
    a, b, fa = lo, hi, f_lo  # f(a) has the sign of f_lo throughout
    x = a - fa * (b - a) / (f_hi - fa) if x0 is None else min(max(float(x0), lo), hi)
    history, width = [], b - a
    for k in range(max_steps):
        f, d = evaluate(x)
        history.append((x, f))
        if not np.isfinite(f):
            raise FloatingPointError(f"bracketed_root: f({x:g}) is not finite")
        if abs(f) <= tol:
            break
        if np.sign(f) == np.sign(fa):
            a, fa = x, f
        else:
            b = x
        if abs(b - a) <= 1e-15 * max(abs(lo), abs(hi), 1e-300):
            break
        step = x - f / d if d != 0 and np.isfinite(d) else np.nan
        lo_, hi_ = min(a, b), max(a, b)
        if not (lo_ < step < hi_) or (k % 2 == 1 and abs(b - a) > 0.5 * width):
            step = 0.5 * (a + b)  # bisection: outside the bracket, or the bracket is not shrinking
        if k % 2 == 1:
            width = abs(b - a)
        x = step
    return {"x": history[-1][0], "f": history[-1][1], "steps": len(history), "bracket": (lo, hi),
            "history": history}
