"""Figures of merit (seed 000, Eq. 3-5; seed 001, Eq. 16-17).

All take trajectories or states (plain arrays), never models, and are
differentiable.

Maximum average power
    ``Pbar = max_{0 < tau <= T} E_B(tau) / tau``, ``tau`` counted from ``ts[0]`` (the initial time;
    ``taubar`` is returned as a time of the grid).  The grid maximum is refined
    beyond the grid: on the two grid intervals around it ``E_B`` is replaced by
    its quintic Hermite interpolant built from ``E_B, dE_B/dt, d^2E_B/dt^2``
    at the nodes (all exact from the dynamics, so the interpolant is accurate
    to ``O(h^6)``), and Newton's method solves ``d(E/tau)/dtau = 0``, i.e.
    ``tau E'(tau) - E(tau) = 0``.  The optimal time ``taubar`` carries no
    gradient; by the envelope theorem the gradient of ``Pbar`` with respect to
    any parameter is that of ``E_B(taubar)/taubar`` at fixed ``taubar``, which is
    what ``jax.grad`` then computes.
"""

from __future__ import annotations

import warnings

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from .linalg import eigvalsh

__all__ = [
    "MaxPower",
    "MaxEnergy",
    "max_energy",
    "max_power",
    "ergotropy",
    "passive_energy",
    "passive_energy_of_spectrum",
    "collective_advantage",
    "hermite5",
    "grid_resolution",
]


class MaxPower(eqx.Module):
    """``power`` = ``Pbar``, ``time`` = ``taubar``, ``energy`` = ``Ebar = E_B(taubar)``.

    ``at_boundary`` is true when the maximum sits at the end of the grid (then
    ``t_max`` is too short); ``resolved`` when the grid resolves the dynamics
    (:func:`grid_resolution`: the cubic Hermite interpolant of ``E`` and ``dE/dt``
    reproduces the exact ``d^2E/dt^2`` at every node to 25% of its range, which
    holds for steps up to about half a period of the fastest beat and fails for
    a grid sampling it below Nyquist); ``certified`` when the grid resolves the
    dynamics and ``t_max >= energy_bound / Pbar``, i.e. no time inside or after
    the window can beat the maximum found.  ``omega`` estimates the fastest
    angular frequency of ``E_B(t)`` (``max |E''| / max |E'|``), from which
    ``max_power`` suggests the grid size when the grid is too coarse.
    """

    power: jax.Array
    time: jax.Array
    energy: jax.Array
    at_boundary: jax.Array
    certified: jax.Array
    resolved: jax.Array = eqx.field(default_factory=lambda: jnp.asarray(True))
    omega: jax.Array = eqx.field(default_factory=lambda: jnp.asarray(0.0))

    def __repr__(self):
        try:
            return (f"MaxPower(power={float(self.power):.10g}, time={float(self.time):.10g}, "
                    f"energy={float(self.energy):.10g}, at_boundary={bool(self.at_boundary)}, "
                    f"certified={bool(self.certified)}, resolved={bool(self.resolved)})")
        except (TypeError, jax.errors.ConcretizationTypeError):  # traced or batched: the fields' shapes
            return eqx.tree_pformat(self)


def hermite5(t, t0, t1, f0, f1):
    """Quintic Hermite interpolant on ``[t0, t1]``; ``f0 = (f, f', f'')`` at ``t0``."""
    h = t1 - t0
    s = (t - t0) / h
    s2, s3 = s * s, s * s * s
    s4, s5 = s3 * s, s3 * s2
    h00 = 1 - 10 * s3 + 15 * s4 - 6 * s5
    h10 = s - 6 * s3 + 8 * s4 - 3 * s5
    h20 = 0.5 * s2 - 1.5 * s3 + 1.5 * s4 - 0.5 * s5
    h01 = 10 * s3 - 15 * s4 + 6 * s5
    h11 = -4 * s3 + 7 * s4 - 3 * s5
    h21 = 0.5 * s3 - s4 + 0.5 * s5
    return (h00 * f0[0] + h * h10 * f0[1] + h * h * h20 * f0[2]
            + h01 * f1[0] + h * h11 * f1[1] + h * h * h21 * f1[2])


