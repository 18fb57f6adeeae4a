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
                the initial state's sector (:func:`sector_layout`), and a
                model's working Fock window is tried first, kept only under
                a leakage bound (:func:`windowed`).
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

import warnings
from collections.abc import Callable

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array

from . import representation as rep
from .dynamics import ODEOptions, hamilton_flow, hamilton_vector_field, mesolve, sesolve, spectral_moments
from .dynamics.lindblad import lindblad_adjoint
from .dynamics.schrodinger import moments_from_states
from .expansions import expansion, prefer_chebyshev
from .methods import NATIVE, SPECTRAL_MAX_DIM, Method, as_method, resolve_method
from .model import AbstractBattery, Spec
from .representation.closed import (
    classical_view,
    spectral_decomposition,
    tensor_top,
    top_level_masks,
)
from .representation.open import dense_lindblad, initial_density_matrix
from .states import (
    battery_ergotropy,
    battery_ergotropy_status,
    battery_hamiltonian,
    battery_state,
    battery_state_status,
)
from .status import is_concrete, merge
from .trajectory import TRUNCATION_TOL, Trajectory, TruncationWarning, energy_bound, finite_status, warn_truncation

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
    "check_grid",
    "spectral_trajectory",
    # re-exported from their new homes (qbjax.states, qbjax.trajectory, qbjax.representation.closed)
    "battery_state_status",
    "battery_ergotropy_status",
    "spectral_decomposition",
    "initial_density_matrix",
    "TRUNCATION_TOL",
]


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
    if not (isinstance(num_times, (int, np.integer)) and num_times >= 2):
        raise ValueError(f"num_times must be an integer >= 2 (a power needs a time after 0), got {num_times!r}")
    if is_concrete(t_max) and not (np.all(np.isfinite(np.asarray(t_max))) and np.all(np.asarray(t_max) > 0)):
        raise ValueError(f"t_max must be finite and > 0, got {t_max!r}")
    return jax.lax.stop_gradient(jnp.linspace(0.0, jnp.asarray(t_max, jnp.float64), num_times))


def charge(
    model: AbstractBattery | Spec,
    ts=None,
    *,
    classical: bool = False,
    method: str | Method = "auto",
    t_max=None,
    num_times: int | None = None,
    switch: Callable | None = None,
    options: ODEOptions | None = None,
    truncation_tol: float = TRUNCATION_TOL,
) -> Trajectory:
    """Charge the battery and return its energy on a time grid.

    Arguments:
        model: a battery model, or a :class:`~qbjax.model.Spec`.
        ts: times (non-decreasing); ``ts[0]`` is the initial time, for every method (as in QuTiP and
            dynamiqs); default ``time_grid(model, t_max, num_times)``.
        classical: evolve the classical analog (Hamilton flow).
        method: a :mod:`qbjax.methods` value (``qb.methods.Chebyshev()``) or
            its string alias (``"auto"``, ``"spectral"``, ``"chebyshev"``,
            ``"krylov"``, ``"ode"``, ``"dense-ode"``, ``"lindblad"``, ``"rates"``).
        switch: ``lambda(t)`` multiplying ``H_I`` (default: 1, the step of Eq. 2).
        options: ODE tolerances (ignored by ``"spectral"``); an adaptive
            method value's own ``options`` take precedence.
        truncation_tol: warn (:class:`TruncationWarning`) when the top kept
            Fock level of a mode holds more than this population.

    Returns:
        A :class:`Trajectory`.  Jitted once per model structure and grid
        shape; ``jax.grad`` and ``jax.vmap`` pass through the model's leaves.
    """
    native = model.native_method() if isinstance(model, AbstractBattery) else None
    if native is not None:
        return _checked(_native(model, native, ts, method, classical, switch, options), truncation_tol)
    spec = model.spec() if isinstance(model, AbstractBattery) else model
    if ts is None:
        if not isinstance(model, AbstractBattery):
            raise ValueError("ts is required when charging a bare Spec")
        ts = time_grid(model, t_max, num_times)
    ts = jnp.asarray(ts, jnp.float64)
    check_grid(ts)
    chosen = as_method(method)
    resolved = resolve_method(spec, chosen, classical, switch)
    method = chosen.key
    if chosen.adaptive_options() is not None:
        options = chosen.adaptive_options()
    if options is None:
        options = ODEOptions(rtol=1e-10, atol=1e-14) if resolved == "rates" else ODEOptions(rtol=1e-12, atol=1e-12)
    if resolved == "classical":
        spec = classical_view(spec)
    expanded = False
    if resolved == "spectral" and method == "auto" and prefer_chebyshev(spec, ts):
        resolved, expanded = "chebyshev", True  # Auto's cost model: expanding is cheaper than eigh here
    if resolved in ("chebyshev", "krylov"):
        hint = model.working_cutoffs() if isinstance(model, AbstractBattery) else ()
        traj = expansion(spec, ts, method, hint)
        if traj is not None:
            return _checked(traj, truncation_tol)
        if expanded:
            return _checked(_charge_jit(spec, ts, "spectral", switch, options), truncation_tol)
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


def _native(model: AbstractBattery, native: str, ts, method, classical: bool, switch, options) -> Trajectory:
    """A family with its own solvers (the collision map, the reservoirs' collective solvers)."""
    if native not in NATIVE:
        raise ValueError(f"no solver registered for the {native!r} family (import its module)")
    aliases, runner = NATIVE[native]
    chosen = as_method(method)
    if chosen.key not in aliases:
        raise ValueError(f"a {model.name} battery takes method {', '.join(map(repr, aliases))}, got {chosen.key!r}")
    if classical or switch is not None:
        raise ValueError(f"a {model.name} battery has no classical analog or switching function here")
    if ts is not None:
        ts = jnp.asarray(ts, jnp.float64)
        check_grid(ts)
    return runner(model, ts, chosen, options)


