"""Chebyshev and Krylov propagation of a closed Spec: planning on the host, one compiled run.

:func:`expansion` is what ``charge`` runs for ``method="chebyshev"`` (and
``"auto"`` above the dense limit) and ``"krylov"``: it plans the run from
concrete parameters and a uniform grid (:func:`chebyshev_plan`,
:func:`krylov_plan`), tries a model's working Fock window first
(:func:`windowed`, kept only under a leakage bound), and checks the
Chebyshev enclosure a posteriori.  The propagators themselves live in
:mod:`qbjax.dynamics.chebyshev` and :mod:`qbjax.dynamics.krylov`; the
operators they act with come from :mod:`qbjax.representation.closed`.
"""

from __future__ import annotations

import dataclasses
import math
import os
import warnings

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from . import representation as rep
from .dynamics.chebyshev import chebyshev_moments, chunk_plan
from .dynamics.krylov import lanczos_coefficients, ritz_enclosure, step_plan
from .model import Spec
from .representation.closed import (
    closed_operators,
    evaluation_terms,
    fock_window,
    initial_tensor,
    operator_diagonals,
    operator_norm,
    real_operators,
    sector_layout,
    tensor_masks,
    truncated_axes,
)
from .status import is_concrete
from .trajectory import Trajectory, energy_bound, finite_status


def _physical_memory() -> int:
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):  # pragma: no cover - non-POSIX
        return 16 * 2**30


#: Fixed cost of one product in the recursion loop (XLA dispatches several
#: small kernels per iteration, ~0.15 ms on a 2-core CPU), in state-entry
#: operations: it dominates for small states (a 7000-entry Dicke battery) and
#: favours longer chunks there.
_LOOP_OVERHEAD = 1.5e5