def max_power(traj, newton_steps: int = 12, warn: bool = True) -> MaxPower:
    """Maximum average power ``E_B(tau)/tau`` over the trajectory's grid, refined.

    Arguments:
        traj: a :class:`~qbjax.charging.Trajectory` (``ts`` increasing, with
            ``energy``, ``d_energy``, ``d2_energy``).
        newton_steps: Newton iterations (quadratic convergence from the grid
            point; 12 is far more than needed).
        warn: warn when the maximum is at the end of the grid.
    """
    discrete = bool(getattr(traj, "discrete", False))
    ts = traj.ts
    if ts.shape[0] < 2:
        raise ValueError(f"max_power needs at least 2 times (a charging time > 0), got ts of shape {ts.shape}")
    if not isinstance(ts, jax.core.Tracer):
        t = np.asarray(ts)  # host values (indexing a jax array inside someone's jit would stage it)
        if not t[-1] > t[0]:
            raise ValueError(f"max_power needs a grid that spans a time > 0, got ts from {t[0]:g} to {t[-1]:g}")
    out = _max_power(traj.ts, traj.energy, traj.d_energy, traj.d2_energy, traj.energy_bound,
                     0 if discrete else newton_steps, discrete, getattr(traj, "jump_times", None))
    if warn and not isinstance(out.power, jax.core.Tracer) and out.power.ndim == 0:
        if bool(out.at_boundary):
            warnings.warn("maximum power at the end of the time grid: increase t_max", stacklevel=2)
        if not bool(out.resolved):
            t = np.asarray(ts)
            need = int(np.ceil((t[-1] - t[0]) * float(out.omega) / 0.5)) + 1
            warnings.warn(f"the time grid does not resolve E_B(t) (a step of {np.max(np.diff(t)):.3g} against a "
                          f"beat of angular frequency ~{float(out.omega):.3g}): the maximum power is not "
                          f"certified; use at least ~{need} times (num_times / --num-times) or a shorter t_max",
                          stacklevel=2)
    return out


def grid_resolution(ts, E, dE, d2E, jumps=None):
    """``(resolved, omega, failed)``: whether the grid resolves ``E(t)``, its fastest angular frequency
    (estimate), and which intervals fail the test below (``max_power`` also requires the two beside
    the maximum to pass).

    On each interval the cubic Hermite interpolant of ``E`` and ``E'`` has a
    second derivative at the nodes that must match the exact ``E''`` there
    (to ``O((omega h)^2)``, a few percent at ``omega h = 1``); under-resolved
    beats (``omega h`` near or above pi, the Nyquist bound) break the match by
    ``O(1)`` on most intervals.  An interval fails when it misses by more than
    25% of the range of ``E''`` plus its rounding floor (``E`` to about
    ``1e-7`` relative over ``h^2``: adaptive solvers' noise and tiny steps);
    the grid is resolved when at most 2% of its intervals fail (a kink fails
    the one interval that holds it).  ``jumps``: times where ``H`` jumps;
    the intervals beside a grid node at a jump are not tested.
    """
    h = jnp.diff(ts)
    safe = jnp.where(h > 0, h, 1.0)
    slope = (E[1:] - E[:-1]) / safe
    left = (6 * slope - 4 * dE[:-1] - 2 * dE[1:]) / safe
    right = (-6 * slope + 2 * dE[:-1] + 4 * dE[1:]) / safe
    miss = jnp.maximum(jnp.abs(left - d2E[:-1]), jnp.abs(right - d2E[1:]))
    scale = jnp.max(jnp.abs(d2E))
    size = jnp.max(jnp.abs(E))
    floor = 6e-7 * size / safe**2 + 6e-7 * jnp.max(jnp.abs(dE)) / safe
    failed = (h > 0) & (miss > 0.25 * scale + floor)
    if jumps is not None and jumps.size:
        # H jumps there: the derivatives at the node are one-sided, so the interval ending or
        # starting at a jump (to 1e-9 of the span) is not held against the grid
        tol = 1e-9 * jnp.maximum(ts[-1] - ts[0], 1e-300)
        at_node = jnp.any(jnp.abs(ts[:, None] - jumps[None, :]) <= tol, axis=1)
        failed = failed & ~at_node[:-1] & ~at_node[1:]
    resolved = jnp.sum(failed) <= jnp.maximum(1, 0.02 * h.shape[0])
    omega = scale / jnp.maximum(jnp.max(jnp.abs(dE)), 1e-300)
    return resolved, omega, failed