def _checked(traj: Trajectory, tol: float) -> Trajectory:
    traj.check()
    warn_truncation(traj, tol)
    return traj


@eqx.filter_jit
def _charge_jit(spec: Spec, ts, method: str, switch, options: ODEOptions) -> Trajectory:
    if method == "classical":
        return _classical(spec, ts, switch, options)
    if method == "spectral":
        return spectral_trajectory(spec, ts)
    if method == "lindblad":
        return lindblad_trajectory(spec, ts, switch, options)
    if method == "rates":
        return _rates(spec, ts, options)
    return _ode(spec, ts, switch, options, matrix_free=(method == "ode"))


def spectral_trajectory(spec: Spec, ts, eig=None) -> Trajectory:
    """What ``method="spectral"`` computes, with the :func:`spectral_decomposition` when the caller has it."""
    b = rep.basis(spec)
    B = rep.dense_diagonal(spec.space, spec.battery, b)
    if B is None:
        B = rep.dense(spec.space, spec.battery, b)
    psi0 = rep.initial_vector(spec, b)
    masks = top_level_masks(spec, b)
    # ts[0] is the initial time (as in QuTiP and dynamiqs): phases run from there
    E, dE, d2E, var, top = spectral_moments(None, B, psi0, ts - ts[0], masks=tuple(masks),
                                            eig=spectral_decomposition(spec) if eig is None else eig)
    top = jnp.max(top, axis=-1)
    return Trajectory(ts, E, dE, d2E, var, top, energy_bound(spec), "quantum", "spectral", finite_status(E))


def _ode(spec: Spec, ts, switch, options: ODEOptions, matrix_free: bool) -> Trajectory:
    static_terms = spec.charger + spec.battery
    if matrix_free:
        H0 = rep.MatrixFree(spec.space, static_terms)
        HI = rep.MatrixFree(spec.space, spec.coupling)
        Bop = rep.MatrixFree(spec.space, spec.battery)
        psi0 = jnp.zeros(spec.dims, jnp.complex128).at[spec.initial_indices()].set(1.0)
        top_of = tensor_top(spec)
    else:
        b = rep.basis(spec)
        H0m = rep.dense(spec.space, static_terms, b)
        HIm = rep.dense(spec.space, spec.coupling, b)
        Bm = rep.dense(spec.space, spec.battery, b)
        H0, HI, Bop = (_matmul(m) for m in (H0m, HIm, Bm))
        psi0 = rep.initial_vector(spec, b)
        masks = top_level_masks(spec, b)
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
                      energy_bound(spec), "quantum", "ode" if matrix_free else "dense-ode", merge(solved, finite_status(E)))


def _matmul(m):
    return lambda x: m @ x


def lindblad_trajectory(spec: Spec, ts, switch, options: ODEOptions | None, observables=None) -> Trajectory:
    """What ``method="lindblad"`` computes; ``observables``: ``{name: dense operator on rep.basis(spec)}``
    evaluated in the same run (``traj.expect[name]``, real parts of Hermitian operators)."""
    if options is None:
        options = ODEOptions(rtol=1e-12, atol=1e-12)
    named = {} if observables is None else dict(observables)
    b, H0, HI, jumps, rho0 = dense_lindblad(spec)
    B = rep.dense(spec.space, spec.battery, b)
    masks = [jnp.diag(m).astype(jnp.complex128) for m in top_level_masks(spec, b)]
    # d<B>/dt = <L0^+(B)> + lam <LI^+(B)> with the generator split into its
    # static part L0 (H0 and dissipators) and the switched coupling LI.
    adj0, adjI = lindblad_adjoint(H0, jumps), lindblad_adjoint(HI, [])
    A, C = adj0(B), adjI(B)
    second = [adj0(A), adjI(A) + adj0(C), adjI(C)]
    masks = [*masks, *(jnp.asarray(op, jnp.complex128) for op in named.values())]
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
    n_masks = len(masks) - len(named)
    top = jnp.max(ex[7:7 + n_masks], axis=-1) if n_masks else jnp.zeros(0)
    expect = {name: ex[7 + n_masks + i] for i, name in enumerate(named)}
    return Trajectory(ts, E, dE, d2E, E2 - E**2, top, energy_bound(spec), "quantum", "lindblad",
                      merge(solved, finite_status(E)), expect=expect)


def _rates(spec: Spec, ts, options: ODEOptions) -> Trajectory:
    from .dynamics.rates import rate_solve
    from .representation.rates import rate_generator

    gen = rate_generator(spec)
    e = rep.diagonal_tensor(spec.space, spec.battery)
    top_of = tensor_top(spec, populations=True)

    def observe(p):
        Ap = gen(p)
        return (jnp.sum(e * p), jnp.sum(e * e * p), jnp.sum(e * Ap), jnp.sum(e * gen(Ap)), top_of(p))

    (E, E2, dE, d2E, top), solved = rate_solve(gen, spec.initial_population_tensor(), ts, observe, options=options,
                                               status=True)
    top = jnp.max(top, axis=0) if top.shape[-1] else jnp.zeros(0)
    return Trajectory(ts, E, dE, d2E, E2 - E**2, top, energy_bound(spec), "quantum", "rates", merge(solved, finite_status(E)))


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
    return Trajectory(ts, E, dE, d2E, jnp.zeros_like(E), jnp.zeros(0), energy_bound(spec),
                      "classical", "hamilton", merge(solved, finite_status(E)))

