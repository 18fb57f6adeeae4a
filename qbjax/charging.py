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

import dataclasses
import math
import warnings
from collections.abc import Callable, Mapping

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array

from . import representation as rep
from .dynamics import ODEOptions
from .expansions import expansion, prefer_chebyshev
from .methods import NATIVE, SPECTRAL_MAX_DIM, Method, as_method, resolve_method
from .model import AbstractBattery, Spec
from .observe import Request, prepare
from .propagators import (
    check_grid,
    evenly_spaced,
    jump_times,
    lindblad_trajectory,
    long_open_window,
    run,
    spectral_trajectory,
    stationary_lindblad,
    stepped_run,
    stepped_terms,
)
from .representation.closed import classical_view, spectral_decomposition
from .representation.open import initial_density_matrix
from .states import (
    battery_ergotropy,
    battery_ergotropy_status,
    battery_hamiltonian,
    battery_state,
    battery_state_status,
)
from .status import is_concrete
from .trajectory import (
    TRUNCATION_TOL,
    Trajectory,
    TruncationWarning,
    warn_truncation,
)

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
    "lindblad_trajectory",
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
    observables: Mapping | None = None,
    initial_state=None,
    save_states: bool = False,
    rtol: float | None = None,
    atol: float | None = None,
) -> Trajectory:
    """Charge the battery and return its energy on a time grid.

    Arguments:
        model: a battery model, or a :class:`~qbjax.model.Spec`.
        ts: times (strictly increasing, at least two); ``ts[0]`` is the initial time, for every method (as in QuTiP and
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
        observables: ``{name: operator}``, evaluated in the same run into
            ``traj.expect[name]`` ``(T,)`` (real for a Hermitian operator,
            complex otherwise).  An operator is a :class:`~qbjax.model.Term`,
            a tuple of them, a dense ``(D, D)`` array on the full space (the
            spec's tensor order) or a QuTiP ``Qobj`` (dims checked).  The
            rate equation takes diagonal operators (``"auto"`` moves to
            ``"lindblad"`` for others); classical dynamics takes terms
            (their classical symbols).
        initial_state: a ket ``(D,)`` or a density matrix ``(D, D)`` on the
            full space (array or ``Qobj``; :func:`qbjax.coherent`,
            :func:`qbjax.product`, ...) replacing the spec's initial state.  A
            density matrix without dissipators evolves as a mixed closed system.
        save_states: keep the state at every time in ``traj.states`` (kets
            ``(T, D)`` or density matrices ``(T, D, D)``, full space).
        rtol, atol: the accuracy target of the adaptive methods (ODE,
            Lindblad, rates, classical flows, the families' own adaptive
            solvers), as :class:`ODEOptions` tolerances; defaults 1e-12
            (1e-10 and 1e-14 for rates).  Exclusive with ``options``.  The
            exact methods (spectral, the Chebyshev and Krylov expansions)
            are exact to rounding and ignore them.

    Returns:
        A :class:`Trajectory`.  Jitted once per model structure and grid
        shape; ``jax.grad`` and ``jax.vmap`` pass through the model's leaves,
        the observables' coefficients and the initial state.
    """
    options = _target(options, rtol, atol)
    native = model.native_method() if isinstance(model, AbstractBattery) else None
    if native is not None:
        if observables or initial_state is not None or save_states:
            raise ValueError(f"a {model.name} battery runs its own solver ({native!r}), which takes no "
                             "observables=, initial_state= or save_states=; charge its spec() for those")
        return _checked(_native(model, native, ts, method, classical, switch, options), truncation_tol)
    spec = model.spec() if isinstance(model, AbstractBattery) else model
    spec, req = prepare(spec, observables, initial_state, save_states,
                        classical=classical or as_method(method).key == "classical")
    if ts is None:
        if not isinstance(model, AbstractBattery):
            raise ValueError("ts is required when charging a bare Spec")
        ts = time_grid(model, t_max, num_times)
    ts = jnp.asarray(ts, jnp.float64)
    check_grid(ts)
    if spec.time_dependent:
        _check_modulations(spec, ts)
    chosen = as_method(method)
    resolved = resolve_method(spec, chosen, classical, switch)
    method = chosen.key
    if chosen.adaptive_options() is not None:
        options = chosen.adaptive_options()
    if options is None:
        options = ODEOptions(rtol=1e-10, atol=1e-14) if resolved == "rates" else ODEOptions(rtol=1e-12, atol=1e-12)
    if resolved == "classical":
        spec = classical_view(spec)
    if req.general:
        resolved = _general_method(spec, req, resolved, method, ts)
        if req.save_states and (req.mixed or resolved in ("lindblad", "rates")):
            rep.check_dense_memory(math.prod(spec.dims), count=int(ts.shape[0]), what="saved density matrices")
        if resolved == "stepped":
            traj = stepped_run(spec, ts, req, stepped_terms(spec, ts))
            return _checked(_with_space(traj, spec), truncation_tol)
        traj = (stationary_lindblad(spec, ts, options, req) if long_open_window(spec, ts, resolved, switch, req)
                else run(spec, ts, resolved, switch, options, req, uniform=evenly_spaced(ts)))
        return _checked(_with_space(traj, spec, switch), truncation_tol)
    expanded = False
    if resolved == "spectral" and method == "auto" and prefer_chebyshev(spec, ts):
        resolved, expanded = "chebyshev", True  # Auto's cost model: expanding is cheaper than eigh here
    if resolved in ("chebyshev", "krylov"):
        hint = model.working_cutoffs() if isinstance(model, AbstractBattery) else ()
        traj = expansion(spec, ts, method, hint)
        if traj is not None:
            return _checked(traj, truncation_tol)
        if expanded:
            return _checked(_with_space(run(spec, ts, "spectral", switch, options), spec), truncation_tol)
        # traced parameters or a non-uniform grid: adaptive steps instead
        if method in ("chebyshev", "krylov"):
            warnings.warn(f"method={method!r} needs concrete parameters and a uniform grid from 0; "
                          "using adaptive steps ('ode') instead", stacklevel=2)
        resolved = "ode"
    traj = (stationary_lindblad(spec, ts, options) if long_open_window(spec, ts, resolved, switch)
            else run(spec, ts, resolved, switch, options, uniform=evenly_spaced(ts)))
    return _checked(_with_space(traj, spec, switch), truncation_tol)