def _local_interpolant(ts, E, dE, d2E, lo, hi):
    """``t -> E(t)``: the quintic Hermite interpolant on the grid intervals between nodes ``lo`` and ``hi``."""

    # [lo, hi] spans one or two grid intervals (the neighbours of the grid maximum): pick by one
    # comparison (a searchsorted is a loop, nested in the Newton loop: seconds of XLA compile time)
    mid = jnp.minimum(lo + 1, ts.shape[0] - 1)

    def interp(t):
        k = jnp.where((t >= ts[mid]) & (lo + 1 <= hi - 1), lo + 1, lo)
        return hermite5(t, ts[k], ts[k + 1], (E[k], dE[k], d2E[k]), (E[k + 1], dE[k + 1], d2E[k + 1]))

    return interp


@eqx.filter_jit
def _max_power(ts, E, dE, d2E, energy_bound, newton_steps: int, discrete: bool = False, jumps=None) -> MaxPower:
    n = ts.shape[0]
    # ts[0] is the initial time: the charging time tau is measured from it (returned as a time on ts)
    t0 = ts[0]
    ts = ts - t0
    P = jnp.where(ts > 0, E / jnp.where(ts > 0, ts, 1.0), -jnp.inf)
    i = jnp.argmax(P)
    lo, hi = jnp.maximum(i - 1, 0), jnp.minimum(i + 1, n - 1)
    interp = _local_interpolant(ts, E, dE, d2E, lo, hi)
    d_interp = jax.grad(interp)
    dd_interp = jax.grad(d_interp)
    t_lo = jnp.maximum(ts[lo], ts[i] * 1e-6)

    def newton(_, t):
        g = t * d_interp(t) - interp(t)
        dg = t * dd_interp(t)
        step = jnp.where(dg < 0, g / jnp.where(dg < 0, dg, 1.0), 0.0)
        return jnp.clip(t - step, t_lo, ts[hi])

    tau = jax.lax.fori_loop(0, newton_steps, newton, jax.lax.stop_gradient(ts[i]))
    tau = jax.lax.stop_gradient(tau)
    # Keep the refined point only if it improves on the grid point (guards
    # against Newton wandering on a non-concave stretch).
    e_tau = interp(tau)
    better = e_tau / tau >= P[i]
    tau = jnp.where(better, tau, ts[i])
    energy = jnp.where(better, e_tau, E[i])
    power = energy / tau
    # the end of the grid: power still rising there (a discrete map cannot tell: any last point)
    at_boundary = (i == n - 1) if discrete else (i == n - 1) & (dE[n - 1] * ts[n - 1] - E[n - 1] > 0)
    if discrete:
        resolved, omega = jnp.asarray(True), jnp.asarray(0.0)
    else:
        resolved, omega, failed = grid_resolution(ts, E, dE, d2E, None if jumps is None else jumps - t0)
        # the intervals beside the maximum must pass: the refinement interpolates there
        resolved = resolved & ~failed[jnp.maximum(i - 1, 0)] & ~failed[jnp.minimum(i, n - 2)]
    certified = (ts[-1] * power >= energy_bound * (1 - 1e-12)) & resolved
    return MaxPower(power, tau + t0, energy, at_boundary, certified, resolved, omega)


class MaxEnergy(eqx.Module):
    """``energy`` = ``max_t E_B(t)`` on the window, ``time`` its argument (refined)."""

    energy: jax.Array
    time: jax.Array


