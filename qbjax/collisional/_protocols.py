"""Charging protocols: schedules of swap angles ``theta_k`` at a fixed total time ``Omega tau = sum_k theta_k``.

``full-swap``  ``theta_k = pi/(2 g_{k-1})`` (Sec. III B, IV B): with excited
               units (``q = 0``) the battery climbs ``|k-1> -> |k>`` with
               certainty; ``pi/(2 sqrt k)`` for the oscillator,
               ``pi/(2 f_+(j, k-1-j))`` for the spin.  As many full swaps as
               fit into ``Omega tau``.
``constant``   ``theta_k = theta``, ``K = floor(Omega tau/theta)`` collisions
               (Sec. III C, IV C).
``greedy``     see :func:`greedy_schedule`.
``optimized``  the whole schedule maximising the stored energy at fixed
               ``Omega tau`` (:func:`optimize_schedule`).

Where a protocol cannot use the whole time (full swaps, constant angles) the
time actually used, ``sum_k theta_k <= Omega tau``, is reported; powers are
``E / sum_k theta_k``.
"""

from __future__ import annotations

import math
import time as _time

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float

from ..dynamics.collisions import collide_density, collide_populations, energy_gain
from ..models._common import ParameterError, check_size
from ._bounds import full_swap_angles
from ._model import CollisionalModel, LadderBattery
from ._propagate import (
    Kernel,
    _collide,
    damp_step,
    default_checkpoint,
    initial_state,
    kernel,
    resolve_mode,
)

__all__ = [
    "PROTOCOLS",
    "full_swap_schedule",
    "constant_schedule",
    "greedy_schedule",
    "optimize_schedule",
    "OptimizedSchedule",
    "schedule_from_logits",
]

PROTOCOLS = ("full-swap", "greedy", "constant", "optimized")


def _check_time(time) -> float:
    t = float(time)
    if not math.isfinite(t) or t <= 0:
        raise ParameterError(f"time must be > 0 (Omega tau), got {time!r}")
    return t


def full_swap_schedule(battery: LadderBattery, time=None, collisions: int | None = None) -> np.ndarray:
    """Full-swap angles: the first ``collisions``, or as many as fit into ``time`` (at most ``d - 1``).

    Raises:
        ParameterError: neither or both of ``time``/``collisions``; too many collisions.
    """
    angles = full_swap_angles(battery)
    if (time is None) == (collisions is None):
        raise ParameterError("give exactly one of time and collisions for the full-swap schedule")
    if collisions is not None:
        k = check_size("collisions", collisions, minimum=1)
        if k > angles.shape[0]:
            raise ParameterError(f"collisions must be <= {angles.shape[0]} (levels - 1) for full swaps, got {k}")
        return angles[:k]
    t = _check_time(time)
    k = int(np.searchsorted(np.cumsum(angles), t * (1 + 1e-14), side="right"))
    if k == 0:
        raise ParameterError(f"time must be >= {angles[0]:.6g} for one full swap, got {t!r}")
    return angles[:k]


def constant_schedule(theta, time) -> np.ndarray:
    """``K = floor(time/theta)`` collisions at the angle ``theta > 0``."""
    th = float(theta)
    if not math.isfinite(th) or th <= 0:
        raise ParameterError(f"theta must be > 0, got {theta!r}")
    t = _check_time(time)
    k = int(math.floor(t / th * (1 + 1e-12)))
    if k < 1:
        raise ParameterError(f"time must be >= theta ({th:.6g}) for one collision, got {t!r}")
    return np.full(k, th)


def _golden_max(f, a, b, iterations: int = 64):
    """Maximise a unimodal ``f`` on ``[a, b]``: golden section, then Newton steps on ``f'``."""
    r = (math.sqrt(5) - 1) / 2

    def body(_, ab):
        a, b = ab
        c, d = b - r * (b - a), a + r * (b - a)
        left = f(c) >= f(d)
        return jnp.where(left, a, c), jnp.where(left, d, b)

    a0, b0 = a, b
    a, b = jax.lax.fori_loop(0, iterations, body, (a, b))
    # Golden section locates a smooth maximum only to ~sqrt(eps); Newton on f' = 0 polishes it.
    df = jax.grad(f)
    d2f = jax.grad(df)

    def newton(_, x):
        g1, g2 = df(x), d2f(x)
        return jnp.clip(x - jnp.where(g2 < 0, g1 / jnp.where(g2 < 0, g2, 1.0), 0.0), a0, b0)

    return jax.lax.fori_loop(0, 4, newton, 0.5 * (a + b))


