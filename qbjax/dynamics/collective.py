"""Exact Lindblad dynamics of collective spin ensembles, in the U(1)-neutral sector.

A spec whose dofs are collective spins ``J_e`` (``Spin(N_e/2)``, the
permutation-symmetric sector of ``N_e`` two-level systems, levels indexed by
the excitation number ``n_e = m_e + N_e/2``) and whose jump operators are
sums ``L = sum_e alpha_e J_e^s`` of lowering (``s = -``) or raising
(``s = +``) operators changes the total excitation ``n = sum_e n_e`` by
exactly one per jump.  The master equation is therefore covariant under
``U(phi) = exp(i phi n)``: starting from a state diagonal in the ``n_e``
(Dicke product states), ``rho`` only ever has entries
``<n_0, n_1, ...| rho |n'_0, n'_1, ...>`` with ``sum n = sum n'``.  Any
Hamiltonian ``omega0 n`` (the spins' common splitting) commutes with such
``rho`` and drops out exactly (the paper's rotating frame).

So the state is stored as the real tensor

    R[n_0, n_1 .. n_{K-1}, n'_1 .. n'_{K-1}],   n'_0 = n_0 + sum_{e>0} (n_e - n'_e)   (implied)

with ``(N_0 + 1) prod_{e>0} (N_e + 1)^2`` entries instead of
``prod_e (N_e + 1)^2`` (ensemble 0 is the largest: a charger of ``N_C`` spins
costs a factor ``N_C + 1``, not ``(N_C + 1)^2``).  Entries whose implied
``n'_0`` falls outside ``0..N_0`` are zero.  Every ladder operator acting
from the left or the right is a shift along one axis times a 1-D weight;
a right action on ensemble 0 is a weight on the implied index.  Real
arithmetic suffices: ``J^pm`` and the rates are real in the Dicke basis.

Each channel costs ``5 r`` such passes (``r`` ensembles in ``L``):
``X = L rho``, ``X L^+``, ``L^+ X``, ``Y = rho L^+``, ``Y L``.  Intermediate
tensors carry their sector offset ``q = n_left - n_right`` as static data.
Time stepping is adaptive (diffrax, :class:`~qbjax.dynamics.ODEOptions`).
Individual (single-spin) channels leave the symmetric sector and are
refused here (qbjax solves them on qubits with the dense propagator, or in
the mean field).
"""

from __future__ import annotations

import math

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from ..representation.collective import CollectiveProblem, collective_problem  # noqa: F401 (re-exported)
from ..representation.matrix_free import shift
from ..status import TRACE_LOST, flag, merge, outside_trace, settle
from .cumulants import Collective
from .options import ODEOptions
from .stationary import GROWTH, STATIONARY_TOL, Certifier

__all__ = ["CollectiveProblem", "collective_problem", "state_size", "state_memory", "solve_collective",
           "WORKING_COPIES"]

#: Arrays of the state's size alive during one adaptive step (stages, error
#: estimate, intermediate passes): the memory estimate's multiplier.
WORKING_COPIES = 24


def _order(sizes):
    """Ensembles ordered with the largest first (the one whose right index is implied)."""
    anchor = int(np.argmax(sizes))
    return (anchor,) + tuple(e for e in range(len(sizes)) if e != anchor)


def state_size(sizes) -> int:
    """Entries of the neutral-sector tensor ``R`` (saturating at ``2^63``: a size check, never a huge integer)."""
    order = _order(sizes)
    logs = math.log(sizes[order[0]] + 1) + 2 * sum(math.log(sizes[e] + 1) for e in order[1:])
    if logs > 63 * math.log(2):
        return 2**63
    return (sizes[order[0]] + 1) * math.prod((sizes[e] + 1) ** 2 for e in order[1:])


def state_memory(sizes) -> int:
    """Bytes the exact solver needs (``WORKING_COPIES`` float64 tensors of :func:`state_size`)."""
    return 8 * WORKING_COPIES * state_size(sizes)


def _lower(N):
    n = np.arange(N + 1, dtype=np.float64)
    return np.sqrt(n * (N - n + 1))  # <n-1|J^-|n>


def _raise(N):
    n = np.arange(N + 1, dtype=np.float64)
    return np.sqrt((n + 1) * (N - n))  # <n+1|J^+|n>


