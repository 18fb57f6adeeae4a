"""The common result of every propagator: :class:`Trajectory`, and the truncation check."""

from __future__ import annotations

import math
import warnings

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float

from .model import Spec
from .status import NONFINITE, flag
from .status import check as check_status

__all__ = ["Trajectory", "TruncationWarning", "TRUNCATION_TOL", "warn_truncation", "warn_top_population", "finite_status", "energy_bound"]


#: Default tolerance on the population of the highest kept Fock level.
TRUNCATION_TOL = 1e-6

#: A rate equation's final state is kept as a diagonal density matrix up to this many levels.
FINAL_RATES_MAX = 4096


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
        discrete: the energy exists only at the grid points (a collision
            map: one point per collision); ``d_energy`` and ``d2_energy``
            are then zero and the figures of merit do not refine between
            points.
        expect: named expectation values ``{name: (T,)}`` beside the
            battery energy (``charge(observables=...)``: real for a Hermitian
            operator, complex otherwise; the reservoir battery's charger and
            per-battery energies; ``{}`` when none were asked for).
        states: with ``charge(save_states=True)``, the state at every time on
            the full product space in the spec's tensor order: kets ``(T, D)``
            for closed dynamics from a pure state, density matrices
            ``(T, D, D)`` otherwise; ``None`` when not asked for.
        final_state: the state at ``ts[-1]`` (same layout, no time axis),
            kept by every method that holds states (spectral, ODE,
            Lindblad, rates up to :data:`FINAL_RATES_MAX` levels, the
            Chebyshev expansions when states were asked for); ``None`` for the
            others (classical flows, the families' own solvers).
        jump_times: the times where ``H`` jumps (a switch's or a modulation's
            ``times``), ``None`` when it does not; the grid-resolution test of
            :func:`qbjax.max_power` does not hold a kink there against the grid.
        dims, dof_names: the spec's tensor factors (for :func:`qbjax.reduced_state`
            and :meth:`to_qutip`); ``()`` for the families' own solvers.
        stationary_from: the time after which the Lindblad method proved the
            window stationary and stopped integrating (the later points hold
            the stationary state, every exact state within ``1e-10`` in trace
            norm of it: :mod:`qbjax.dynamics.stationary`); ``None`` when it
            integrated the whole window.
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
    discrete: bool = eqx.field(static=True, default=False)
    expect: dict = eqx.field(default_factory=dict)
    states: Array | None = None
    final_state: Array | None = None
    jump_times: Array | None = None
    dims: tuple[int, ...] = eqx.field(static=True, default=())
    dof_names: tuple[str, ...] = eqx.field(static=True, default=())
    stationary_from: Array | None = None

    def to_qutip(self):
        """A ``qutip.Result``-like view: ``times``, ``expect`` (list, in the order asked), ``e_data``
        (dict), ``states`` and ``final_state`` as ``Qobj`` s with the spec's dims (needs QuTiP)."""
        from .qutip_io import to_qutip

        return to_qutip(self)

    def check(self) -> Trajectory:
        """Raise :class:`~qbjax.status.SolverError` if a concrete status reports a failure; returns ``self``."""
        check_status(self.status, f"charge (method {self.method!r})")
        return self

    @property
    def power(self):
        """Average power ``E_B(t)/t`` (``0`` at ``t = 0``)."""
        t = self.ts
        return jnp.where(t > 0, self.energy / jnp.where(t > 0, t, 1.0), 0.0)


def warn_truncation(traj: Trajectory, tol: float):
    """Warn (:class:`TruncationWarning`) when a truncated mode's top kept level exceeds ``tol``."""
    warn_top_population(traj.top_population, tol, level="the highest kept Fock level", advice="increase the cutoff",
                        diverged="non-finite population in the truncated modes: the dynamics diverged", stacklevel=4)


def warn_top_population(top, tol: float, *, level: str, advice: str, diverged: str, stacklevel: int = 3):
    """The one truncation check: ``top`` (concrete) above ``tol`` warns, non-finite raises; traced does nothing."""
    if isinstance(top, jax.core.Tracer) or np.size(top) == 0:
        return
    worst = float(np.max(np.asarray(top)))
    if not math.isfinite(worst):
        raise FloatingPointError(diverged)
    if worst > tol:
        warnings.warn(f"{level} reaches population {worst:.2e} > {tol:.0e}: {advice} (results are truncated)",
                      TruncationWarning, stacklevel=stacklevel + 1)


def finite_status(x):
    """The status flag of a result that must be finite (no host callback: checked by :func:`charge`)."""
    return flag(~jnp.isfinite(x), NONFINITE)


def energy_bound(spec: Spec):
    return jnp.asarray(jnp.inf if spec.energy_bound is None else spec.energy_bound, jnp.float64)