@eqx.filter_jit
def _greedy(kern: Kernel, time, grid, max_collisions: int, mode: str):
    coupling, q, s = kern.coupling, kern.q, kern.drive
    keep = 1 - kern.loss  # the damping channel scales <n> by exactly (1 - gamma)
    levels = kern.levels
    n = jnp.arange(levels, dtype=jnp.float64)
    damp = damp_step(kern, mode)
    grid = jnp.asarray(grid)

    def diag_off(state):
        if mode == "populations":
            return state, jnp.zeros(levels - 1)
        return jnp.diagonal(state), jnp.diagonal(state, 1)

    def cond(c):
        k, _, _, t, _, _ = c
        return (k < max_collisions) & (t < time)

    def body(c):
        k, state, e, t, thetas, energies = c
        p, o = diag_off(state)

        def power(theta):  # cumulative average power after this collision at angle theta
            return keep * (e + energy_gain(theta, p, o, coupling, q, s)) / (t + theta)

        def rate(theta):  # transient power of this collision (Eq. 7), damping period included
            return (keep * (e + energy_gain(theta, p, o, coupling, q, s)) - e) / theta

        def best(f, allow_end):
            v = jax.vmap(f)(grid)
            # interior local maxima on the grid (and the end point if still rising)
            left = jnp.concatenate([jnp.array([False]), v[1:] >= v[:-1]])
            right = jnp.concatenate([v[:-1] >= v[1:], jnp.array([allow_end])])
            peak = left & right
            i = jnp.argmax(jnp.where(peak, v, -jnp.inf))
            lo = grid[jnp.maximum(i - 1, 0)]
            hi = grid[jnp.minimum(i + 1, grid.shape[0] - 1)]
            return jnp.any(peak), lo, hi

        found, lo, hi = best(power, True)
        theta = jax.lax.cond(
            found,
            lambda: _golden_max(power, lo, hi),
            lambda: _golden_max(rate, *best(rate, True)[1:]),
        )
        theta = jnp.minimum(theta, time - t)  # the last collision ends exactly at Omega tau
        if mode == "populations":
            state = collide_populations(state, coupling, theta, q)
        else:
            state = collide_density(state, coupling, theta, q, s)
        state = damp(state)
        p, _ = diag_off(state)
        e = jnp.dot(n, p)
        return k + 1, state, e, t + theta, thetas.at[k].set(theta), energies.at[k].set(e)

    c0 = (0, initial_state(levels, mode), jnp.zeros(()), jnp.zeros(()), jnp.zeros(max_collisions),
          jnp.zeros(max_collisions))
    k, _, _, t, thetas, energies = jax.lax.while_loop(cond, body, c0)
    return k, t, thetas, energies


def greedy_schedule(model: CollisionalModel, time, *, grid_points: int = 512, mode: str = "auto"):
    """The greedy protocol (Sec. III B, IV B): maximise the cumulative average power at every step.

    Definition.  After ``k - 1`` collisions (battery energy ``E_{k-1}``, elapsed
    ``T_{k-1} = theta_1 + .. + theta_{k-1}``), collision ``k`` uses the angle

        theta_k = argmax over the interior local maxima theta > 0 of
                  F_k(theta) = E_k(theta) / (T_{k-1} + theta),

    where ``E_k(theta)`` is the exact mean energy after the collision at angle
    ``theta`` (and the damping period, when lossy).  The trivial limit
    ``theta -> 0``, where ``F_k -> E_{k-1}/T_{k-1}``, is excluded.  When ``F_k``
    has no such maximum (it only decreases: no collision can raise the average
    power any more, as near the top of a spin), ``theta_k`` maximises the
    transient power ``(E_k(theta) - E_{k-1})/theta`` of Eq. 7 instead, so that
    the protocol keeps charging at the best rate available.

    ``E_k(theta)`` needs only the diagonal and the first off-diagonal of
    ``rho_B`` (``O(d)``, :func:`energy_gain`), so the greedy works for any
    units, coherent or not; the paper's greedy uses ``q = 0``.  ``F_k`` is
    scanned on a geometric grid of ``grid_points`` angles in
    ``[0.02/g_max, pi/2]`` and the best local maximum refined by golden-section
    search and Newton steps on ``dF_k/dtheta = 0`` (to rounding).  The last
    angle is cut so that ``sum_k theta_k = Omega tau`` exactly.

    Returns:
        the angles ``theta_k`` (a numpy array of length ``K``).
    """
    t = _check_time(time)
    mode = resolve_mode(model, mode)
    gmax = float(np.max(model.battery.coupling))
    grid = np.geomspace(0.02 / gmax, np.pi / 2, check_size("grid_points", grid_points, minimum=8))
    kmax = 1 << max(6, math.ceil(math.log2(2 * t * gmax + 16)))  # buffer length, bucketed: fewer compilations
    while True:
        k, used, thetas, _ = _greedy(kernel(model), jnp.float64(t), grid, kmax, mode)
        if float(used) >= t:
            return np.asarray(thetas[: int(k)])
        kmax *= 2  # a rare, very slow greedy: more room


