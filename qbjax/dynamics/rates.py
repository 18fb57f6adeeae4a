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
           "DENSE_RATE_MAX_DIM", "markov_limit"]

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
    """The stationary populations reached from ``p0``: ``lim_{t -> inf} exp(A t) p0`` (same total as ``p0``).

    Birth-death chains: detailed balance along the chain, in log space so that
    ratios like ``e^{0.8 N}`` at ``N = 10^5`` neither overflow nor underflow.
    The chain is cut where both rates vanish: each segment is a closed class
    of its own and keeps its initial weight (a level no rate reaches stays
    populated).  A one-way link (pure loss) has no detailed-balanced state:
    such chains go through the general path below when they fit, and are
    flagged (``ONE_WAY_CHAIN``) otherwise.

    General generators (concrete rates, up to ``DENSE_RATE_MAX_DIM`` states):
    the exact Markov-chain limit, :func:`markov_limit` (closed classes, their
    stationary states, absorption probabilities from the transient states):
    right when the stationary state is not unique, for one-way chains, and
    for disconnected blocks.  Traced rates (under ``grad``) on a general
    generator: the null vector, unique stationary state assumed; a result
    outside the probability simplex is flagged (``NONFINITE``).
    ``status=True`` returns ``(p, status)`` instead of checking here.
    """
    p, flags, _ = steady_with_method(gen, p0)
    return (p, flags) if status else settle(p, flags, "rate_steady_state")


def steady_with_method(gen: RateGenerator, p0):
    """``(p, status, how)``: :func:`rate_steady_state` and a sentence saying how ``p`` was obtained."""
    axis = gen.chain_axis
    traced = any(isinstance(x, jax.core.Tracer) for x in jax.tree.leaves((gen, p0)))
    D = math.prod(gen.dims)
    if axis is not None:
        sub, _, sup = (jnp.moveaxis(x, axis, -1) for x in gen.tridiagonal())
        up = sub[..., 1:]  # rate r -> r + 1 (destination-indexed)
        down = sup[..., :-1]  # rate r + 1 -> r
        pos = (up > 0) & (down > 0)
        cut = (up == 0) & (down == 0)
        one_way = ~(pos | cut)
        if traced or D > DENSE_RATE_MAX_DIM or not bool(jnp.any(one_way)):
            p = _segmented_chain(up, down, pos, cut, jnp.moveaxis(p0, axis, -1))
            p = jnp.moveaxis(p, -1, axis)
            flags = flag(one_way, ONE_WAY_CHAIN)
            return p, flags, ("detailed balance along the birth-death chain (each segment between cuts keeps "
                              "its initial weight)")
    if D > DENSE_RATE_MAX_DIM:
        raise MemoryError(f"dense stationary state of dimension {D} exceeds {DENSE_RATE_MAX_DIM}")
    A = gen.dense()
    if not traced:
        p = jnp.asarray(markov_limit(np.asarray(A), np.asarray(p0).reshape(-1))).reshape(gen.dims)
        flags = flag(~jnp.isfinite(p), NONFINITE)
        return p, flags, "exact Markov-chain limit from the initial populations (closed classes, absorption)"
    M = A.at[-1].set(1.0)
    p = solve(M, jnp.zeros(D).at[-1].set(jnp.sum(p0))).reshape(gen.dims)
    outside = ~jnp.isfinite(p) | (jnp.min(p) < -1e-9 * jnp.sum(p0))
    flags = flag(outside, NONFINITE)
    return p, flags, "null vector of the generator (traced rates: a unique stationary state assumed, checked)"


def _segmented_chain(up, down, pos, cut, p0):
    """Detailed balance along the last axis, restarted after every cut; each segment keeps its weight."""
    n = p0.shape[-1]
    step = jnp.where(pos, jnp.log(jnp.where(pos, up, 1.0)) - jnp.log(jnp.where(pos, down, 1.0)), 0.0)
    # segment index of each level: the number of cuts below it
    seg = jnp.concatenate([jnp.zeros(cut.shape[:-1] + (1,), jnp.int32), jnp.cumsum(cut, axis=-1, dtype=jnp.int32)],
                          axis=-1)
    logp = jnp.concatenate([jnp.zeros(step.shape[:-1] + (1,)), jnp.cumsum(step, axis=-1)], axis=-1)

    def one_line(lp, sg, q):
        top = jax.ops.segment_max(lp, sg, num_segments=n)
        w = jnp.exp(lp - top[sg])
        total = jax.ops.segment_sum(w, sg, num_segments=n)
        weight = jax.ops.segment_sum(q, sg, num_segments=n)
        return w / total[sg] * weight[sg]

    flat = lambda x: x.reshape(-1, n)  # noqa: E731
    out = jax.vmap(one_line)(flat(logp), flat(seg), flat(p0))
    return out.reshape(p0.shape)


def markov_limit(A: np.ndarray, p0: np.ndarray) -> np.ndarray:
    """``lim_{t -> inf} exp(A t) p0`` for a rate matrix ``A`` (columns sum to 0, ``A[i, j]`` the rate ``j -> i``).

    Exact for any chain, whatever its stationary space: the closed
    communicating classes ``C`` (strongly connected components no rate
    leaves), each with its unique stationary distribution ``pi_C`` (null
    vector of ``A`` on ``C``), and the absorption probabilities ``h_C(j)``
    from each transient state (``sum_i A[i, j] h_C(i) = 0`` on the transient
    states, ``h_C = 1`` on ``C``, ``0`` on the other closed classes)::

        p_inf = sum_C (p0(C) + sum_{j transient} h_C(j) p0(j)) pi_C
    """
    from scipy.sparse.csgraph import connected_components

    D = A.shape[0]
    off = (A > 0) & ~np.eye(D, dtype=bool)
    # edge j -> i when A[i, j] > 0: the graph's adjacency is off.T
    n_comp, labels = connected_components(off.T, directed=True, connection="strong")
    leaves = np.zeros(n_comp, bool)
    ii, jj = np.nonzero(off)
    np.logical_or.at(leaves, labels[jj], labels[ii] != labels[jj])
    closed = [c for c in range(n_comp) if not leaves[c]]
    transient = np.flatnonzero(np.isin(labels, [c for c in range(n_comp) if leaves[c]]))
    p = np.zeros(D)
    absorb = None
    if transient.size:
        # absorption probabilities into each closed class: one solve with a column per class
        AT = A[np.ix_(transient, transient)]
        rhs = np.stack([-A[np.ix_(np.flatnonzero(labels == c), transient)].sum(axis=0) for c in closed], axis=1)
        absorb = np.linalg.solve(AT.T, rhs)
    for k, c in enumerate(closed):
        idx = np.flatnonzero(labels == c)
        if idx.size == 1:
            pi = np.ones(1)
        else:
            Ac = A[np.ix_(idx, idx)].copy()
            Ac[-1] = 1.0
            pi = np.linalg.solve(Ac, np.eye(idx.size)[-1])
        weight = p0[idx].sum() + (absorb[:, k] @ p0[transient] if absorb is not None else 0.0)
        p[idx] += weight * pi
    return p