def max_energy(traj, newton_steps: int = 12) -> MaxEnergy:
    """Maximum stored energy (work) over the trajectory, refined beyond the grid.

    Newton's method on ``E'(t) = 0`` for the quintic Hermite interpolant on
    the two intervals around the grid maximum (as for :func:`max_power`);
    the time carries no gradient (envelope theorem).
    """
    steps = 0 if getattr(traj, "discrete", False) else newton_steps  # a collision map: no refinement
    return _max_energy(traj.ts, traj.energy, traj.d_energy, traj.d2_energy, steps)


@eqx.filter_jit
def _max_energy(ts, E, dE, d2E, newton_steps: int) -> MaxEnergy:
    n = ts.shape[0]
    i = jnp.argmax(E)
    lo, hi = jnp.maximum(i - 1, 0), jnp.minimum(i + 1, n - 1)
    interp = _local_interpolant(ts, E, dE, d2E, lo, hi)
    d1 = jax.grad(interp)
    d2 = jax.grad(d1)

    def newton(_, t):
        g, dg = d1(t), d2(t)
        step = jnp.where(dg < 0, g / jnp.where(dg < 0, dg, 1.0), 0.0)
        return jnp.clip(t - step, ts[lo], ts[hi])

    tau = jax.lax.stop_gradient(jax.lax.fori_loop(0, newton_steps, newton, jax.lax.stop_gradient(ts[i])))
    e_tau = interp(tau)
    better = e_tau >= E[i]
    return MaxEnergy(jnp.where(better, e_tau, E[i]), jnp.where(better, tau, ts[i]))


def passive_energy(rho, levels, degeneracies=None):
    """Energy of the passive state of ``rho`` for a Hamiltonian with the given spectrum.

    The eigenvalues of ``rho`` (decreasing) fill the levels (given in
    increasing order),
    each level ``degeneracies[k]`` times.  ``levels`` may describe a larger
    physical space than ``rho``'s (for example ``2^N`` qubit levels for a
    state simulated in the symmetric sector): the passive state may use all
    of it, which is the ergotropy with unrestricted unitaries.
    """
    return passive_energy_of_spectrum(eigvalsh(rho), levels, degeneracies)


def passive_energy_of_spectrum(probabilities, levels, degeneracies=None):
    """:func:`passive_energy` from the eigenvalues of the state (for example the
    populations of a diagonal state), without forming a matrix."""
    p = jnp.sort(jnp.ravel(probabilities))[::-1]
    levels = jnp.asarray(levels)
    deg = np.ones(levels.shape[0]) if degeneracies is None else np.asarray(degeneracies, dtype=float)
    # Level of each of the first len(p) slots, counting multiplicities.
    filled = np.cumsum(np.minimum(deg, p.shape[0]))
    if filled[-1] < p.shape[0]:
        raise ValueError("the spectrum given has fewer states than rho's dimension")
    slots = np.searchsorted(filled, np.arange(p.shape[0]), side="right")
    return jnp.sum(p * levels[slots])


def ergotropy(rho, hamiltonian=None, *, levels=None, degeneracies=None):
    """Ergotropy ``tr(H rho) - E_passive`` of ``rho``.

    Arguments:
        rho: density matrix ``(d, d)``.
        hamiltonian: ``(d, d)`` battery Hamiltonian (its own spectrum is used
            unless ``levels`` is given).
        levels, degeneracies: the spectrum on the physical battery space
            (see :func:`passive_energy`); ``rho`` is then taken in the
            eigenbasis order of ``hamiltonian``.
    """
    energy = jnp.real(jnp.trace(hamiltonian @ rho))
    if levels is None:
        levels = eigvalsh(hamiltonian)
    return energy - passive_energy(rho, levels, degeneracies)


def collective_advantage(power_n, power_1, n):
    """``Gamma = Pbar(N) / (N Pbar(1))`` (seed 000, Eq. 4)."""
    return power_n / (n * power_1)