class _Sector:
    """Index arithmetic of ``R`` for ``K`` ensembles (reordered, anchor first).

    ``R`` is held as a 3-D array ``(N_0 + 1, B, B)`` with the other ensembles'
    excitations flattened into one index of size ``B = prod (N_e + 1)``:
    a ladder step on ensemble ``e`` is a shift by its stride along axis 1
    (left) or 2 (right), with the digit's boundary folded into the weight.
    Contiguous 3-D shifts are what XLA's CPU backend does fast (a 7-D
    tensor of 3-wide axes is several times slower).
    """

    def __init__(self, sizes):
        self.sizes = tuple(sizes)
        self.K = len(sizes)
        dims = [n + 1 for n in sizes[1:]]
        self.B = math.prod(dims)
        self.shape = (sizes[0] + 1, self.B, self.B)
        digits = np.indices(dims).reshape(len(dims), -1) if dims else np.zeros((0, 1), int)
        self.digits = digits  # (K - 1, B)
        self.strides = [math.prod(dims[i + 1:]) for i in range(len(dims))]
        self.total = digits.sum(axis=0).astype(np.float64)  # sum of battery excitations per flat index

    def implied(self, q):
        """``n'_0`` as a broadcastable float tensor for sector ``q``."""
        c = np.arange(self.shape[0], dtype=np.float64)[:, None, None]
        return c + self.total[None, :, None] - self.total[None, None, :] - q

    def _digit_weights(self, e, raising, shift_sign):
        """Per flat index ``i``: the ladder element taking digit ``e`` of ``i + shift`` to that of ``i``."""
        N = self.sizes[e]
        d = self.digits[e - 1]
        g = _raise(N) if raising else _lower(N)
        delta = 1 if raising else -1
        src = d + shift_sign * delta  # the source digit
        w = np.zeros(self.B)
        ok = (src >= 0) & (src <= N)
        w[ok] = g[src[ok]]
        return w

    def _left_parts(self, q, e, raising):
        """``(weight, k, axis, q')`` of ``A x`` (``A = J_e^{+/-}``): ``out = weight * shift(x, k, axis)``."""
        delta = 1 if raising else -1
        if e == 0:
            N = self.sizes[0]
            g = _raise(N) if raising else _lower(N)
            w = np.zeros(N + 1)
            idx = np.arange(N + 1) - delta
            ok = (idx >= 0) & (idx <= N)
            w[ok] = g[idx[ok]]
            return w[:, None, None], -delta, 0, q + delta
        w = self._digit_weights(e, raising, -1)  # out[i] = g(d_i - delta) x[i - delta stride]
        return w[None, :, None], -delta * self.strides[e - 1], 1, q + delta

    def _right_parts(self, q, e, raising):
        """``(weight, k, axis, q')`` of ``x B`` (``B = J_e^{+/-}``), as :meth:`_left_parts`."""
        delta = 1 if raising else -1
        if e == 0:
            # weight on the implied index n'_0 (numpy at trace time: a small broadcast, no gather)
            c = self.implied(q + delta)
            N = self.sizes[0]
            prod = (c + 1) * (N - c) if raising else c * (N - c + 1)
            return np.where((c >= 0) & (c <= N), np.sqrt(np.maximum(prod, 0.0)), 0.0), 0, 0, q + delta
        # out[j] = x[j + delta stride] * g(d_j)
        N = self.sizes[e]
        g = _raise(N) if raising else _lower(N)
        return g[self.digits[e - 1]][None, None, :], delta * self.strides[e - 1], 2, q + delta

    def left(self, x, q, e, raising):
        """``A x`` with ``A = J_e^+`` (raising) or ``J_e^-``: returns the tensor of sector ``q + delta``."""
        w, k, axis, q = self._left_parts(q, e, raising)
        return jnp.asarray(w) * shift(x, k, axis), q

    def right(self, x, q, e, raising):
        """``x B`` with ``B = J_e^+`` (raising) or ``J_e^-``: sector ``q + delta``."""
        w, k, axis, q = self._right_parts(q, e, raising)
        return jnp.asarray(w) * shift(x, k, axis), q

    def matrix(self, parts):
        """The sparse matrix (on the flattened tensor) of ``weight * shift(., k, axis)``."""
        import scipy.sparse as sp

        w, k, axis, _ = parts
        size = math.prod(self.shape)
        index = np.arange(size).reshape(self.shape)
        w = np.broadcast_to(w, self.shape)
        pos = np.indices(self.shape)[axis] + k
        ok = (pos >= 0) & (pos < self.shape[axis]) & (w != 0)
        cols = index + k * index.strides[axis] // index.itemsize
        return sp.csr_matrix((w[ok], (index[ok], cols[ok])), shape=(size, size))