def _target(options, rtol, atol):
    """``options`` from an accuracy target ``rtol``/``atol`` (checked: finite, > 0; not with ``options``)."""
    if rtol is None and atol is None:
        return options
    if options is not None:
        raise ValueError("give either options= or rtol=/atol=, not both")
    for name, v in (("rtol", rtol), ("atol", atol)):
        if v is not None and not (isinstance(v, (int, float, np.floating)) and np.isfinite(v) and 0 < v < 1):
            raise ValueError(f"{name} must be a number in (0, 1), got {v!r}")
    rtol = 1e-12 if rtol is None else float(rtol)
    atol = rtol if atol is None else float(atol)
    return ODEOptions(rtol=rtol, atol=atol)


def _with_space(traj: Trajectory, spec: Spec, switch=None) -> Trajectory:
    """The trajectory with the spec's tensor factors (for ``reduced_state`` and ``to_qutip``) and the times
    where ``H`` jumps (for the grid-resolution test of ``max_power``) recorded."""
    return dataclasses.replace(traj, dims=spec.dims, dof_names=spec.names, jump_times=jump_times(spec, switch))


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


def _check_modulations(spec: Spec, ts) -> None:
    """Modulations are real; a modulated dissipator's ``f(t)`` stays >= 0 (checked on the grid, on the host)."""
    if not is_concrete(ts):
        return
    named = [(f"the modulation of term {t.factors}", t.modulation, False) for t in spec.charger + spec.coupling
             if t.modulation is not None]
    named += [(f"the modulation of dissipator {i}", d.modulation, True) for i, d in enumerate(spec.dissipators)
              if d.modulation is not None]
    for what, f, rate in named:
        try:
            values = jax.vmap(lambda t, f=f: jnp.asarray(f(t)))(ts)
        except Exception as e:  # noqa: BLE001  a modulation that does not trace is the user's error to see
            raise ValueError(f"{what} must be a JAX-traceable f(t) returning a scalar: {e}") from e
        if values.shape != ts.shape or jnp.iscomplexobj(values):
            raise ValueError(f"{what} must return a real scalar per time (write a complex drive as two real "
                             f"quadratures), got dtype {values.dtype} and shape {values.shape[1:]}")
        if not is_concrete(values):
            continue
        v = np.asarray(values)
        if not np.all(np.isfinite(v)):
            raise ValueError(f"{what} is not finite on the grid")
        if rate and np.any(v < 0):
            raise ValueError(f"{what} multiplies a rate and must be >= 0, got {v.min():g} at "
                             f"t = {float(np.asarray(ts)[np.argmin(v)]):g}")


