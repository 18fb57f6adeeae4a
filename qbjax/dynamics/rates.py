"""Rate equations: Lindblad dynamics that provably keeps the state diagonal.

When ``H`` is diagonal in the product basis and every jump operator ``L``
sends each basis state to a multiple of one basis state (one band per dof,
the same shift ``k`` for every term of ``L``), then for a diagonal
``rho = sum_n p_n |n><n|``

    L rho L^+ = sum_n p_n |c_{n-k}|^2 |n-k><n-k|,    L^+ L diagonal,

so the master equation maps diagonal matrices to diagonal matrices and
reduces *exactly* to a classical master equation for the populations,

    dp/dt = A p,    (A p)_r = sum_ch w_ch[r] p[r + k_ch] - (sum_ch w_ch[r - k_ch]) p_r,

with ``w_ch = rate |c|^2`` indexed by the destination state.  ``A`` acts in
``O(D)`` on a population tensor of shape ``dims``; for a birth-death chain
(every jump moves one and the same dof by one level: collective spin decay
and pumping, ladder damping) it is tridiagonal along that axis.

Integration.  Rates of such chains span orders of magnitude (``~N^2`` in the
middle of a Dicke ladder, ``~N`` at its ends), so the equations are stiff
and explicit steps would be limited by the fastest rate.  qbjax integrates
them with the L-stable, stiffly accurate ESDIRK method of Kvaerno (order 5
with an embedded order-4 estimate; the tableau of ``diffrax.Kvaerno5``)
specialised to the linear autonomous system: every implicit stage is one
linear solve with ``I - h gamma A``, tridiagonal (batched LAPACK ``gtsv``)
for birth-death chains and LU-factorised once per step otherwise.  ``A`` is
a Markov generator, so ``I - h gamma A`` is an M-matrix with a nonnegative
inverse: the stage solves are well conditioned whatever the stiffness.
The local error is controlled in the total-variation norm
``sum_n |delta p_n|`` relative to ``sum_n p_n`` (the error of any bounded
observable is bounded by it), and every output time is hit exactly (no
interpolation).  The loop is an ``equinox`` checkpointed while loop, so
reverse mode (``jax.grad``, ``jax.jacrev``) passes through; forward mode
(``jax.jvp``, ``jax.jacfwd``) does not (the checkpointed loop is a ``custom_vjp``).
"""

from __future__ import annotations

import math

import diffrax
import equinox as eqx
import equinox.internal as eqxi
import jax
import jax.numpy as jnp
import numpy as np

from ..linalg import lu_solver, solve, tridiagonal_solver
from ..status import MAX_STEPS, NONFINITE, ONE_WAY_CHAIN, flag, settle
from .options import ODEOptions

__all__ = ["RateGenerator", "rate_generator", "not_diagonal_reason", "rate_solve", "rate_steady_state",
           "DENSE_RATE_MAX_DIM"]

#: Largest non-tridiagonal generator solved with dense LU (and dense null spaces).
DENSE_RATE_MAX_DIM = 4096

_TAB = diffrax.Kvaerno5.tableau
_GAMMA = float(_TAB.a_diagonal[1])
_A = [np.asarray(row, float) for row in _TAB.a_lower]
_B_ERR = np.asarray(_TAB.b_error, float)
# stiffly accurate: the last stage is the solution (checked, not assumed)
assert np.allclose(np.append(_A[-1], _GAMMA), np.asarray(_TAB.b_sol, float), atol=1e-15)
assert np.allclose(_TAB.a_diagonal[1:], _GAMMA) and _TAB.a_diagonal[0] == 0


def _shift(x, ks):
    """``y[r] = x[r + k]`` along every axis (zero outside)."""
    for axis, k in enumerate(ks):
        if k == 0:
            continue
        n = x.shape[axis]
        pad = [(0, 0)] * x.ndim
        pad[axis] = (0, k) if k > 0 else (-k, 0)
        start = k if k > 0 else 0
        x = jax.lax.slice_in_dim(jnp.pad(x, pad), start, start + n, axis=axis)
    return x


class RateGenerator(eqx.Module):
    """``A``: the population generator of a diagonal-preserving master equation.

    Attributes:
        dims: shape of the population tensor.
        shifts: per channel, the shift ``k`` (destination ``r`` gains from ``r + k``).
        weights: per channel, the rate into each destination state ``(dims)``.
    """

    dims: tuple[int, ...] = eqx.field(static=True)
    shifts: tuple[tuple[int, ...], ...] = eqx.field(static=True)
    weights: tuple[jax.Array, ...]

    def out_rates(self):
        """Total escape rate of every state."""
        out = jnp.zeros(self.dims)
        for k, w in zip(self.shifts, self.weights):
            out = out + _shift(w, tuple(-x for x in k))
        return out

    def __call__(self, p):
        out = -self.out_rates() * p
        for k, w in zip(self.shifts, self.weights):
            out = out + w * _shift(p, k)
        return out

    @property
    def chain_axis(self) -> int | None:
        """The axis of a birth-death chain (all jumps by +-1 along it), else ``None``."""
        axes = set()
        for k in self.shifts:
            moved = [i for i, x in enumerate(k) if x != 0]
            if len(moved) != 1 or abs(k[moved[0]]) != 1:
                return None
            axes.add(moved[0])
        return axes.pop() if len(axes) == 1 else None

    def tridiagonal(self):
        """``(sub, diag, super)`` of ``A`` along :attr:`chain_axis`, each of shape ``dims``."""
        axis = self.chain_axis
        sub = jnp.zeros(self.dims)
        sup = jnp.zeros(self.dims)
        for k, w in zip(self.shifts, self.weights):
            if k[axis] == 1:  # r gains from r + 1
                sup = sup + w
            else:  # r gains from r - 1
                sub = sub + w
        return sub, -self.out_rates(), sup

    def dense(self):
        """``A`` as a ``(D, D)`` matrix on the flattened basis (small problems)."""
        D = math.prod(self.dims)
        eye = jnp.eye(D).reshape((D,) + self.dims)
        return jax.vmap(self)(eye).reshape(D, D).T