class OptimizedSchedule(eqx.Module):
    """Result of :func:`optimize_schedule`.

    Attributes:
        thetas: the best schedule found ``(K,)`` (``sum = Omega tau``).
        energy: its stored energy.
        initial_energy: the stored energy of the initial schedule.
        history: stored energy at every optimisation step.
        steps: optimisation steps taken.
        converged: whether the relative improvement over ``patience`` steps fell below ``tol``.
        seconds: wall time of the optimisation (compilation included).
    """

    thetas: Float[Array, " K"]
    energy: Float[Array, ""]
    initial_energy: Float[Array, ""]
    history: Float[Array, " steps"]
    steps: int = eqx.field(static=True)
    converged: bool = eqx.field(static=True)
    seconds: float = eqx.field(static=True)


def schedule_from_logits(logits, time):
    """``theta = time * softmax(logits)``: every ``theta_k >= 0`` and ``sum_k theta_k = time`` exactly."""
    return time * jax.nn.softmax(logits)


def optimize_schedule(model: CollisionalModel, time, collisions: int | None = None, *, init=None,
                      steps: int = 500, learning_rate: float = 0.05, tol: float = 1e-9, patience: int = 25,
                      mode: str = "auto", verbose: bool = True) -> OptimizedSchedule:
    """Maximise the stored energy (equivalently the average power) over all schedules with ``sum theta_k = time``.

    The angles are ``theta = time * softmax(z)`` (non-negative, fixed total
    time; an angle may shrink to zero, so ``K`` is an upper bound on the
    collisions used); Adam (optax) ascends ``E(theta(z))`` with gradients through
    the collision scan.

    Arguments:
        model: the model (units, battery, loss).
        time: ``Omega tau > 0``.
        collisions: ``K``; default ``len(init)``, or the greedy schedule's length.
        init: initial schedule (rescaled to ``time``; zeros are lifted to
            ``1e-6`` of the mean); default: the greedy schedule for incoherent
            units, the constant ``time/K`` for coherent ones (with ``K`` given).
        steps: at most this many Adam steps.
        learning_rate: Adam step size on the logits ``z``.
        tol, patience: stop when the best energy has improved by less than
            ``tol`` (relative) over the last ``patience`` steps.
        verbose: a progress bar on stderr.

    Raises:
        ParameterError: bad sizes, a non-positive time, a coherent model without ``collisions`` or ``init``.
    """
    from ..optimize import Simplex, optimize

    t = _check_time(time)
    check_size("steps", steps, minimum=1)
    mode = resolve_mode(model, mode)
    if init is None:
        if mode == "populations":
            init = greedy_schedule(model, t)
            if collisions is not None and collisions != init.shape[0]:
                init = _resample(init, check_size("collisions", collisions, minimum=1))
        else:
            if collisions is None:
                raise ParameterError("collisions must be given for coherent units (or pass init)")
            init = np.full(check_size("collisions", collisions, minimum=1), t / collisions)
    init = np.asarray(init, dtype=float)
    if init.ndim != 1 or init.size < 1 or np.any(init < 0) or not np.all(np.isfinite(init)):
        raise ParameterError("init must be a 1-d array of angles >= 0")
    if collisions is not None and init.shape[0] != collisions:
        raise ParameterError(f"collisions ({collisions}) must equal len(init) ({init.shape[0]})")
    init = np.maximum(init, 1e-6 * init.mean())
    kern = kernel(model)
    checkpoint = default_checkpoint(mode, init.shape[0], model.battery.levels)

    def stored_energy(p):
        return _collide(kern, jnp.zeros(()), p["thetas"], mode, False, checkpoint).energy[-1]

    start = _time.perf_counter()
    # theta = time * softmax(z) (qbjax.optimize's Simplex); Adam ascends E(theta(z)), and the best
    # schedule of the run is kept (the energy of an Adam iterate need not increase monotonically)
    res = optimize(stored_energy, {"thetas": init * (t / init.sum())}, constraints={"thetas": Simplex(t)},
                   steps=steps, learning_rate=learning_rate, tol=tol, patience=patience, keep_best=True,
                   progress=verbose, desc=f"optimize K={init.shape[0]}")
    history = np.asarray(res.history[: res.steps_run, 0])
    return OptimizedSchedule(
        thetas=res.params["thetas"],
        energy=jnp.asarray(res.value),
        initial_energy=jnp.asarray(history[0]),
        history=jnp.asarray(history),
        steps=res.steps_run,
        converged=res.steps_run < steps,
        seconds=_time.perf_counter() - start,
    )


def _resample(thetas: np.ndarray, k: int) -> np.ndarray:
    """A schedule of ``k`` angles with the same total: each angle of ``thetas`` split or merged evenly."""
    cum = np.concatenate([[0.0], np.cumsum(thetas)])
    edges = np.interp(np.linspace(0, thetas.shape[0], k + 1), np.arange(thetas.shape[0] + 1), cum)
    return np.diff(edges)

