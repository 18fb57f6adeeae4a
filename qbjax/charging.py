"""Charging dynamics: spec -> representation -> propagator -> trajectory.

:func:`charge` is the one entry point.  It picks the representation and the
propagator from the spec and the options, and returns a :class:`Trajectory`
(plain arrays on a time grid) that the figures of merit in
:mod:`qbjax.metrics` consume.

Methods (``method=``):

``"spectral"``  dense, time-independent ``H``: diagonalised once, every time
                exact.  Default when the (symmetry-reduced) dimension is at
                most :data:`SPECTRAL_MAX_DIM` and no switching function is given.
``"chebyshev"`` matrix-free Chebyshev expansion with dense output
                (:mod:`qbjax.dynamics.chebyshev`): exact to rounding for
                large time-independent ``H`` on uniform grids; default above
                :data:`SPECTRAL_MAX_DIM`.  The spectral enclosure is a
                Lanczos estimate checked a posteriori (Gershgorin fallback),
                real ``H`` runs in real arithmetic, and each chunk is
                evaluated by moment matrices or by states, whichever the
                cost model prefers.  A declared parity confines the run to
                the initial state's sector (:func:`_sector_layout`), and a
                model's working Fock window is tried first, kept only under
                a leakage bound (:func:`_windowed`).
``"krylov"``    matrix-free Lanczos propagation (:mod:`qbjax.dynamics.krylov`)
                with a rigorous residual bound per step (1e-15 planned):
                adapts to the initial state's spectral measure instead of
                the whole spectrum.  Explicit only; falls back to Chebyshev.
``"ode"``       adaptive Runge-Kutta (diffrax) on a matrix-free operator:
                time-dependent switching ``lambda(t)``, traced parameters.
``"rates"``     open systems whose state provably stays diagonal (diagonal
                ``H``, jump operators that each move one basis state to one
                basis state): an exact rate equation on the populations,
                ``O(D)`` per step (:mod:`qbjax.dynamics.rates`).  Default for
                such specs.
``"lindblad"``  dense density matrix; default for every other dissipative spec.
``classical``   Hamilton flow of the classical analog (``classical=True``).

The switching function of seed 000, Eq. 2 is a step: ``lambda = 1`` on
``[0, tau]``, so ``E_B(tau)`` is the battery energy under the full ``H`` at
``tau`` and needs no explicit switching; ``switch=`` takes any other
``lambda(t)`` (a callable or :class:`PiecewiseConstant`).
"""

from __future__ import annotations

import dataclasses
import functools
import math
import os
import warnings
from collections.abc import Callable

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float

from . import representation as rep
from .dynamics import ODEOptions, hamilton_flow, hamilton_vector_field, mesolve, sesolve, spectral_moments
from .dynamics.chebyshev import chebyshev_coefficients, chebyshev_moments, chebyshev_terms, evaluation_costs
from .dynamics.lindblad import lindblad_adjoint
from .dynamics.schrodinger import moments_from_states
from .linalg import eigh
from .model import AbstractBattery, Spec, Term
from .status import NONFINITE, flag, is_concrete, merge, settle
from .status import check as check_status

__all__ = [
    "Trajectory",
    "charge",
    "battery_state",
    "battery_ergotropy",
    "battery_hamiltonian",
    "PiecewiseConstant",
    "TruncationWarning",
    "SPECTRAL_MAX_DIM",
    "time_grid",
]

#: Largest dense block diagonalised by the default ``"auto"`` method.
SPECTRAL_MAX_DIM = 3000
#: Default tolerance on the population of the highest kept Fock level.
TRUNCATION_TOL = 1e-6


class TruncationWarning(UserWarning):
    """The highest kept level of a truncated mode holds too much population."""


class Trajectory(eqx.Module):
    """The battery's energy on a time grid, with what the figures of merit need.

    Attributes:
        ts: times ``(T,)``.
        energy: ``E_B(t)``, zero in the battery's ground state.
        d_energy, d2_energy: ``dE_B/dt`` and ``d^2E_B/dt^2`` under the
            Hamiltonian in force at ``t`` (exact, not finite differences).
        variance: ``<H_B^2> - <H_B>^2`` (0 for classical dynamics).
        top_population: per truncated mode, the largest population of its
            top kept level over the grid ``(n_modes,)``.
        energy_bound: an upper bound of ``E_B`` (certifies ``t_max``).
        dynamics: ``"quantum"`` or ``"classical"``; method: the propagator.
        status: a :mod:`qbjax.status` flag (``0``: no failure; one per point
            under ``vmap``).  :func:`charge` checks it on the host and raises
            :class:`~qbjax.status.SolverError`; inside your own ``jit`` read it
            or call :meth:`check` outside.
    """

    ts: Float[Array, " T"]
    energy: Float[Array, " T"]
    d_energy: Float[Array, " T"]
    d2_energy: Float[Array, " T"]
    variance: Float[Array, " T"]
    top_population: Float[Array, " modes"]
    energy_bound: Array
    dynamics: str = eqx.field(static=True)
    method: str = eqx.field(static=True)
    status: Array = eqx.field(default_factory=lambda: jnp.zeros((), jnp.int32))

    def check(self) -> Trajectory:
        """Raise :class:`~qbjax.status.SolverError` if a concrete status reports a failure; returns ``self``."""
        check_status(self.status, f"charge (method {self.method!r})")
        return self

    @property
    def power(self):
        """Average power ``E_B(t)/t`` (``0`` at ``t = 0``)."""
        t = self.ts
        return jnp.where(t > 0, self.energy / jnp.where(t > 0, t, 1.0), 0.0)


class PiecewiseConstant(eqx.Module):
    """``lambda(t) = values[k]`` for ``times[k] <= t < times[k+1]``, 0 outside.

    ``times`` has one more entry than ``values``; the jumps are handed to
    the adaptive step-size controller.
    """

    times: Array
    values: Array

    def __call__(self, t):
        k = jnp.searchsorted(self.times, t, side="right") - 1
        inside = (k >= 0) & (k < self.values.shape[0])
        return jnp.where(inside, self.values[jnp.clip(k, 0, self.values.shape[0] - 1)], 0.0)


def time_grid(model: AbstractBattery, t_max=None, num_times: int | None = None):
    """``linspace(0, t_max, num_times)``, both defaulting to the model's.

    The grid is a numerical device, not a parameter: it carries no gradient.
    """
    if t_max is None:
        t_max = model.default_t_max()
    if num_times is None:
        num_times = model.default_num_times()
    return jax.lax.stop_gradient(jnp.linspace(0.0, jnp.asarray(t_max, jnp.float64), num_times))


