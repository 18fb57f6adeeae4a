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
import equinox.internal as eqxi
import jax
import jax.numpy as jnp
import numpy as np

from ..linalg import lu_solver, solve, tridiagonal_solver
from ..representation.rates import RateGenerator, not_diagonal_reason, rate_generator  # noqa: F401 (re-exported)
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