def _general_method(spec: Spec, req: Request, resolved: str, method: str, ts) -> str:
    """The propagator for a general request (observables, an initial state, saved states), checked."""
    if resolved == "classical":
        if req.state is not None:
            raise ValueError("classical dynamics starts from the spec's classical_initial; initial_state= is a "
                             "quantum state")
        if req.save_states:
            raise ValueError("classical dynamics has no quantum states to save (save_states=True)")
        if any(not isinstance(op, tuple) for op in req.operators):
            raise ValueError("classical observables must be Terms (evaluated as their classical symbols); a dense "
                             "matrix or a Qobj has no classical counterpart")
        return "classical"
    if resolved == "rates":
        reason = _not_diagonal(spec, req)
        if reason is None:
            return "rates"
        if method == "rates":
            raise ValueError(f"method='rates' evolves populations only: {reason}; use method='lindblad'")
        return "lindblad"
    if resolved == "lindblad":
        return "lindblad"
    if req.mixed:
        if resolved == "spectral":
            return "spectral"
        if method in ("chebyshev", "krylov"):
            raise ValueError(f"method={method!r} propagates kets; a mixed initial_state takes 'spectral', 'ode' "
                             "or 'lindblad'")
        return "lindblad"  # the density matrix by adaptive steps (no dissipators)
    if resolved in ("chebyshev", "krylov"):
        concrete = is_concrete(ts) and all(is_concrete(x) for x in jax.tree.leaves(spec))
        if concrete:
            return "stepped"
        if method in ("chebyshev", "krylov"):
            warnings.warn(f"method={method!r} needs concrete parameters and times; using adaptive steps ('ode') "
                          "instead", stacklevel=3)
        return "ode"
    return resolved


def _not_diagonal(spec: Spec, req: Request) -> str | None:
    """Why the rate equation cannot serve this request (``None``: it can)."""
    x = req.state
    if x is not None:
        if not is_concrete(x):
            return "a traced initial_state cannot be checked to be diagonal"
        a = np.asarray(x)
        if a.ndim == 1 and np.count_nonzero(a) > 1:
            return "the initial ket is a superposition of basis states"
        if a.ndim == 2 and np.any(a[~np.eye(a.shape[0], dtype=bool)] != 0):
            return "the initial density matrix has coherences"
    for name, op in zip(req.names, req.operators, strict=True):
        if isinstance(op, tuple):
            if not all(rep._factors_diagonal(spec.space, t.factors) for t in op):
                return f"observable {name!r} is not diagonal"
        elif not is_concrete(op) or np.any(np.asarray(op)[~np.eye(op.shape[0], dtype=bool)] != 0):
            return f"observable {name!r} is not (provably) diagonal"
    return None