def _boson_top_masks(spec: Spec, b: rep.Basis):
    """Per boson dof, a 0/1 vector on the basis marking its top Fock level."""
    from .operators import Boson

    masks = []
    full = np.array(np.unravel_index(b.indices, spec.dims))
    for i, (_, dof) in enumerate(spec.space):
        if isinstance(dof, Boson) and not rep.truncation_is_exact(spec, i):
            masks.append(jnp.asarray((full[i] == dof.dim - 1).astype(float)))
    return masks


def _resolve_method(spec: Spec, method: str, classical: bool, switch) -> str:
    if classical:
        if spec.dissipators:
            raise ValueError("classical dynamics of a dissipative spec is not defined")
        return "classical"
    if spec.dissipators:
        from .dynamics.rates import not_diagonal_reason

        if method not in ("auto", "rates", "lindblad"):
            raise ValueError(f"a dissipative spec takes method 'auto', 'rates' or 'lindblad', got {method!r}")
        if method == "lindblad" or switch is not None:
            return "lindblad"
        reason = not_diagonal_reason(spec)
        if reason is None:
            return "rates"
        if method == "rates":
            raise ValueError(f"method='rates' needs a state that stays diagonal: {reason}")
        return "lindblad"
    if spec.initial_populations:
        raise ValueError("a mixed initial state (initial_populations) needs dissipators (an open-system propagator)")
    if method == "auto":
        if switch is not None:
            return "ode"
        dim = rep.basis(spec).dim
        terms = len(spec.charger + spec.battery + spec.coupling)
        # the dense build holds one matrix per term: too many terms -> matrix free
        fits = 16 * dim * dim * terms <= rep.DENSE_MEMORY_LIMIT
        return "spectral" if dim <= SPECTRAL_MAX_DIM and fits else "chebyshev"
    if method not in ("spectral", "chebyshev", "krylov", "ode", "dense-ode"):
        raise ValueError("method must be 'auto', 'spectral', 'chebyshev', 'krylov', 'ode' or 'dense-ode', "
                         f"got {method!r}")
    if method in ("chebyshev", "krylov") and switch is not None:
        raise ValueError(f"method={method!r} needs a time-independent H; use 'ode' with a switch")
    if method == "spectral" and switch is not None:
        raise ValueError("method='spectral' needs a time-independent H; use 'ode' with a switch")
    return method


def charge(
    model: AbstractBattery | Spec,
    ts=None,
    *,
    classical: bool = False,
    method: str = "auto",
    t_max=None,
    num_times: int | None = None,
    switch: Callable | None = None,
    options: ODEOptions | None = None,
    truncation_tol: float = TRUNCATION_TOL,
) -> Trajectory:
    """Charge the battery and return its energy on a time grid.

    Arguments:
        model: a battery model, or a :class:`~qbjax.model.Spec`.
        ts: times (increasing, starting at 0); default ``time_grid(model, t_max, num_times)``.
        classical: evolve the classical analog (Hamilton flow).
        method: ``"auto"``, ``"spectral"``, ``"chebyshev"``, ``"krylov"``,
            ``"ode"`` (matrix free) or ``"dense-ode"``; see the module docstring.
        switch: ``lambda(t)`` multiplying ``H_I`` (default: 1, the step of Eq. 2).
        options: ODE tolerances (ignored by ``"spectral"``).
        truncation_tol: warn (:class:`TruncationWarning`) when the top kept
            Fock level of a mode holds more than this population.

    Returns:
        A :class:`Trajectory`.  Jitted once per model structure and grid
        shape; ``jax.grad`` and ``jax.vmap`` pass through the model's leaves.
    """
    spec = model.spec() if isinstance(model, AbstractBattery) else model
    if ts is None:
        if not isinstance(model, AbstractBattery):
            raise ValueError("ts is required when charging a bare Spec")
        ts = time_grid(model, t_max, num_times)
    ts = jnp.asarray(ts, jnp.float64)
    check_grid(ts)
    resolved = _resolve_method(spec, method, classical, switch)
    if options is None:
        options = ODEOptions(rtol=1e-10, atol=1e-14) if resolved == "rates" else ODEOptions(rtol=1e-12, atol=1e-12)
    if resolved == "classical":
        spec = _classical_view(spec)
    if resolved in ("chebyshev", "krylov"):
        hint = model.working_cutoffs() if isinstance(model, AbstractBattery) else ()
        traj = _expansion(spec, ts, method, hint)
        if traj is not None:
            return _checked(traj, truncation_tol)
        # traced parameters or a non-uniform grid: adaptive steps instead
        if method in ("chebyshev", "krylov"):
            warnings.warn(f"method={method!r} needs concrete parameters and a uniform grid from 0; "
                          "using adaptive steps ('ode') instead", stacklevel=2)
        resolved = "ode"
    traj = _charge_jit(spec, ts, resolved, switch, options)
    return _checked(traj, truncation_tol)


def check_grid(ts, name: str = "ts") -> None:
    """Raise ``ValueError`` unless a concrete ``ts`` is a 1-D, finite, non-decreasing grid of times.

    A traced grid (inside ``jit``) is not checked here; the adaptive
    propagators then report a decreasing one as ``qbjax.status.BAD_GRID``.
    """
    if not is_concrete(ts):
        return
    t = np.asarray(ts)
    if t.ndim != 1 or t.size == 0:
        raise ValueError(f"{name} must be a 1-D array of times, got shape {t.shape}")
    if not np.all(np.isfinite(t)):
        raise ValueError(f"{name} must be finite, got {t[~np.isfinite(t)][:3].tolist()} among its entries")
    if np.any(np.diff(t) < 0):
        k = int(np.flatnonzero(np.diff(t) < 0)[0])
        raise ValueError(f"{name} must be non-decreasing, but {name}[{k + 1}] = {t[k + 1]:g} < {name}[{k}] = {t[k]:g}")