def _rhs(sector: _Sector, channels, rates):
    def rhs(R):
        out = jnp.zeros_like(R)
        for ch, rate in zip(channels, rates):
            s, sd = ch.raising, not ch.raising  # A = J^s, A^+ = J^{-s}
            X, qx = None, None
            for e, a in ch.terms:
                y, qx = sector.left(R, 0, e, s)
                X = a * y if X is None else X + a * y
            Y, qy = None, None
            for e, a in ch.terms:
                y, qy = sector.right(R, 0, e, sd)
                Y = a * y if Y is None else Y + a * y
            gain = loss = None
            for e, a in ch.terms:
                y, _ = sector.right(X, qx, e, sd)  # L rho L^+
                gain = a * y if gain is None else gain + a * y
                u, _ = sector.left(X, qx, e, sd)  # L^+ L rho
                v, _ = sector.right(Y, qy, e, s)  # rho L^+ L
                loss = a * (u + v) if loss is None else loss + a * (u + v)
            out = out + rate * (gain - 0.5 * loss)
        return out

    return rhs


def _generator_matrix(sector: _Sector, channels, rates):
    """The generator of :func:`_rhs` as a scipy CSR matrix on the flattened tensor (host, concrete rates)."""
    import scipy.sparse as sp

    size = math.prod(sector.shape)
    out = sp.csr_matrix((size, size))
    for ch, rate in zip(channels, np.asarray(rates, np.float64)):
        s, sd = ch.raising, not ch.raising

        def combine(parts_of, q):
            total = None
            for e, a in ch.terms:
                parts = parts_of(q, e)
                m = a * sector.matrix(parts)
                total = m if total is None else total + m
            return total, parts[3]

        X, qx = combine(lambda q, e: sector._left_parts(q, e, s), 0)
        Y, qy = combine(lambda q, e: sector._right_parts(q, e, sd), 0)
        gain, _ = combine(lambda q, e: sector._right_parts(q, e, sd), qx)
        u, _ = combine(lambda q, e: sector._left_parts(q, e, sd), qx)
        v, _ = combine(lambda q, e: sector._right_parts(q, e, s), qy)
        out = out + rate * (gain @ X - 0.5 * (u @ X + v @ Y))
    return out.tocsr()


def solve_collective(problem: CollectiveProblem, rates, ts, *, options: ODEOptions | None = None,
                     memory_limit: float | None = None, status: bool = False, moments: bool = False,
                     stationary: bool = True, report: dict | None = None):
    """Exact master equation; returns ``(mean excitations (K, T), trace (T,))``.

    Arguments:
        problem, rates: from :func:`collective_problem` (rates are leaves: differentiable).
        ts: save times (increasing, from the initial time).
        options: ODE tolerances (default ``rtol = 1e-10, atol = 1e-12``, Tsit5).
        memory_limit: bytes allowed (default the dense-operator limit of
            :mod:`qbjax.representation`); above it :class:`MemoryError` names the need.
        status: also return a :mod:`qbjax.status` flag instead of checking here.
        moments: also return ``d<n_e>/dt``, ``d^2<n_e>/dt^2`` (exact: the
            generator applied once and twice to the saved state) and the
            covariance ``<n_e n_f> - <n_e><n_f>`` ``(K, K, T)``, before the trace.
        stationary: with concrete rates and times, detect the stationary
            regime and stop integrating there (:mod:`qbjax.dynamics.stationary`): a window
            far past the relaxation costs what the relaxation costs.  The
            remaining save times hold the stationary state ``rho*``, and every
            state of the exact dynamics after the stop is within
            :data:`~qbjax.dynamics.stationary.STATIONARY_TOL` ``* rtol`` (trace norm) of it.
            Under ``jit``/``vmap``/``grad`` the whole window is integrated.
        report: a dict to receive ``stationary_from`` (the stop time, or
            ``None``) and ``stationary_bound`` (the certified trace-norm distance).

    Returns:
        ``<n_e>(t)`` in the caller's ensemble order and ``tr rho(t)`` (and the status).
    """
    from ..representation import DENSE_MEMORY_LIMIT

    limit = DENSE_MEMORY_LIMIT if memory_limit is None else memory_limit
    need = state_memory(problem.sizes)
    if need > limit:
        raise MemoryError(f"exact collective dynamics of ensembles {problem.sizes} needs {need / 2**30:.2f} GiB "
                          f"({state_size(problem.sizes)} matrix elements x {WORKING_COPIES} working copies; "
                          f"limit {limit / 2**30:.2f} GiB): use the mean field")
    if options is None:
        options = ODEOptions(rtol=1e-10, atol=1e-12, solver="tsit5", max_steps=2_000_000)
    rates = jnp.asarray(rates, jnp.float64)
    ts = jnp.asarray(ts, jnp.float64)
    R0 = _initial(problem)
    if report is not None:
        report.update(stationary_from=None, stationary_bound=None)
    concrete = outside_trace() and not any(isinstance(x, jax.core.Tracer) for x in (rates, ts))
    if stationary and concrete and ts.shape[0] > 2:
        out = _solve_stationary(problem, rates, ts, R0, options, moments, report)
    else:
        out = _solve_jit(problem, rates, ts, ts[0], ts[-1], R0, options, moments)[:-1]
    *values, flags = _finish(problem, out, moments)
    if status:
        return (*values, flags)
    return settle(tuple(values), flags, "solve_collective")