#: Largest Chebyshev argument per chunk (the moment matrices cost ``K^2`` per
#: state entry, the products ``K`` times the operator's terms), and memory cap
#: of one chunk's stored vectors: 4 GiB or a sixth of the machine, whichever is
#: less (XLA's temporaries add to the estimate; measured peaks are in
#: benchmarks/results/spin_chain.json).
CHEB_MAX_ARGUMENT, _CHEB_MEMORY = 250.0, min(2**32, _physical_memory() // 6)


#: Host cost of the ``S x K3`` Bessel coefficients (once per run, ~2.5 us each
#: in scipy) in the plan's units (~0.12 ns per state entry): it decides small
#: states with long windows (a 20-spin Dicke battery's 96-photon working window:
#: 30 ms of coefficients for a 17 ms run at 40 save times per chunk).
_COEFF_COST = 2.0e4


#: ... counted only for states up to this size: above it the run dominates, and
#: the unit (fitted on the Dicke battery) overstates the table (a 16-spin chain
#: split its one real chunk in two: 0.31 -> 0.61 s).
_COEFF_MAX_SIZE = 2**14


def expansion(spec: Spec, ts, method: str, working_cutoffs=()) -> Trajectory | None:
    """Closed dynamics of a large time-independent ``H`` by Chebyshev (``"auto"``, ``"chebyshev"``) or Krylov.

    ``"krylov"`` adapts to the spectral measure of the initial state instead
    of the whole spectrum; it falls back to Chebyshev (with a warning) when
    no basis of at most 64 vectors reaches one save interval or a step
    misses its error bound.  It is not chosen automatically: its pilot run
    costs ~65 products, and on the seed models measured here (16-spin
    chains, a 20-spin Dicke battery with a 330-photon cavity) Chebyshev with
    moment matrices was 3-6x faster, because these states' spectral measures
    reach across most of the spectrum.  ``None`` when neither applies
    (traced parameters, a non-uniform grid).

    ``working_cutoffs`` (:meth:`~qbjax.model.AbstractBattery.working_cutoffs`)
    first tries Chebyshev in a smaller Fock space (:func:`windowed`).
    """
    if method != "krylov" and working_cutoffs:
        traj = windowed(spec, ts, working_cutoffs)
        if traj is not None:
            return traj
    if method == "krylov":
        kplan = krylov_plan(spec, ts)
        if kplan is not None:
            traj = krylov_run(spec, ts, kplan)
            if traj is not None:
                return traj
    cplan = chebyshev_plan(spec, ts)
    if cplan is None:
        return None
    if method == "krylov":
        warnings.warn("method='krylov': no basis of at most 64 vectors reaches one save interval within "
                      f"{_KRYLOV_TOL:.0e}, or a step's error bound exceeded {_KRYLOV_ACCEPT:.0e}; "
                      "using 'chebyshev'", stacklevel=3)
    traj, growth = chebyshev_run(spec, ts, cplan)
    if growth > 1.0 + _CHEB_GROWTH_TOL:
        # the Lanczos estimate missed part of the spectrum (a Chebyshev
        # vector grew): redo with the rigorous Gershgorin enclosure
        traj, growth = chebyshev_run(spec, ts, chebyshev_plan(spec, ts, tight=False))
    return traj


#: Krylov basis sizes the plan chooses from, the pilot's error bound per step,
#: and the largest bound any step may meet before the run is redone by
#: Chebyshev.  In exact arithmetic every step has the pilot's ``T``; in
#: floating point each step leaves ~1e-16 of the state in far eigenvectors,
#: which later Lanczos runs resolve at the expense of the bulk (a 20-spin
#: Dicke battery with a 330-photon cavity, planned at 3e-13 per step, met
#: 1e-7 after 50 steps).  Planning at 1e-15 keeps every step near the plan.
_KRYLOV_SIZES, _KRYLOV_TOL, _KRYLOV_ACCEPT = (8, 12, 16, 24, 32, 40, 48, 64), 1e-15, 1e-10


def uniform_grid(spec: Spec, ts):
    """``(n, dt)`` when the coefficients are concrete and ``ts`` is uniform (up to linspace rounding, a few
    ulp of the span), else ``None`` (the expansions need both).  ``ts[0]`` is the initial time: a
    time-independent ``H`` makes the run from ``ts[0]`` the run from 0, shifted."""
    leaves = [t.coeff for t in spec.charger + spec.battery + spec.coupling]
    if any(isinstance(x, jax.core.Tracer) for x in leaves) or isinstance(ts, jax.core.Tracer):
        return None
    t = np.asarray(ts)
    n = t.shape[0] - 1
    if n < 1:
        return None
    span = t[-1] - t[0]
    scale = max(abs(t[0]), abs(t[-1]))
    if not span > 0 or np.max(np.abs(np.diff(t) - span / n)) > 64 * np.finfo(float).eps * scale:
        return None
    return n, float(span) / n


def krylov_plan(spec: Spec, ts, diagonals=None):
    """Static Krylov plan ``(m, s, n_steps, pilot, diagonals, cost)``, or ``None``.

    A pilot Lanczos run from ``psi_0`` (its basis becomes the first step's)
    gives ``T``; :func:`~qbjax.dynamics.krylov.error_bound` then gives, for
    each basis size ``m``, the longest step (``s`` save intervals, a power of
    two) whose error bound is below ``_KRYLOV_TOL``; the plan is the
    cheapest per unit time.
    """
    uniform = uniform_grid(spec, ts)
    if uniform is None:
        return None
    n, dt = uniform
    size = math.prod(spec.dims)
    sizes = [m for m in _KRYLOV_SIZES if m + 2 <= size and 3 * (m + 3) * size * 16 <= _CHEB_MEMORY]
    if not sizes:
        return None
    diagonals = operator_diagonals(spec) if diagonals is None else diagonals
    psi0 = initial_tensor(spec)
    pilot = krylov_pilot(spec, diagonals[0], psi0, sizes[-1] + 1)
    a, b = np.asarray(pilot[1]), np.asarray(pilot[2])
    _, off = rep.split_diagonal(spec.space, spec.charger + spec.battery + spec.coupling)
    best = step_plan(a, b, n, dt, sizes, 1 + len(off), 1 + len(evaluation_terms(spec)), _KRYLOV_TOL)
    if best is None:
        return None
    m, s, n_steps, cost = best
    return m, s, n_steps, pilot, diagonals, cost


@eqx.filter_jit
def krylov_pilot(spec: Spec, D, psi0, steps: int):
    from .dynamics.krylov import lanczos_basis

    _, off = rep.split_diagonal(spec.space, spec.charger + spec.battery + spec.coupling)
    offdiag = rep.MatrixFree(spec.space, off)
    return lanczos_basis(lambda x: D * x + offdiag(x), psi0, steps)


def krylov_run(spec: Spec, ts, plan) -> Trajectory | None:
    m, s, n_steps, pilot, diagonals, _ = plan
    dt = float(np.asarray(ts)[-1] - np.asarray(ts)[0]) / (np.asarray(ts).shape[0] - 1)
    traj, bound = _krylov_jit(spec, ts, m, dt * np.arange(1, s + 1), n_steps, pilot, diagonals)
    if not float(bound) <= _KRYLOV_ACCEPT:
        return None
    return traj


@eqx.filter_jit
def _krylov_jit(spec: Spec, ts, m: int, taus, n_steps: int, pilot, diagonals):
    from .dynamics.krylov import krylov_moments

    apply_H, apply_B, apply_C = closed_operators(spec, diagonals)
    masks = tensor_masks(spec)
    E, dE, d2E, var, top, bound = krylov_moments(apply_H, apply_B, initial_tensor(spec), n_steps, taus, m, masks,
                                                 apply_C, pilot)
    n1 = ts.shape[0]
    E, dE, d2E, var, top = (x[:n1] for x in (E, dE, d2E, var, top))
    top = jnp.max(top, axis=0) if masks else jnp.zeros(0)
    return Trajectory(ts, E, dE, d2E, var, top, energy_bound(spec), "quantum", "krylov", finite_status(E)), bound


def chebyshev_run(spec: Spec, ts, plan, series: bool = False):
    """``(trajectory, growth)``; with ``series`` also the top-level populations at every save time."""
    coeffs, c, r, n_chunks, diagonals, mode, _ = plan
    traj, growth, top = _chebyshev_jit(spec, ts, coeffs, jnp.asarray(c), jnp.asarray(r), n_chunks, diagonals, mode)
    return (traj, float(growth), top) if series else (traj, float(growth))


#: Fock windows (below ``WINDOW_FRACTION`` of the cutoff, :func:`fock_window`): the bound on
#: ``|E_B - E_B(window)|`` must stay below ``_WINDOW_TOL * max(1, |H_B|)``;
#: the leakage integral is taken on the save grid (upper sums) times a safety factor.
_WINDOW_TOL, WINDOW_SAFETY = 1e-12, 10.0


def leakage(G: float, ts, top) -> np.ndarray:
    """``L(t) = safety * G * int_0^t sqrt(p_top)``: upper Riemann sums on the save grid."""
    amp = np.sqrt(np.maximum(np.asarray(top), 0.0))
    dt = np.diff(np.asarray(ts))
    return WINDOW_SAFETY * G * np.concatenate([[0.0], np.cumsum(np.maximum(amp[1:], amp[:-1]) * dt)])


def windowed(spec: Spec, ts, working_cutoffs) -> Trajectory | None:
    """Chebyshev in a smaller Fock space, kept only when the leakage bound allows.

    With ``P`` the projector on the window and ``psi_w(t)`` the windowed
    evolution (``H_w = P H P``), Duhamel's formula gives
    ``|psi(t) - psi_w(t)| <= L(t) = int_0^t |(1 - P) H psi_w(s)| ds
    <= G int_0^t sqrt(p_top(s)) ds`` with ``p_top`` the population of the
    window's top level (:func:`fock_window`).  ``p_top`` is known at the
    save times; the integral is taken as an upper Riemann sum (the larger
    neighbour on each interval) times ``WINDOW_SAFETY``.  Then
    ``|E_B - E_B(window)| <= 2 |H_B| L + |H_B| L^2``; the result is kept when
    that is below ``_WINDOW_TOL * max(1, |H_B|)``, and its top-level
    population is reported as ``L^2`` (which bounds the full cutoff's top
    level).  ``None`` (run at the full cutoff) otherwise.
    """
    found = fock_window(spec, working_cutoffs)
    if found is None:
        return None
    spec_w, axis, G = found
    plan = chebyshev_plan(spec_w, ts)
    if plan is None:
        return None
    traj, growth, top = chebyshev_run(spec_w, ts, plan, series=True)
    if growth > 1.0 + _CHEB_GROWTH_TOL:
        return None
    masks = truncated_axes(spec_w)
    if axis not in masks:
        return None
    leak = leakage(G, ts, np.asarray(top)[:, masks.index(axis)])
    norm_b = operator_norm(spec.space, spec.battery)
    bound = 2 * norm_b * leak[-1] + norm_b * leak[-1] ** 2
    if not bound <= _WINDOW_TOL * max(1.0, norm_b):
        return None
    full_masks = truncated_axes(spec)
    top_full = np.asarray(traj.top_population).copy()
    out = np.zeros(len(full_masks))
    for i, a in enumerate(full_masks):
        out[i] = min(1.0, leak[-1] ** 2) if a == axis else top_full[masks.index(a)]
    return eqx.tree_at(lambda tr: tr.top_population, traj, jnp.asarray(out))


#: Lanczos steps for the spectral estimate, its safety margin (fraction of the
#: width), and the tolerated growth of ``max_k |phi_k|^2`` (1 for a valid enclosure).
_LANCZOS_STEPS, LANCZOS_MARGIN, _CHEB_GROWTH_TOL = 24, 0.02, 1e-9


def chebyshev_plan(spec: Spec, ts, tight: bool = True):
    """Static plan ``(coeffs, c, r, n_chunks, diagonals)`` for :func:`_chebyshev_jit`, or ``None``.

    Needs concrete coefficients (for the spectral enclosure and the number
    of terms) and a uniform grid from 0.  ``H_B`` may be any Hermitian sum of terms.

    The enclosure ``[c - r, c + r]`` starts from Gershgorin discs (rigorous,
    but up to twice the true width for a spin chain) and, with ``tight``, is
    narrowed to ``_LANCZOS_STEPS`` Lanczos steps' extreme Ritz values widened
    by their residuals and a 2% margin.  The number of products is about
    ``r t_max`` and the moment matrices cost ``(r t_max)^2``, so the narrowing
    pays for its products several times over.  It is checked a posteriori:
    ``|T_k(Ht) psi| <= |psi|`` for every ``k`` holds exactly when the
    spectrum seen by ``psi`` lies in the enclosure, and :func:`charge` redoes
    the run with the Gershgorin enclosure if a Chebyshev vector grew.
    """
    uniform = uniform_grid(spec, ts)
    if uniform is None:
        return None
    n, dt = uniform
    diagonals = operator_diagonals(spec)
    # Gershgorin discs of the full matrix (rigorous): the centres are the
    # diagonal, the radii bound the off-diagonal row sums term by term.
    c, r, off = _gershgorin(spec, diagonals)
    lo, hi = c - r, c + r
    size = math.prod(spec.dims)
    if tight and size > 2 * _LANCZOS_STEPS and off:
        lo_l, hi_l = lanczos_range(spec, diagonals)
        lo, hi = max(lo, lo_l), min(hi, hi_l)
    c, r = (hi + lo) / 2, max((hi - lo) / 2, 1e-300)
    layout = sector_layout(spec)
    if layout is not None:  # the run propagates one parity sector
        size = math.prod(layout.shape)
    # chunk length and evaluation mode of least estimated cost (numbers only: qbjax.dynamics.chebyshev)
    h_ops = 1 + len(off)
    eval_ops = 1 + len(evaluation_terms(spec))
    coeffs, n_chunks, mode, cost = chunk_plan(n, dt, c, r, size, h_ops, eval_ops, real=real_operators(spec),
                                              max_argument=CHEB_MAX_ARGUMENT, memory=_CHEB_MEMORY,
                                              loop_overhead=_LOOP_OVERHEAD, coeff_cost=_COEFF_COST,
                                              coeff_max_size=_COEFF_MAX_SIZE)
    return coeffs, c, r, n_chunks, diagonals, mode, cost


def lanczos_range(spec: Spec, diagonals) -> tuple[float, float]:
    """Extreme Ritz values of ``H`` after ``_LANCZOS_STEPS`` steps, widened by residual and margin."""
    rng = np.random.default_rng(0)
    v0 = rng.standard_normal(spec.dims)
    if not rep.is_real(spec.space, spec.charger + spec.battery + spec.coupling):
        v0 = v0 + 1j * rng.standard_normal(spec.dims)
    v0 = jnp.asarray(v0 / np.linalg.norm(v0))
    a, b = _lanczos_jit(spec, diagonals[0], v0, _LANCZOS_STEPS)
    return ritz_enclosure(np.asarray(a), np.asarray(b), LANCZOS_MARGIN)


@eqx.filter_jit
def _lanczos_jit(spec: Spec, D, v0, steps: int):
    _, off = rep.split_diagonal(spec.space, spec.charger + spec.battery + spec.coupling)
    offdiag = rep.MatrixFree(spec.space, off)
    return lanczos_coefficients(lambda v: D * v + offdiag(v), v0, steps)


@eqx.filter_jit
def _chebyshev_jit(spec: Spec, ts, coeffs, c: float, r: float, n_chunks: int, diagonals, mode: str):
    return _chebyshev_body(spec, ts, coeffs, c, r, n_chunks, diagonals, mode)


def _chebyshev_body(spec: Spec, ts, coeffs, c, r, n_chunks: int, diagonals, mode: str, one_loop: bool = False):
    """``one_loop``: start from a complex state, so that every chunk runs the same loop body (a real first
    chunk is cheaper to run but is a second loop for XLA to compile)."""
    layout = sector_layout(spec)
    apply_H, apply_B, apply_C = closed_operators(spec, diagonals, layout)
    masks = tensor_masks(spec)
    psi0 = initial_tensor(spec)
    if one_loop:
        psi0 = psi0.astype(jnp.complex128)
    if layout is not None:
        masks = tuple(layout.compact(m) for m in masks)
        psi0 = layout.compact(psi0)
    E, dE, d2E, var, top, growth = chebyshev_moments(apply_H, apply_B, psi0, n_chunks, coeffs, c,
                                                     r, masks, apply_C, mode, real_operators=real_operators(spec))
    series = top
    top = jnp.max(top, axis=0) if masks else jnp.zeros(0)
    traj = Trajectory(ts, E, dE, d2E, var, top, energy_bound(spec), "quantum", "chebyshev", finite_status(E))
    return traj, growth, series


# --- Chebyshev with traced parameters: one static plan for a bucket of sweep points ---------------


@dataclasses.dataclass(frozen=True)
class TracedChebyshev:
    """Static sizes of a Chebyshev run whose enclosure and window are traced (a sweep bucket's points).

    Every point of the bucket gets its own rigorous enclosure ``[c - r, c + r]``
    (:func:`enclosure`, Gershgorin discs of its traced coefficients) and its
    own window; ``terms`` per chunk cover the largest ``r * save * dt`` of the
    bucket (a smaller argument only adds coefficients below 1e-17), and
    ``state_terms`` the largest ``r * t_max`` (the state at any time of the
    window, for the ergotropy).
    """

    terms: int
    save: int
    chunks: int
    mode: str
    state_terms: int
    cost: float


def enclosure(spec: Spec, diagonals=None):
    """``(c, r)``: centre and half-width of Gershgorin's enclosure of ``H`` (rigorous; traceable)."""
    diagonals = operator_diagonals(spec) if diagonals is None else diagonals
    _, off = rep.split_diagonal(spec.space, spec.charger + spec.battery + spec.coupling)
    d = jnp.real(diagonals[0])
    radius = rep.row_bound(spec.space, off, traced=True)
    lo, hi = jnp.min(d - radius), jnp.max(d + radius)
    return (hi + lo) / 2, jnp.maximum((hi - lo) / 2, 1e-300)


def traced_plan(spec: Spec, num_times: int, argument: float, state_argument: float,
                batch: int = 1) -> TracedChebyshev:
    """The cheapest static chunking for ``num_times`` save times when ``r * t_max <= argument``.

    ``spec`` is any point of the bucket (only its structure is used);
    ``argument`` the bucket's largest ``r T`` (:func:`enclosure` times the window);
    ``batch`` the points that share each loop iteration (its fixed cost is
    divided among them).  ``cost`` is in the plan's units (state-entry
    operations, :func:`~qbjax.dynamics.chebyshev.chunk_plan`) per point,
    the state expansion included.
    """
    _, off = rep.split_diagonal(spec.space, spec.charger + spec.battery + spec.coupling)
    layout = sector_layout(spec)
    size = math.prod(layout.shape) if layout is not None else math.prod(spec.dims)
    n = num_times - 1
    loop = _LOOP_OVERHEAD / max(1, batch)
    coeffs, n_chunks, mode, cost = chunk_plan(n, argument / n, 0.0, 1.0, size, 1 + len(off),
                                              1 + len(evaluation_terms(spec)), real=real_operators(spec),
                                              max_argument=CHEB_MAX_ARGUMENT, memory=_CHEB_MEMORY,
                                              loop_overhead=loop, coeff_cost=0.0)
    from .dynamics.chebyshev import chebyshev_terms

    state_terms = chebyshev_terms(state_argument)
    # the state: one complex product per term (three units per entry and product term) and a loop step
    cost = cost * size + state_terms * (6 * (1 + len(off)) * size + loop)
    return TracedChebyshev(coeffs[0].shape[1] - 3, coeffs[0].shape[0], n_chunks, mode, state_terms, cost)


def traced_chebyshev(spec: Spec, ts, plan: TracedChebyshev) -> Trajectory:
    """Closed dynamics on the uniform grid ``ts`` (from 0, ``1 + chunks * save`` times) with traced parameters."""
    from .dynamics.chebyshev import traced_coefficients
    from .status import ENCLOSURE, flag, merge

    diagonals = operator_diagonals(spec)
    c, r = enclosure(spec, diagonals)
    dt = ts[1] - ts[0]
    coeffs = traced_coefficients(r, dt * jnp.arange(1, plan.save + 1), plan.terms)
    traj, growth, _ = _chebyshev_body(spec, ts, coeffs, c, r, plan.chunks, diagonals, plan.mode, one_loop=True)
    return eqx.tree_at(lambda t: t.status, traj, merge(traj.status, flag(growth > 1.0 + _CHEB_GROWTH_TOL, ENCLOSURE)))


def traced_state(spec: Spec, t, plan: TracedChebyshev):
    """The full state tensor at time ``t`` (at most the planned window) by one Chebyshev expansion."""
    return expanded_state(spec, t, plan.state_terms)


def expanded_state(spec: Spec, t, terms: int):
    """The full state tensor at time ``t`` by ``terms`` Chebyshev terms (enough for ``r t``; traceable)."""
    from .dynamics.chebyshev import chebyshev_state

    diagonals = operator_diagonals(spec)
    c, r = enclosure(spec, diagonals)
    layout = sector_layout(spec)
    apply_H, _, _ = closed_operators(spec, diagonals, layout)
    psi0 = initial_tensor(spec)
    if layout is not None:
        psi0 = layout.compact(psi0)
    psi = chebyshev_state(apply_H, psi0, c, r, t, terms)
    return layout.expand(psi) if layout is not None else psi


# --- the cost model of Auto for one concrete closed run ----------------------------------------------


#: Seconds per unit of a Chebyshev plan's cost (state-entry operations, loop steps at their single-call
#: price), the fixed price of planning one run (host Lanczos pilot, Bessel coefficients), and the price
#: charged for its extra compiled programs (a pilot and the expansion: about 1 s once per structure and
#: grid, amortised as if over 20 calls).  Fitted on the 2-core CPU to the closed Dicke battery of the
#: speed benchmark (N = 4 ... 40 at cutoff 3N + 10, 201 times): measured 3.0, 3.0, 6.0, 8.3, 20 ms at
#: N = 4, 6, 10, 20, 40, estimated 4.7, 4.7, 5.5, 8.4, 15 ms.
CHEB_SECONDS_PER_UNIT, CHEB_PLAN_SECONDS, CHEB_COMPILE_SECONDS = 5e-11, 1e-3, 0.05


def spectral_seconds(d: int, T: int) -> float:
    """Estimated seconds of one dense spectral run: ``eigh`` of the ``d x d`` block and the ``O(T d^2)``
    moments, plus a fixed 3 ms (fitted as above: measured 3.1, 6.6, 15, 128, 2295 ms at ``d`` = 55, 98,
    220, 735, 2665; estimated 3.4, 4.3, 10, 102, 2290 ms)."""
    return 3e-3 + 7.3e-11 * d**3 + 6.4e-10 * T * d * d


def _gershgorin(spec: Spec, diagonals=None):
    """``(c, r, off)``: Gershgorin's enclosure of ``H`` on the host (concrete) and its off-diagonal terms."""
    _, off = rep.split_diagonal(spec.space, spec.charger + spec.battery + spec.coupling)
    diagonals = operator_diagonals(spec) if diagonals is None else diagonals
    d = np.real(np.asarray(diagonals[0]))
    radius = rep.row_bound(spec.space, off)
    lo, hi = float((d - radius).min()), float((d + radius).max())
    return (hi + lo) / 2, max((hi - lo) / 2, 1e-300), off


def chebyshev_seconds(spec: Spec, ts) -> float | None:
    """Estimated seconds of one Chebyshev run on ``ts`` (Gershgorin enclosure: an upper bound), its compile
    price included, or ``None`` when the expansion does not apply (traced coefficients, a grid that is not
    uniform from 0)."""
    uniform = uniform_grid(spec, ts)
    if uniform is None:
        return None
    n, dt = uniform
    c, r, off = _gershgorin(spec)
    layout = sector_layout(spec)
    size = math.prod(layout.shape) if layout is not None else math.prod(spec.dims)
    *_, cost = chunk_plan(n, dt, c, r, size, 1 + len(off), 1 + len(evaluation_terms(spec)),
                          real=real_operators(spec), max_argument=CHEB_MAX_ARGUMENT, memory=_CHEB_MEMORY,
                          loop_overhead=_LOOP_OVERHEAD, coeff_cost=_COEFF_COST, coeff_max_size=_COEFF_MAX_SIZE)
    return CHEB_SECONDS_PER_UNIT * cost * size + CHEB_PLAN_SECONDS + CHEB_COMPILE_SECONDS


def prefer_chebyshev(spec: Spec, ts) -> bool:
    """Whether :class:`~qbjax.methods.Auto` should expand rather than diagonalise this closed run."""
    spectral = spectral_seconds(rep.basis(spec).dim, int(np.shape(ts)[0]))
    if spectral <= CHEB_PLAN_SECONDS + CHEB_COMPILE_SECONDS:  # an expansion's fixed price alone exceeds it
        return False
    cheb = chebyshev_seconds(spec, ts)
    return cheb is not None and cheb < spectral


def state_seconds(spec: Spec, t) -> float | None:
    """Estimated seconds of :func:`state_at` (compile price included), ``None`` for a traced ``t`` or spec."""
    from .dynamics.chebyshev import chebyshev_terms

    if not all(is_concrete(x) for x in (t, [term.coeff for term in spec.charger + spec.battery + spec.coupling])):
        return None
    _, r, off = _gershgorin(spec)
    layout = sector_layout(spec)
    size = math.prod(layout.shape) if layout is not None else math.prod(spec.dims)
    terms = chebyshev_terms(r * abs(float(t)))
    # one complex product per term (two real passes of the terms) and one loop step
    return (CHEB_SECONDS_PER_UNIT * terms * (12 * (1 + len(off)) * size + _LOOP_OVERHEAD) + CHEB_PLAN_SECONDS
            + CHEB_COMPILE_SECONDS)


def state_at(spec: Spec, t: float, reduce=None):
    """The full state tensor at a concrete time ``t`` by one Chebyshev expansion (Gershgorin enclosure);
    with ``reduce``, ``reduce(spec, state)`` computed in the same compiled program."""
    from .dynamics.chebyshev import chebyshev_terms

    _, r, _ = _gershgorin(spec)
    terms = chebyshev_terms(r * float(t))
    return _state_jit(spec, jnp.asarray(t, jnp.float64), 8 * math.ceil(terms / 8), reduce)


@eqx.filter_jit
def _state_jit(spec: Spec, t, terms: int, reduce):
    psi = expanded_state(spec, t, terms)
    return psi if reduce is None else reduce(spec, psi)