def _checked(traj: Trajectory, tol: float) -> Trajectory:
    traj.check()
    _warn_truncation(traj, tol)
    return traj


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
_CHEB_Z, _CHEB_MEMORY = 250.0, min(2**32, _physical_memory() // 6)

#: Host cost of the ``S x K3`` Bessel coefficients (once per run, ~2.5 us each
#: in scipy) in the plan's units (~0.12 ns per state entry): it decides small
#: states with long windows (a 20-spin Dicke battery's 96-photon working window:
#: 30 ms of coefficients for a 17 ms run at 40 save times per chunk).
_COEFF_COST = 2.0e4
#: ... counted only for states up to this size: above it the run dominates, and
#: the unit (fitted on the Dicke battery) overstates the table (a 16-spin chain
#: split its one real chunk in two: 0.31 -> 0.61 s).
_COEFF_MAX_SIZE = 2**14


def _expansion(spec: Spec, ts, method: str, working_cutoffs=()) -> Trajectory | None:
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
    first tries Chebyshev in a smaller Fock space (:func:`_windowed`).
    """
    if method != "krylov" and working_cutoffs:
        traj = _windowed(spec, ts, working_cutoffs)
        if traj is not None:
            return traj
    if method == "krylov":
        kplan = _krylov_plan(spec, ts)
        if kplan is not None:
            traj = _krylov_run(spec, ts, kplan)
            if traj is not None:
                return traj
    cplan = _chebyshev_plan(spec, ts)
    if cplan is None:
        return None
    if method == "krylov":
        warnings.warn("method='krylov': no basis of at most 64 vectors reaches one save interval within "
                      f"{_KRYLOV_TOL:.0e}, or a step's error bound exceeded {_KRYLOV_ACCEPT:.0e}; "
                      "using 'chebyshev'", stacklevel=3)
    traj, growth = _chebyshev_run(spec, ts, cplan)
    if growth > 1.0 + _CHEB_GROWTH_TOL:
        # the Lanczos estimate missed part of the spectrum (a Chebyshev
        # vector grew): redo with the rigorous Gershgorin enclosure
        traj, growth = _chebyshev_run(spec, ts, _chebyshev_plan(spec, ts, tight=False))
    return traj


#: Krylov basis sizes the plan chooses from, the pilot's error bound per step,
#: and the largest bound any step may meet before the run is redone by
#: Chebyshev.  In exact arithmetic every step has the pilot's ``T``; in
#: floating point each step leaves ~1e-16 of the state in far eigenvectors,
#: which later Lanczos runs resolve at the expense of the bulk (a 20-spin
#: Dicke battery with a 330-photon cavity, planned at 3e-13 per step, met
#: 1e-7 after 50 steps).  Planning at 1e-15 keeps every step near the plan.
_KRYLOV_SIZES, _KRYLOV_TOL, _KRYLOV_ACCEPT = (8, 12, 16, 24, 32, 40, 48, 64), 1e-15, 1e-10


def _concrete_uniform_grid(spec: Spec, ts):
    """``(n, dt)`` when the coefficients are concrete and ``ts`` is uniform from 0 (up to
    linspace rounding, a few ulp of ``t[-1]``), else ``None`` (the expansions need both)."""
    leaves = [t.coeff for t in spec.charger + spec.battery + spec.coupling]
    if any(isinstance(x, jax.core.Tracer) for x in leaves) or isinstance(ts, jax.core.Tracer):
        return None
    t = np.asarray(ts)
    n = t.shape[0] - 1
    if n < 1 or t[0] != 0.0 or np.max(np.abs(np.diff(t) - t[-1] / n)) > 64 * np.finfo(float).eps * abs(t[-1]):
        return None
    return n, float(t[-1]) / n


def _krylov_plan(spec: Spec, ts, diagonals=None):
    """Static Krylov plan ``(m, s, n_steps, pilot, diagonals, cost)``, or ``None``.

    A pilot Lanczos run from ``psi_0`` (its basis becomes the first step's)
    gives ``T``; :func:`~qbjax.dynamics.krylov.error_bound` then gives, for
    each basis size ``m``, the longest step (``s`` save intervals, a power of
    two) whose error bound is below ``_KRYLOV_TOL``; the plan is the
    cheapest per unit time.
    """
    from .dynamics.krylov import error_bound

    uniform = _concrete_uniform_grid(spec, ts)
    if uniform is None:
        return None
    n, dt = uniform
    size = math.prod(spec.dims)
    sizes = [m for m in _KRYLOV_SIZES if m + 2 <= size and 3 * (m + 3) * size * 16 <= _CHEB_MEMORY]
    if not sizes:
        return None
    diagonals = _chebyshev_diagonals(spec) if diagonals is None else diagonals
    psi0 = _initial_tensor(spec)
    pilot = _krylov_pilot_jit(spec, diagonals[0], psi0, sizes[-1] + 1)
    a, b = np.asarray(pilot[1]), np.asarray(pilot[2])
    _, off = rep.split_diagonal(spec.space, spec.charger + spec.battery + spec.coupling)
    h_ops, eval_ops = 1 + len(off), 1 + len(_chebyshev_eval_terms(spec))
    best = None
    grid = dt * np.arange(n + 1)
    for m in sizes:
        bound = error_bound(a, b, m, grid)
        ok = np.nonzero(bound[1:] > _KRYLOV_TOL)[0]
        s = n if ok.size == 0 else int(ok[0])  # bound[1 .. s] <= tol
        if s < 1:
            continue
        s = 1 << (s.bit_length() - 1)  # powers of two: few compiled shapes across parameters
        n_steps = -(-n // s)
        k = m + 2
        cost = n_steps * (3 * k * h_ops + 2 * k * k + 2 * k * k / 3 + 3 * k * eval_ops + 3 * s * k)
        if best is None or cost < best[-1]:
            best = (m, s, n_steps, cost)
    if best is None:
        return None
    m, s, n_steps, cost = best
    return m, s, n_steps, pilot, diagonals, cost


def _real_operators(spec: Spec) -> bool:
    """Whether ``H`` and ``H_B`` (hence ``C = H - H_B``) are real matrices."""
    return rep.is_real(spec.space, spec.charger + spec.battery + spec.coupling) and rep.is_real(spec.space,
                                                                                               spec.battery)


def _initial_tensor(spec: Spec):
    # a real H keeps a real initial basis state's vectors real
    real = rep.is_real(spec.space, spec.charger + spec.battery + spec.coupling)
    return jnp.zeros(spec.dims, jnp.float64 if real else jnp.complex128).at[spec.initial_indices()].set(1.0)


@eqx.filter_jit
def _krylov_pilot_jit(spec: Spec, D, psi0, steps: int):
    from .dynamics.krylov import lanczos_basis

    _, off = rep.split_diagonal(spec.space, spec.charger + spec.battery + spec.coupling)
    offdiag = rep.MatrixFree(spec.space, off)
    return lanczos_basis(lambda x: D * x + offdiag(x), psi0, steps)


def _krylov_run(spec: Spec, ts, plan) -> Trajectory | None:
    m, s, n_steps, pilot, diagonals, _ = plan
    dt = float(np.asarray(ts)[-1]) / (np.asarray(ts).shape[0] - 1)
    traj, bound = _krylov_jit(spec, ts, m, dt * np.arange(1, s + 1), n_steps, pilot, diagonals)
    if not float(bound) <= _KRYLOV_ACCEPT:
        return None
    return traj


@eqx.filter_jit
def _krylov_jit(spec: Spec, ts, m: int, taus, n_steps: int, pilot, diagonals):
    from .dynamics.krylov import krylov_moments

    apply_H, apply_B, apply_C = _closed_operators(spec, diagonals)
    masks = _tensor_masks(spec)
    E, dE, d2E, var, top, bound = krylov_moments(apply_H, apply_B, _initial_tensor(spec), n_steps, taus, m, masks,
                                                 apply_C, pilot)
    n1 = ts.shape[0]
    E, dE, d2E, var, top = (x[:n1] for x in (E, dE, d2E, var, top))
    top = jnp.max(top, axis=0) if masks else jnp.zeros(0)
    return Trajectory(ts, E, dE, d2E, var, top, _bound(spec), "quantum", "krylov", _finite(E)), bound


def _chebyshev_run(spec: Spec, ts, plan, series: bool = False):
    """``(trajectory, growth)``; with ``series`` also the top-level populations at every save time."""
    coeffs, c, r, n_chunks, diagonals, mode, _ = plan
    traj, growth, top = _chebyshev_jit(spec, ts, coeffs, jnp.asarray(c), jnp.asarray(r), n_chunks, diagonals, mode)
    return (traj, float(growth), top) if series else (traj, float(growth))


#: Fock windows: used only below this fraction of the cutoff; the bound on
#: ``|E_B - E_B(window)|`` must stay below ``_WINDOW_TOL * max(1, |H_B|)``;
#: the leakage integral is taken on the save grid (upper sums) times a safety factor.
_WINDOW_FRACTION, _WINDOW_TOL, _WINDOW_SAFETY = 0.8, 1e-12, 10.0


def _window_spec(spec: Spec, working_cutoffs):
    """``(spec_w, axis, G)``: the spec with one boson cut to its working size, or ``None``.

    ``H_w = P H P`` must hold term by term (the windowed operator matrices
    are the full ones sliced: true for ``a``, ``a^+``, ``n`` and their
    products that do not pass through the top level), and ``H`` may leave
    the window only from its top level (single raising steps).  Then
    ``(1 - P) H psi_w = (1 - P) H P_top psi_w`` and
    ``G = sum_t |c_t| |<w|M_t|w-1>| prod_f |M_{t,f}|`` bounds its norm per unit
    amplitude in the top level.
    """
    from .operators import Boson

    (name, w), = working_cutoffs[:1]
    names = [n for n, _ in spec.space]
    if name not in names:
        return None
    axis = names.index(name)
    dof = spec.space[axis][1]
    k0 = spec.initial_indices()[axis]
    if not isinstance(dof, Boson) or not (k0 < w - 1 and w <= _WINDOW_FRACTION * dof.dim):
        return None
    if spec.dissipators or spec.initial_populations is not None:
        return None
    space_w = tuple((n, Boson(w) if i == axis else d) for i, (n, d) in enumerate(spec.space))
    G = 0.0
    for t in spec.charger + spec.battery + spec.coupling:
        full, cut = rep._local_matrices(spec.space, t.factors), rep._local_matrices(space_w, t.factors)
        m = full[axis]
        if m is None:
            continue
        m = m.tocsr()
        if abs(cut[axis] - m[:w, :w]).sum() != 0:
            return None  # a product through the top level: the window is not P H P
        leak = m[w:, :w]
        if leak.nnz == 0:
            continue
        rows, cols = leak.nonzero()
        if cols.min() < w - 1 or rows.max() > 0:
            return None  # raises by more than one level
        other = math.prod(_norm2(f) for i, f in enumerate(full) if f is not None and i != axis)
        G += abs(complex(t.coeff)) * float(abs(leak).max()) * other
    spec_w = dataclasses.replace(spec, space=space_w)
    return spec_w, axis, G


def _norm2(m) -> float:
    """The spectral norm of a small sparse matrix (dense SVD up to 512 levels, else sqrt(|m|_1 |m|_inf))."""
    if m.shape[0] <= 512:
        return float(np.linalg.norm(m.toarray(), 2))
    a = abs(m)
    return float(np.sqrt(a.sum(axis=0).max() * a.sum(axis=1).max()))


def _leakage(G: float, ts, top) -> np.ndarray:
    """``L(t) = safety * G * int_0^t sqrt(p_top)``: upper Riemann sums on the save grid."""
    amp = np.sqrt(np.maximum(np.asarray(top), 0.0))
    dt = np.diff(np.asarray(ts))
    return _WINDOW_SAFETY * G * np.concatenate([[0.0], np.cumsum(np.maximum(amp[1:], amp[:-1]) * dt)])


def _operator_norm(space, terms) -> float:
    """``sum_t |c_t| prod_f |M_{t,f}|``: a bound of the operator norm of a sum of product terms."""
    return sum(abs(complex(t.coeff)) * math.prod(_norm2(f) for f in rep._local_matrices(space, t.factors)
                                                 if f is not None) for t in terms)


def _windowed(spec: Spec, ts, working_cutoffs) -> Trajectory | None:
    """Chebyshev in a smaller Fock space, kept only when the leakage bound allows.

    With ``P`` the projector on the window and ``psi_w(t)`` the windowed
    evolution (``H_w = P H P``), Duhamel's formula gives
    ``|psi(t) - psi_w(t)| <= L(t) = int_0^t |(1 - P) H psi_w(s)| ds
    <= G int_0^t sqrt(p_top(s)) ds`` with ``p_top`` the population of the
    window's top level (:func:`_window_spec`).  ``p_top`` is known at the
    save times; the integral is taken as an upper Riemann sum (the larger
    neighbour on each interval) times ``_WINDOW_SAFETY``.  Then
    ``|E_B - E_B(window)| <= 2 |H_B| L + |H_B| L^2``; the result is kept when
    that is below ``_WINDOW_TOL * max(1, |H_B|)``, and its top-level
    population is reported as ``L^2`` (which bounds the full cutoff's top
    level).  ``None`` (run at the full cutoff) otherwise.
    """
    found = _window_spec(spec, working_cutoffs)
    if found is None:
        return None
    spec_w, axis, G = found
    plan = _chebyshev_plan(spec_w, ts)
    if plan is None:
        return None
    traj, growth, top = _chebyshev_run(spec_w, ts, plan, series=True)
    if growth > 1.0 + _CHEB_GROWTH_TOL:
        return None
    masks = _mask_axes(spec_w)
    if axis not in masks:
        return None
    leak = _leakage(G, ts, np.asarray(top)[:, masks.index(axis)])
    norm_b = _operator_norm(spec.space, spec.battery)
    bound = 2 * norm_b * leak[-1] + norm_b * leak[-1] ** 2
    if not bound <= _WINDOW_TOL * max(1.0, norm_b):
        return None
    full_masks = _mask_axes(spec)
    top_full = np.asarray(traj.top_population).copy()
    out = np.zeros(len(full_masks))
    for i, a in enumerate(full_masks):
        out[i] = min(1.0, leak[-1] ** 2) if a == axis else top_full[masks.index(a)]
    return eqx.tree_at(lambda tr: tr.top_population, traj, jnp.asarray(out))


#: Lanczos steps for the spectral estimate, its safety margin (fraction of the
#: width), and the tolerated growth of ``max_k |phi_k|^2`` (1 for a valid enclosure).
_LANCZOS_STEPS, _LANCZOS_MARGIN, _CHEB_GROWTH_TOL = 24, 0.02, 1e-9


def _chebyshev_plan(spec: Spec, ts, tight: bool = True):
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
    uniform = _concrete_uniform_grid(spec, ts)
    if uniform is None:
        return None
    n, dt = uniform
    _, off = rep.split_diagonal(spec.space, spec.charger + spec.battery + spec.coupling)
    diagonals = _chebyshev_diagonals(spec)
    # Gershgorin discs of the full matrix (rigorous): the centres are the
    # diagonal, the radii bound the off-diagonal row sums term by term.
    d = np.asarray(diagonals[0])
    radius = rep.row_bound(spec.space, off)
    lo, hi = float((d - radius).min()), float((d + radius).max())
    size = math.prod(spec.dims)
    if tight and size > 2 * _LANCZOS_STEPS and off:
        lo_l, hi_l = _lanczos_range(spec, diagonals)
        lo, hi = max(lo, lo_l), min(hi, hi_l)
    c, r = (hi + lo) / 2, max((hi - lo) / 2, 1e-300)
    layout = _sector_layout(spec)
    if layout is not None:  # the run propagates one parity sector
        size = math.prod(layout.shape)
    # chunk length and evaluation mode of least estimated cost (per state entry)
    h_ops = 1 + len(off)
    eval_ops = 1 + len(_chebyshev_eval_terms(spec))
    # a real H keeps the first chunk's vectors real (the initial state is a basis
    # state); later chunks start from complex states
    real = _real_operators(spec)
    best = None
    for s in range(1, n + 1):
        if n % s or r * s * dt > max(_CHEB_Z, r * dt):
            continue
        # terms rounded up to a multiple of 8: nearby parameters often share one
        # compiled shape, and the extra terms only add coefficients below 1e-17
        K3 = 8 * math.ceil(chebyshev_terms(r * s * dt) / 8) + 3
        # bytes per entry: real vectors when the whole run is one real chunk
        entry = 8 if real and s == n else 16
        memory = {"moments": (2 * K3 + 8) * size * entry, "states": (K3 + 5 * s + 8) * size * entry}
        memory["states_matvec"] = memory["states"]
        first = evaluation_costs(s, K3, eval_ops, real=real, h_ops=h_ops, paired=real)
        for mode, ops in evaluation_costs(s, K3, eval_ops, h_ops=h_ops, paired=real).items():
            if memory[mode] > _CHEB_MEMORY and s > 1:
                continue
            loop = K3 * _LOOP_OVERHEAD / size
            # moments: ~6 quadratic forms of S x K3^2 per chunk (at matrix-product speed), whatever the
            # state size: they decide small states (a 10-spin Dicke sector of 825 entries: 0.044 s with
            # moments at S = 100, 0.015 s by states)
            quad = 8 * s * K3 * K3 / size if mode == "moments" else 0.0
            coef = _COEFF_COST * s * K3 / size if size <= _COEFF_MAX_SIZE else 0.0
            cost = (n // s) * (K3 * 3 * h_ops + loop + ops + quad) + coef
            if real:  # the first chunk at real-arithmetic cost
                cost -= K3 * 3 * h_ops / 2 + ops - first[mode]
            if best is None or cost < best[0]:
                best = (cost, s, K3 - 3, mode)
    cost, s, K, mode = best
    taus = dt * np.arange(1, s + 1)
    # phase free: observables do not see exp(-i c t), and real H then combines in real arithmetic
    return chebyshev_coefficients(c, r, taus, K, phase=False), c, r, n // s, diagonals, mode, cost


def _chebyshev_eval_terms(spec: Spec):
    """Off-diagonal terms of the operator applied to evaluate ``<H_B>``: ``H_B``, or ``C = H - H_B`` if smaller."""
    _, b_off = rep.split_diagonal(spec.space, spec.battery)
    _, c_off = rep.split_diagonal(spec.space, spec.charger + spec.coupling)
    return c_off if len(b_off) > len(c_off) else b_off


def _lanczos_range(spec: Spec, diagonals) -> tuple[float, float]:
    """Extreme Ritz values of ``H`` after ``_LANCZOS_STEPS`` steps, widened by residual and margin."""
    rng = np.random.default_rng(0)
    v0 = rng.standard_normal(spec.dims)
    if not rep.is_real(spec.space, spec.charger + spec.battery + spec.coupling):
        v0 = v0 + 1j * rng.standard_normal(spec.dims)
    v0 = jnp.asarray(v0 / np.linalg.norm(v0))
    a, b = (np.asarray(x) for x in _lanczos_jit(spec, diagonals[0], v0, _LANCZOS_STEPS))
    m = len(a)
    T = np.diag(a) + np.diag(b[: m - 1], 1) + np.diag(b[: m - 1], -1)
    theta, S = np.linalg.eigh(T)
    # |H y - theta y| = b_m |s_m| for the Ritz pair (theta, y)
    res = abs(b[m - 1]) * np.abs(S[m - 1])
    width = theta[-1] - theta[0]
    margin = _LANCZOS_MARGIN * width
    return float(theta[0] - res[0] - margin), float(theta[-1] + res[-1] + margin)


@eqx.filter_jit
def _lanczos_jit(spec: Spec, D, v0, steps: int):
    """Plain Lanczos (no reorthogonalisation: only the extreme Ritz values are used)."""
    _, off = rep.split_diagonal(spec.space, spec.charger + spec.battery + spec.coupling)
    offdiag = rep.MatrixFree(spec.space, off)

    def step(carry, _):
        v_prev, v, beta = carry
        w = D * v + offdiag(v) - beta * v_prev
        alpha = jnp.real(jnp.sum(jnp.conj(v) * w))
        w = w - alpha * v
        beta_new = jnp.sqrt(jnp.sum(jnp.abs(w) ** 2))
        v_next = w / jnp.where(beta_new > 0, beta_new, 1.0)
        return (v, v_next, beta_new), (alpha, beta_new)

    _, (a, b) = jax.lax.scan(step, (jnp.zeros_like(v0), v0, jnp.zeros(())), None, length=steps)
    return a, b


def _classical_view(spec: Spec) -> Spec:
    """The spec with everything the classical flow does not use made canonical.

    Sizes (cutoffs, spin lengths), the quantum initial state and the battery
    spectrum are static data that would force a recompilation for every
    ``N``; the classical Hamiltonian depends on none of them, so one compiled
    flow serves every size.
    """
    from .operators import Boson, Spin

    def canonical(dof):
        if not dof.classical_size or not isinstance(dof, (Boson, Spin)):
            return dof  # qubits and the like have no size to forget
        return Boson(1) if isinstance(dof, Boson) else Spin(1)

    space = tuple((name, canonical(dof)) for name, dof in spec.space)
    return Spec(space=space, charger=spec.charger, battery=spec.battery, coupling=spec.coupling,
                battery_dofs=spec.battery_dofs, initial=(), classical_initial=spec.classical_initial,
                energy_bound=spec.energy_bound)


def _warn_truncation(traj: Trajectory, tol: float):
    top = traj.top_population
    if isinstance(top, jax.core.Tracer) or top.size == 0:
        return
    worst = float(jnp.max(top))
    if not math.isfinite(worst):
        raise FloatingPointError("non-finite population in the truncated modes: the dynamics diverged")
    if worst > tol:
        warnings.warn(
            f"the highest kept Fock level reaches population {worst:.2e} > {tol:.0e}: "
            "increase the cutoff (results are truncated)",
            TruncationWarning,
            stacklevel=3,
        )


@eqx.filter_jit
def _charge_jit(spec: Spec, ts, method: str, switch, options: ODEOptions) -> Trajectory:
    if method == "classical":
        return _classical(spec, ts, switch, options)
    if method == "spectral":
        return _spectral(spec, ts)
    if method == "lindblad":
        return _lindblad(spec, ts, switch, options)
    if method == "rates":
        return _rates(spec, ts, options)
    return _ode(spec, ts, switch, options, matrix_free=(method == "ode"))


def _finite(x):
    """The status flag of a result that must be finite (no host callback: checked by :func:`charge`)."""
    return flag(~jnp.isfinite(x), NONFINITE)


@eqx.filter_jit
def _chebyshev_diagonals(spec: Spec):
    """The diagonals of ``H`` and ``H_B`` as materialised arrays.

    Built inside :func:`_chebyshev_jit`, XLA would fuse each sum of
    broadcast terms into every consumer and re-evaluate it per use: for a
    16-spin chain's 120 couplings that made the ``K`` products ``B phi_k``
    of the moment matrices cost 1.7 s instead of a few milliseconds.
    """
    diag, _ = rep.split_diagonal(spec.space, spec.charger + spec.battery + spec.coupling)
    b_diag_terms, _ = rep.split_diagonal(spec.space, spec.battery)
    return rep.diagonal_tensor(spec.space, diag), rep.diagonal_tensor(spec.space, b_diag_terms)


@eqx.filter_jit
def _chebyshev_jit(spec: Spec, ts, coeffs, c: float, r: float, n_chunks: int, diagonals, mode: str):
    layout = _sector_layout(spec)
    apply_H, apply_B, apply_C = _closed_operators(spec, diagonals, layout)
    masks = _tensor_masks(spec)
    psi0 = _initial_tensor(spec)
    if layout is not None:
        masks = tuple(layout.compact(m) for m in masks)
        psi0 = layout.compact(psi0)
    E, dE, d2E, var, top, growth = chebyshev_moments(apply_H, apply_B, psi0, n_chunks, coeffs, c,
                                                     r, masks, apply_C, mode, real_operators=_real_operators(spec))
    series = top
    top = jnp.max(top, axis=0) if masks else jnp.zeros(0)
    traj = Trajectory(ts, E, dE, d2E, var, top, _bound(spec), "quantum", "chebyshev", _finite(E))
    return traj, growth, series


def _sector_layout(spec: Spec) -> rep.ParityLayout | None:
    """The compact layout of the initial state's parity sector, when every closed-dynamics operator has one.

    A declared parity (``Charge(..., modulus=2)``, the Dicke battery's
    ``a^+ a + J_z + j``) confines a pure initial basis state to half the
    space; :func:`_chebyshev_jit` then propagates that half alone
    (:class:`~qbjax.representation.ParityLayout`).  ``None`` when there is no
    parity, or when ``H``, ``H_B`` or ``H - H_B`` is not banded or mixes the
    sectors (then the declared charge is not conserved by the terms).
    """
    charge = spec.conserved
    if charge is None or charge.modulus != 2 or spec.initial_populations is not None:
        return None
    # structure only (cached): dofs, which operators act where, the charge, the initial state
    structure = tuple(tuple(t.factors for t in op) for op in (spec.charger, spec.battery, spec.coupling))
    return _sector_layout_cached(spec.space, structure, charge, spec.initial_indices())


@functools.lru_cache(maxsize=256)
def _sector_layout_cached(space, structure, charge, initial):
    value = sum(w * k for w, k in zip(charge.weights, initial, strict=True)) % 2
    layout = rep.ParityLayout.of(tuple(d.dim for _, d in space), charge, value)
    if layout is None:
        return None
    charger, battery, coupling = (tuple(Term(1.0, f) for f in op) for op in structure)
    _, off = rep.split_diagonal(space, charger + battery + coupling)
    _, b_off = rep.split_diagonal(space, battery)
    for terms in (off, b_off, charger + coupling):
        if rep.compact_operator(space, terms, layout) is None:
            return None
    return layout


def _closed_operators(spec: Spec, diagonals, layout: rep.ParityLayout | None = None):
    """``apply_H``, ``apply_B`` and (when ``H_B`` has more off-diagonal terms than the rest) ``apply_C = H - H_B``.

    With ``layout`` they act on that compact parity sector (:func:`_sector_layout`).
    """
    _, off = rep.split_diagonal(spec.space, spec.charger + spec.battery + spec.coupling)
    D, b_diag = diagonals
    if layout is not None:
        D, b_diag = layout.compact(D), layout.compact(b_diag)
        offdiag = rep.compact_operator(spec.space, off, layout)
    else:
        offdiag = rep.MatrixFree(spec.space, off)

    def apply_H(x):
        return D * x + offdiag(x)

    _, b_off = rep.split_diagonal(spec.space, spec.battery)
    b_rest = rep.MatrixFree(spec.space, b_off) if layout is None else rep.compact_operator(spec.space, b_off, layout)

    def apply_B(x):
        return b_diag * x + b_rest(x) if b_off else b_diag * x

    # B = H - (H_A + H_I): when H_B has more off-diagonal terms than the rest,
    # get B psi from the H psi the expansion already has
    rest = spec.charger + spec.coupling
    apply_C = None
    if len(b_off) > len(rep.split_diagonal(spec.space, rest)[1]):
        apply_C = rep.MatrixFree(spec.space, rest) if layout is None else rep.compact_operator(spec.space, rest, layout)
    return apply_H, apply_B, apply_C


def _mask_axes(spec: Spec) -> list[int]:
    """The dof indices of the truncated bosons, in the order of :func:`_tensor_masks`."""
    from .operators import Boson

    return [i for i, (_, d) in enumerate(spec.space) if isinstance(d, Boson) and not rep.truncation_is_exact(spec, i)]


def _tensor_masks(spec: Spec):
    """Per truncated boson dof, a 0/1 tensor marking its top Fock level."""
    masks = []
    for i in _mask_axes(spec):
        d = spec.space[i][1]
        shape = [1] * len(spec.dims)
        shape[i] = d.dim
        m = np.zeros(d.dim)
        m[-1] = 1.0
        masks.append(jnp.asarray(np.broadcast_to(m.reshape(shape), spec.dims)))
    return tuple(masks)


def spectral_decomposition(spec: Spec):
    """``(w, V)`` of the spec's closed Hamiltonian on its symmetry-reduced basis (``rep.basis(spec)``).

    What ``method="spectral"`` diagonalises: compute it once and hand it to
    :func:`_spectral` and :func:`battery_state_status` (``eig=``) when one
    point needs both a trajectory and a state (a sweep's ``ergotropy``).
    """
    b = rep.basis(spec)
    return eigh(rep.dense(spec.space, spec.charger + spec.battery + spec.coupling, b, dtype=None))


def _spectral(spec: Spec, ts, eig=None) -> Trajectory:
    b = rep.basis(spec)
    B = rep.dense_diagonal(spec.space, spec.battery, b)
    if B is None:
        B = rep.dense(spec.space, spec.battery, b)
    psi0 = rep.initial_vector(spec, b)
    masks = _boson_top_masks(spec, b)
    E, dE, d2E, var, top = spectral_moments(None, B, psi0, ts, masks=tuple(masks),
                                            eig=spectral_decomposition(spec) if eig is None else eig)
    top = jnp.max(top, axis=-1)
    return Trajectory(ts, E, dE, d2E, var, top, _bound(spec), "quantum", "spectral", _finite(E))


def _bound(spec: Spec):
    return jnp.asarray(jnp.inf if spec.energy_bound is None else spec.energy_bound, jnp.float64)


def _ode(spec: Spec, ts, switch, options: ODEOptions, matrix_free: bool) -> Trajectory:
    static_terms = spec.charger + spec.battery
    if matrix_free:
        H0 = rep.MatrixFree(spec.space, static_terms)
        HI = rep.MatrixFree(spec.space, spec.coupling)
        Bop = rep.MatrixFree(spec.space, spec.battery)
        psi0 = jnp.zeros(spec.dims, jnp.complex128).at[spec.initial_indices()].set(1.0)
        top_of = _tensor_top(spec)
    else:
        b = rep.basis(spec)
        H0m = rep.dense(spec.space, static_terms, b)
        HIm = rep.dense(spec.space, spec.coupling, b)
        Bm = rep.dense(spec.space, spec.battery, b)
        H0, HI, Bop = (_matmul(m) for m in (H0m, HIm, Bm))
        psi0 = rep.initial_vector(spec, b)
        masks = _boson_top_masks(spec, b)
        top_of = lambda psi: jnp.stack([jnp.abs(psi) ** 2 @ m for m in masks]) if masks else jnp.zeros(0)  # noqa: E731
    lam = (lambda t: 1.0) if switch is None else switch
    jump_ts = getattr(switch, "times", None)

    def apply_H(t, psi, args):
        return H0(psi) + lam(t) * HI(psi)

    psis, solved = sesolve(apply_H, psi0, ts, options=options, jump_ts=jump_ts, status=True)
    # Moments under the Hamiltonian in force at each t: E, and the derivatives
    # used to refine the maximum power (exact for the step switch).
    lam_t = jax.vmap(lam)(ts) if switch is not None else jnp.ones_like(ts)

    def moments(psi, lt):
        return moments_from_states(lambda x: H0(x) + lt * HI(x), Bop, psi[None])

    E, dE, d2E, var = jax.vmap(moments)(psis, lam_t)
    top = jax.vmap(top_of)(psis)
    return Trajectory(ts, E[:, 0], dE[:, 0], d2E[:, 0], var[:, 0], jnp.max(top, axis=0),
                      _bound(spec), "quantum", "ode" if matrix_free else "dense-ode", merge(solved, _finite(E)))


def _matmul(m):
    return lambda x: m @ x


def _tensor_top(spec: Spec, populations: bool = False):
    from .operators import Boson

    axes = [i for i, (_, d) in enumerate(spec.space) if isinstance(d, Boson) and not rep.truncation_is_exact(spec, i)]

    def top(psi):
        p = psi if populations else jnp.abs(psi) ** 2
        return jnp.stack([jnp.sum(jnp.take(p, -1, axis=i)) for i in axes]) if axes else jnp.zeros(0)

    return top


def _lindblad(spec: Spec, ts, switch, options: ODEOptions) -> Trajectory:
    b = rep.basis(spec)
    H0 = rep.dense(spec.space, spec.charger + spec.battery, b)
    HI = rep.dense(spec.space, spec.coupling, b)
    B = rep.dense(spec.space, spec.battery, b)
    jumps = [(d.rate, rep.dense(spec.space, d.operator, b)) for d in spec.dissipators]
    rho0 = initial_density_matrix(spec, b)
    masks = [jnp.diag(m).astype(jnp.complex128) for m in _boson_top_masks(spec, b)]
    # d<B>/dt = <L0^+(B)> + lam <LI^+(B)> with the generator split into its
    # static part L0 (H0 and dissipators) and the switched coupling LI.
    adj0, adjI = lindblad_adjoint(H0, jumps), lindblad_adjoint(HI, [])
    A, C = adj0(B), adjI(B)
    second = [adj0(A), adjI(A) + adj0(C), adjI(C)]
    observables = [B, B @ B, A, C, *second, *masks]
    if switch is None:
        H, Hs, lam = H0 + HI, None, None
        lam_t = jnp.ones_like(ts)
    else:
        H, Hs, lam = H0, HI, switch
        lam_t = jax.vmap(switch)(ts)
    ex, _, solved = mesolve(H, jumps, rho0, ts, observables=observables, options=options, switch=lam,
                            H_switched=Hs, jump_ts=getattr(switch, "times", None), status=True)
    E, E2 = ex[0], ex[1]
    dE = ex[2] + lam_t * ex[3]
    d2E = ex[4] + lam_t * ex[5] + lam_t**2 * ex[6]
    top = jnp.max(ex[7:], axis=-1) if masks else jnp.zeros(0)
    return Trajectory(ts, E, dE, d2E, E2 - E**2, top, _bound(spec), "quantum", "lindblad", merge(solved, _finite(E)))


def initial_density_matrix(spec: Spec, b: rep.Basis):
    """``rho_0`` on basis ``b``: the pure initial product state, or the mixed one of ``initial_populations``."""
    if spec.initial_populations:
        p = spec.initial_population_tensor().reshape(-1)[b.indices]
        return jnp.diag(p.astype(jnp.complex128))
    psi0 = rep.initial_vector(spec, b)
    return jnp.outer(psi0, psi0.conj())


def _rates(spec: Spec, ts, options: ODEOptions) -> Trajectory:
    from .dynamics.rates import rate_generator, rate_solve

    gen = rate_generator(spec)
    e = rep.diagonal_tensor(spec.space, spec.battery)
    top_of = _tensor_top(spec, populations=True)

    def observe(p):
        Ap = gen(p)
        return (jnp.sum(e * p), jnp.sum(e * e * p), jnp.sum(e * Ap), jnp.sum(e * gen(Ap)), top_of(p))

    (E, E2, dE, d2E, top), solved = rate_solve(gen, spec.initial_population_tensor(), ts, observe, options=options,
                                               status=True)
    top = jnp.max(top, axis=0) if top.shape[-1] else jnp.zeros(0)
    return Trajectory(ts, E, dE, d2E, E2 - E**2, top, _bound(spec), "quantum", "rates", merge(solved, _finite(E)))


def _classical(spec: Spec, ts, switch, options: ODEOptions) -> Trajectory:
    kinds = rep.classical_kinds(spec.space)
    h0 = rep.classical_hamiltonian(spec.space, spec.charger + spec.battery)
    hi = rep.classical_hamiltonian(spec.space, spec.coupling)
    hb = rep.classical_hamiltonian(spec.space, spec.battery)
    x0 = rep.classical_state(spec)
    if switch is None:
        h = lambda x: h0(x) + hi(x)  # noqa: E731
        xs, solved = hamilton_flow(h, kinds, x0, ts, options=options, status=True)
        lam_t = jnp.ones_like(ts)
    else:
        xs, solved = hamilton_flow(h0, kinds, x0, ts, options=options, switch=switch, h_switched=hi,
                                   jump_ts=getattr(switch, "times", None), status=True)
        lam_t = jax.vmap(switch)(ts)

    def moments(x, lt):
        f = hamilton_vector_field(lambda y: h0(y) + lt * hi(y), kinds)
        d1 = lambda y: jax.jvp(hb, (y,), (f(y),))[1]  # noqa: E731  dE/dt = {E_B, H}
        return hb(x), d1(x), jax.jvp(d1, (x,), (f(x),))[1]

    E, dE, d2E = jax.vmap(moments)(xs, lam_t)
    return Trajectory(ts, E, dE, d2E, jnp.zeros_like(E), jnp.zeros(0), _bound(spec),
                      "classical", "hamilton", merge(solved, _finite(E)))


def battery_state(model: AbstractBattery | Spec, t) -> Array:
    """The battery's reduced density matrix at time ``t`` (closed quantum dynamics).

    The global state is evolved exactly (dense spectral block, or matrix-free
    ODE for large spaces) and the charger dofs are traced out.  Returned on
    the battery dofs' product basis (dimension ``prod`` of their dims).
    """
    rho, flags = battery_state_status(model, t)
    return settle(rho, flags, "battery_state")


def battery_state_status(model: AbstractBattery | Spec, t, eig=None):
    """``(rho_B, status)``: :func:`battery_state` with its failure flag (:mod:`qbjax.status`) returned, not raised.

    ``eig``: the :func:`spectral_decomposition` of the spec, when the caller has it.
    """
    spec = model.spec() if isinstance(model, AbstractBattery) else model
    if spec.dissipators:
        raise ValueError("battery_state needs closed dynamics; for open systems use the Lindblad states")
    method = _resolve_method(spec, "auto", False, None)
    return _battery_state_jit(spec, jnp.asarray(t, jnp.float64), method, eig if method == "spectral" else None)


@eqx.filter_jit
def _battery_state_jit(spec: Spec, t, method: str, eig=None):
    ts = jnp.stack([jnp.zeros_like(t), t])
    if method == "spectral":
        b = rep.basis(spec)
        w, V = spectral_decomposition(spec) if eig is None else eig
        psi = V @ (jnp.exp(-1j * w * t) * (V.conj().T @ rep.initial_vector(spec, b)))
        full = b.embed(psi)
        solved = jnp.int32(0)
    else:
        H = rep.MatrixFree(spec.space, spec.charger + spec.battery + spec.coupling)
        psi0 = jnp.zeros(spec.dims, jnp.complex128).at[spec.initial_indices()].set(1.0)
        psis, solved = sesolve(lambda s, x, a: H(x), psi0, ts, options=ODEOptions(rtol=1e-12, atol=1e-12),
                               status=True)
        full = psis[-1]
    keep = [i for i, n in enumerate(spec.names) if n in spec.battery_dofs]
    rest = [i for i in range(len(spec.dims)) if i not in keep]
    x = jnp.transpose(full, keep + rest).reshape(math.prod(spec.dims[i] for i in keep), -1)
    rho = x @ x.conj().T
    return rho, merge(solved, _finite(rho))


def battery_hamiltonian(spec: Spec) -> Array:
    """``H_B`` as a dense matrix on the battery dofs' product basis."""
    sub = tuple((n, d) for n, d in spec.space if n in spec.battery_dofs)
    b = rep.Basis(sub, np.arange(math.prod(d.dim for _, d in sub)), (tuple(d.dim for _, d in sub), None, None))
    return rep.dense(sub, spec.battery, b)


def battery_ergotropy(model: AbstractBattery | Spec, t, *, physical: bool = True) -> Array:
    """Ergotropy of the battery's reduced state at ``t``.

    With ``physical=True`` the passive state may use the whole physical
    battery (the spec's ``battery_levels`` / ``battery_degeneracies``, for
    example all ``2^N`` states of ``N`` qubits simulated in the symmetric
    sector); with ``False`` only the simulated battery space.
    """
    value, flags = battery_ergotropy_status(model, t, physical=physical)
    return settle(value, flags, "battery_ergotropy")


def battery_ergotropy_status(model: AbstractBattery | Spec, t, *, physical: bool = True, eig=None):
    """``(ergotropy, status)``: :func:`battery_ergotropy` with its failure flag returned, not raised."""
    from .metrics import ergotropy

    spec = model.spec() if isinstance(model, AbstractBattery) else model
    rho, flags = battery_state_status(spec, t, eig=eig)
    hb = battery_hamiltonian(spec)
    if physical and spec.battery_levels is not None:
        return ergotropy(rho, hb, levels=spec.battery_levels, degeneracies=spec.battery_degeneracies), flags
    return ergotropy(rho, hb), flags