def _initial(problem: CollectiveProblem):
    """The initial tensor ``R0`` (a Dicke product state) in the solver's ensemble order."""
    order = _order(problem.sizes)
    sizes = tuple(problem.sizes[e] for e in order)
    sector = _Sector(sizes)
    exc = tuple(problem.excitations[e] for e in order)
    flat = int(np.ravel_multi_index(exc[1:], tuple(n + 1 for n in sizes[1:]))) if len(sizes) > 1 else 0
    return jnp.zeros(sector.shape).at[exc[0], flat, flat].set(1.0)


def _parts(problem: CollectiveProblem):
    """``(order, sizes, sector, channels)`` in the solver's ensemble order (largest ensemble first)."""
    order = _order(problem.sizes)
    pos = {e: i for i, e in enumerate(order)}
    sizes = tuple(problem.sizes[e] for e in order)
    channels = tuple(Collective(tuple((pos[e], a) for e, a in ch.terms), ch.raising) for ch in problem.channels)
    return order, sizes, _Sector(sizes), channels


def _finish(problem, out, moments):
    """Back to the caller's ensemble order, with the trace check as a flag."""
    order = _order(problem.sizes)
    K = len(order)
    observed, flags = out[0], out[1]
    inverse = jnp.asarray([order.index(e) for e in range(K)])
    means, trace = observed[0].T[inverse], observed[-1]
    bad = ~jnp.all(jnp.isfinite(means)) | jnp.any(jnp.abs(trace - 1.0) > 1e-6)
    flags = merge(flags, flag(bad, TRACE_LOST))
    if not moments:
        return means, trace, flags
    d1, d2 = observed[1].T[inverse], observed[2].T[inverse]
    cov = jnp.moveaxis(observed[3], 0, -1)[inverse][:, inverse]
    return means, d1, d2, cov, trace, flags


def _observer(sizes, rhs, moments):
    K = len(sizes)
    B = math.prod(n + 1 for n in sizes[1:])

    def populations(R):
        return jnp.diagonal(R.reshape(sizes[0] + 1, B, B), axis1=1, axis2=2).reshape((sizes[0] + 1,) +
                                                                                       tuple(n + 1 for n in sizes[1:]))

    def mean_excitations(R):
        P = populations(R)
        means = []
        for e in range(K):
            axes = tuple(a for a in range(K) if a != e)
            means.append(jnp.sum(P, axis=axes) @ jnp.arange(sizes[e] + 1, dtype=jnp.float64))
        return jnp.stack(means), P

    def observe(R):
        means, P = mean_excitations(R)
        if not moments:
            return means, jnp.sum(P)
        # the means are linear in R: their derivatives are the means of L R and L L R
        d1 = rhs(R)
        dmeans, _ = mean_excitations(d1)
        d2means, _ = mean_excitations(rhs(d1))
        grids = jnp.meshgrid(*[jnp.arange(n + 1, dtype=jnp.float64) for n in sizes], indexing="ij")
        second = jnp.stack([jnp.stack([jnp.sum(P * grids[e] * grids[f]) for f in range(K)]) for e in range(K)])
        return means, dmeans, d2means, second - jnp.outer(means, means), jnp.sum(P)

    return observe