def _local(space, factors):
    from ..representation import _local_matrices

    return _local_matrices(space, factors)


def not_diagonal_reason(spec) -> str | None:
    """Why ``spec``'s master equation does not reduce to rate equations (``None``: it does)."""
    from ..representation import _bands, split_diagonal

    if split_diagonal(spec.space, spec.charger + spec.battery + spec.coupling)[1]:
        return "H is not diagonal in the product basis"
    for i, d in enumerate(spec.dissipators):
        shifts = set()
        for t in d.operator:
            ks = []
            for m in _local(spec.space, t.factors):
                if m is None:
                    ks.append(0)
                    continue
                bands = _bands(m, max_bands=1)
                if bands is None or len(bands) != 1:
                    return f"dissipator {i} is not a single shift (more than one band)"
                ks.append(bands[0][0])
            shifts.add(tuple(ks))
        if len(shifts) > 1:
            return f"dissipator {i} mixes different shifts"
    return None


def rate_generator(spec) -> RateGenerator:
    """The population generator ``A`` of ``spec`` (raises if the state would not stay diagonal)."""
    from ..representation import _bands

    reason = not_diagonal_reason(spec)
    if reason is not None:
        raise ValueError(f"the master equation does not reduce to rate equations: {reason}")
    dims = spec.dims
    by_shift: dict = {}
    for d in spec.dissipators:
        amp, ks = None, None
        for t in d.operator:
            vec = jnp.asarray(t.coeff, jnp.complex128)
            shape_ks = []
            for (_, dof), m in zip(spec.space, _local(spec.space, t.factors)):
                if m is None:
                    v, k = np.ones(dof.dim), 0
                else:
                    k, v = _bands(m, max_bands=1)[0]
                vec = jnp.multiply.outer(vec, jnp.asarray(v))
                shape_ks.append(k)
            ks = tuple(shape_ks)
            amp = vec if amp is None else amp + vec
        if amp is None or not any(ks):
            continue  # no terms, or pure dephasing: populations do not move
        w = jnp.real(d.rate) * jnp.abs(amp) ** 2
        by_shift[ks] = by_shift.get(ks, 0.0) + w
    shifts = tuple(by_shift)
    return RateGenerator(dims, shifts, tuple(by_shift[k] for k in shifts))


def _solver(gen: RateGenerator):
    """``factor(c) -> solve(b)`` for ``(I - c A) y = b``."""
    axis = gen.chain_axis
    if axis is not None:
        sub, diag, sup = gen.tridiagonal()
        sub, diag, sup = (jnp.moveaxis(x, axis, -1) for x in (sub, diag, sup))

        def factor(c):
            apply = tridiagonal_solver(-c * sub, 1.0 - c * diag, -c * sup)
            return lambda b: jnp.moveaxis(apply(jnp.moveaxis(b, axis, -1)), -1, axis)

        return factor
    D = math.prod(gen.dims)
    if D > DENSE_RATE_MAX_DIM:
        raise MemoryError(
            f"rate equations with jumps along several dofs use dense LU; dimension {D} exceeds "
            f"{DENSE_RATE_MAX_DIM} (needs {8 * D * D / 2**30:.2f} GiB per factorisation)")
    A = gen.dense()

    def factor(c):
        apply = lu_solver(jnp.eye(D) - c * A)
        return lambda b: apply(b.reshape(-1)).reshape(gen.dims)

    return factor


def _esdirk_step(gen, factor, p, h):
    """One Kvaerno5 step for ``p' = A p``: ``(p_new, error estimate)``."""
    solve = factor(h * _GAMMA)
    ks = [gen(p)]
    y = p
    for row in _A:
        rhs = p + h * sum(float(a) * k for a, k in zip(row, ks) if a != 0)
        y = solve(rhs)
        ks.append(gen(y))
    err = h * sum(float(b) * k for b, k in zip(_B_ERR, ks) if b != 0)
    return y, err


def rate_solve(gen: RateGenerator, p0, ts, observe, *, options: ODEOptions = ODEOptions(rtol=1e-10, atol=1e-14),
               status: bool = False):
    """Integrate ``dp/dt = A p`` and return ``observe(p)`` at every time of ``ts``.

    Arguments:
        gen: the generator.
        p0: initial populations ``(dims)`` at ``ts[0]``.
        ts: increasing output times.
        observe: ``p -> pytree`` evaluated at each output time.
        options: ``rtol`` bounds the local error in total variation relative
            to ``sum p``; ``atol`` absolutely; ``max_steps`` per output interval.
        status: also return a :mod:`qbjax.status` flag (``MAX_STEPS``) instead
            of checking here (no host callback in the compiled program).

    Returns:
        ``observe`` stacked over ``ts`` (and the status when asked for).
    """
    factor = _solver(gen)
    rtol, atol = options.rtol, options.atol
    rate_max = jax.lax.stop_gradient(jnp.max(gen.out_rates()))
    h0 = 0.01 / jnp.maximum(rate_max, 1e-300)

    def advance(carry, t_end):
        t0, p, h_prop, failed = carry

        def cond(state):
            t, _, _ = state
            return t < t_end

        def body(state):
            t, p, h_prop = state
            remaining = t_end - t
            last = h_prop >= remaining * (1 - 1e-12)
            h = jnp.where(last, remaining, h_prop)
            p_new, err = _esdirk_step(gen, factor, p, h)
            scale = atol + rtol * jnp.sum(jnp.abs(p))
            ratio = jax.lax.stop_gradient(jnp.sum(jnp.abs(err)) / scale)
            ratio = jnp.where(jnp.isfinite(ratio), ratio, jnp.inf)
            accept = ratio <= 1.0
            grow = jnp.clip(0.9 * jnp.maximum(ratio, 1e-10) ** -0.2, 0.2, 5.0)
            t_new = jnp.where(accept, jnp.where(last, t_end, t + h), t)
            p = jax.tree.map(lambda a, b: jnp.where(accept, a, b), p_new, p)
            h_next = jnp.where(accept & last, jnp.maximum(h_prop, h * grow), h * grow)
            return t_new, p, jax.lax.stop_gradient(h_next)

        t, p, h_prop = eqxi.while_loop(cond, body, (t0, p, h_prop), max_steps=options.max_steps,
                                       kind="checkpointed", checkpoints=options.checkpoints_for(p, loops))
        return (t_end, p, h_prop, failed | (t < t_end)), observe(p)

    ts = jnp.asarray(ts, jnp.float64)
    loops = ts.shape[0] - 1
    first = observe(p0)
    carry, rest = jax.lax.scan(advance, (ts[0], p0, h0, jnp.zeros((), bool)), ts[1:])
    out = jax.tree.map(lambda a, b: jnp.concatenate([a[None], b]), first, rest)
    flags = flag(carry[3], MAX_STEPS)
    return (out, flags) if status else settle(out, flags, "rate_solve")


def rate_steady_state(gen: RateGenerator, p0, *, status: bool = False):
    """The stationary populations reached from ``p0`` (``A p = 0``, same total as ``p0``).

    Birth-death chains: detailed balance along the chain (every stationary
    state of a chain is detailed balanced), in log space so that ratios
    like ``e^{0.8 N}`` at ``N = 10^5`` neither overflow nor underflow; each
    line of the chain (the other axes' indices) keeps its initial weight.
    Otherwise: the null vector of the dense generator (unique stationary state assumed).
    ``status=True`` returns ``(p, status)`` (``ONE_WAY_CHAIN``) instead of
    checking here.
    """
    axis = gen.chain_axis
    if axis is not None:
        sub, _, sup = (jnp.moveaxis(x, axis, -1) for x in gen.tridiagonal())
        up = sub[..., 1:]  # rate r -> r + 1 (destination-indexed)
        down = sup[..., :-1]  # rate r + 1 -> r
        pos = (up > 0) & (down > 0)
        flags = flag(~(pos | ((up == 0) & (down == 0))), ONE_WAY_CHAIN)
        step = jnp.where(pos, jnp.log(jnp.where(pos, up, 1.0)) - jnp.log(jnp.where(pos, down, 1.0)), -jnp.inf)
        # cut the chain where both rates vanish: states above it are not reached from below
        logp = jnp.concatenate([jnp.zeros(step.shape[:-1] + (1,)), jnp.cumsum(step, axis=-1)], axis=-1)
        pi = jax.nn.softmax(logp, axis=-1)
        weight = jnp.sum(jnp.moveaxis(p0, axis, -1), axis=-1, keepdims=True)
        p = jnp.moveaxis(pi * weight, -1, axis)
        return (p, flags) if status else settle(p, flags, "rate_steady_state")
    D = math.prod(gen.dims)
    if D > DENSE_RATE_MAX_DIM:
        raise MemoryError(f"dense stationary state of dimension {D} exceeds {DENSE_RATE_MAX_DIM}")
    A = gen.dense()
    M = A.at[-1].set(1.0)
    p = solve(M, jnp.zeros(D).at[-1].set(jnp.sum(p0))).reshape(gen.dims)
    flags = flag(~jnp.isfinite(p), NONFINITE)
    return (p, flags) if status else settle(p, flags, "rate_steady_state")