@eqx.filter_jit
def _solve_jit(problem: CollectiveProblem, rates, ts, t_a, t_b, R, options, moments: bool = False):
    """The master equation from ``(t_a, R)`` to ``t_b``: ``(observed at ts in (t_a, t_b], flags, R(t_b))``."""
    _, sizes, sector, channels = _parts(problem)
    rhs = _rhs(sector, channels, rates)
    observe = _observer(sizes, rhs, moments)
    out, R1, solved = options.solve(lambda t, R, a: rhs(R), R, ts, fn=observe, final=True, span=(t_a, t_b))
    return out, solved, R1


@eqx.filter_jit
def _observe_jit(problem: CollectiveProblem, rates, R, moments: bool = False):
    _, sizes, sector, channels = _parts(problem)
    return _observer(sizes, _rhs(sector, channels, rates), moments)(R)


def _solve_stationary(problem, rates, ts, R0, options, moments, report):
    """:func:`_solve_jit` in pieces, stopping once the rest is proved stationary (:mod:`qbjax.dynamics.stationary`).

    Pieces grow geometrically (x 1.25) from the fastest rate's time scale, so
    the run ends at most 25 % past the first certifiable time; each check
    costs one generator product, and a sparse solve once the state is near
    stationary (one sparse LU per call, reused).
    """
    _, sizes, sector, channels = _parts(problem)
    ts_np = np.asarray(ts)
    tol = STATIONARY_TOL * options.rtol
    L = _generator_matrix(sector, channels, rates)
    scale = float(np.max(np.abs(L.diagonal()))) or 1.0
    checker = _certifier(sector, L, tol)
    piece = 1.0 / scale
    t_a, R = float(ts_np[0]), R0
    observed, flags = None, 0
    while True:
        t_b = min(float(ts_np[-1]), t_a + piece)
        out, solved, R1 = _solve_jit(problem, rates, ts, jnp.float64(t_a), jnp.float64(t_b), R, options, moments)
        take = (ts_np > t_a) & (ts_np <= t_b) if observed is not None else ts_np <= t_b
        observed = out if observed is None else jax.tree.map(
            lambda old, new: jnp.where(jnp.asarray(take).reshape((-1,) + (1,) * (new.ndim - 1)), new, old),
            observed, out)
        flags = flags | int(solved)
        t_a, R = t_b, R1
        if t_b >= ts_np[-1] or flags:
            break
        piece *= GROWTH
        star = checker(np.asarray(R1).ravel(), float(ts_np[-1]) - t_b)
        if checker.failed:  # a degenerate stationary space: integrate the rest in one piece
            piece = np.inf
        if star is not None:
            Rstar, bound = star
            rest = jax.tree.map(lambda x: jnp.asarray(x)[None], _observe_jit(problem, rates, jnp.asarray(
                Rstar.reshape(sector.shape)), moments))
            after = jnp.asarray(ts_np > t_b)
            observed = jax.tree.map(
                lambda old, new: jnp.where(after.reshape((-1,) + (1,) * (old.ndim - 1)), new, old), observed, rest)
            if report is not None:
                report.update(stationary_from=t_b, stationary_bound=bound)
            break
    return observed, jnp.asarray(flags, jnp.int32)


def _certifier(sector: _Sector, L, tol: float) -> Certifier:
    """A :class:`~qbjax.dynamics.stationary.Certifier` for the neutral-sector tensor.

    The trace norm is exact, block by block of total excitation ``n`` (the
    neutral-sector operator is block diagonal there): block ``n`` holds the
    entries ``(n - total[b], b, b')`` of the battery indices ``b`` with
    ``0 <= n - total[b] <= N_0``.
    """
    N0, tot = sector.shape[0] - 1, sector.total.astype(int)
    blocks = [b for n in range(N0 + int(tot.max(initial=0)) + 1)
              if len(b := np.flatnonzero((n - tot >= 0) & (n - tot <= N0)))]
    rows = [n for n in range(N0 + int(tot.max(initial=0)) + 1)
            if np.any((n - tot >= 0) & (n - tot <= N0))]

    def trace_norm(X):
        X = np.asarray(X).reshape(sector.shape)
        total, low = 0.0, np.inf
        for n, b in zip(rows, blocks):
            block = X[(n - tot[b])[:, None], b[:, None], b[None, :]]
            w = np.linalg.eigvalsh(0.5 * (block + block.T))
            total += float(np.abs(w).sum())
            low = min(low, float(w.min()))
        return total, low

    diag = np.zeros(sector.shape, bool)
    diag[:, np.arange(sector.B), np.arange(sector.B)] = True
    return Certifier(L, diag.ravel().astype(np.float64), trace_norm, sum(len(b) for b in blocks), tol,
                     ordering="NATURAL")
