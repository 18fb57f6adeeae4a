"""Figures of merit of one sweep point, computed lazily inside the compiled chunk."""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping

import equinox as eqx
import jax.numpy as jnp

from .grid import SweepError


class _Point:
    """What the figures of merit of one grid point need, computed on first use (inside the trace)."""

    def __init__(self, model, ts, method: str, options, classical: bool = False, plan=None):
        self.model, self.ts, self.method, self.options, self.classical = model, ts, method, options, classical
        #: a :class:`~qbjax.expansions.TracedChebyshev` when the group's cost model chose Chebyshev over ``eigh``
        self.plan = plan
        self.statuses = []  # failure flags of what was computed (qbjax.status), checked on the host

    def status(self):
        from ..status import merge

        flags = list(self.statuses)
        if "trajectory" in self.__dict__:
            flags.append(self.trajectory.status)
        if "steady" in self.__dict__:
            flags.append(self.steady.status)
        return merge(*flags)

    @functools.cached_property
    def spec(self):
        return self.model.spec()

    @functools.cached_property
    def eig(self):
        """The spectral decomposition, when ``charge`` would diagonalise (shared by the trajectory and the state)."""
        from ..methods import resolve_method
        from ..representation.closed import spectral_decomposition

        if self.plan is not None or self.classical or self.method not in ("auto", "spectral"):
            return None
        if self.model.native_method() is not None:  # a family with its own solvers: charge runs them
            return None
        if resolve_method(self.spec, self.method, False, None) != "spectral":
            return None
        return spectral_decomposition(self.spec)

    @functools.cached_property
    def trajectory(self):
        from ..charging import charge
        from ..expansions import traced_chebyshev
        from ..propagators import spectral_trajectory

        if self.plan is not None:
            return traced_chebyshev(self.spec, jnp.asarray(self.ts, jnp.float64), self.plan)
        if self.eig is not None:
            return spectral_trajectory(self.spec, jnp.asarray(self.ts, jnp.float64), self.eig)
        ts = None if self.model.own_grid() else self.ts  # a collision schedule is its own grid
        return charge(self.model, ts, method=self.method, options=self.options, classical=self.classical)

    @functools.cached_property
    def max_power(self):
        from ..metrics import max_power

        return max_power(self.trajectory, warn=False)

    @functools.cached_property
    def max_energy(self):
        from ..metrics import max_energy

        return max_energy(self.trajectory)

    @functools.cached_property
    def unit(self):
        """``(unit, copies)``: the individual protocol is ``N`` copies of one battery (as in ``open_charging``)."""
        return self.model.independent_units()

    @functools.cached_property
    def steady(self):
        from ..steady import steady_figures

        return steady_figures(self.unit[0])


def _ergotropy(p: _Point):
    from ..states import battery_ergotropy_status

    psi = None
    if p.plan is not None:
        from ..expansions import traced_state

        psi = traced_state(p.spec, p.max_power.time, p.plan)
    value, flags = battery_ergotropy_status(p.spec, p.max_power.time, eig=p.eig, psi=psi)
    p.statuses.append(flags)
    return value


def _steady_density(p: _Point):
    return p.steady.energy * p.unit[1] / (p.model.n * getattr(p.model, "omega0", 1.0))


def _charging_time(p: _Point, eps: float = 1e-3):
    """Seed 001, Eq. 17 on this point's window; NaN (and a longer window is tried) when not reached."""
    from ..steady import charging_time_status

    unit = p.unit[0]
    traj = p.trajectory if unit is p.model else _Point(unit, p.ts, p.method, p.options).trajectory
    e_ss = p.steady.energy
    reached = (traj.energy - (1.0 - eps) * e_ss) / e_ss > 0.0
    found = jnp.any(reached) & (jnp.argmax(reached) > 0)
    # a window that misses the criterion: feed charging_time a harmless
    # stand-in there and report NaN instead (the sweep then retries those
    # points with a longer window); its NOT_REACHED flag is therefore dropped
    ramp = 2.0 * e_ss * traj.ts / traj.ts[-1]
    safe = eqx.tree_at(lambda t: (t.energy, t.d_energy, t.d2_energy), traj,
                       (jnp.where(found, traj.energy, ramp), jnp.where(found, traj.d_energy, 2.0 * e_ss / traj.ts[-1]),
                        jnp.where(found, traj.d2_energy, 0.0)))
    if unit is not p.model:
        p.statuses.append(traj.status)
    return jnp.where(found, charging_time_status(safe, e_ss, eps)[0], jnp.nan)


#: Built-in figures of merit: ``name -> (function of a point, description)``.
METRICS: dict[str, tuple[Callable, str]] = {
    "max_power": (lambda p: p.max_power.power, "Pbar = max_tau E_B(tau)/tau (seed 000, Eq. 3), refined"),
    "optimal_time": (lambda p: p.max_power.time, "taubar, the time of the maximum power"),
    "energy_at_max_power": (lambda p: p.max_power.energy, "Ebar = E_B(taubar)"),
    "ergotropy": (_ergotropy, "ergotropy of the battery at taubar (closed systems)"),
    "fluctuation_at_max_power": (
        lambda p: jnp.sqrt(jnp.maximum(jnp.interp(p.max_power.time, p.ts, p.trajectory.variance), 0.0)),
        "sqrt(var H_B) at taubar (linear interpolation of the grid)"),
    "max_energy": (lambda p: p.max_energy.energy, "max_t E_B(t) on the window (max work), refined"),
    "time_of_max_energy": (lambda p: p.max_energy.time, "argmax_t E_B(t)"),
    "final_energy": (lambda p: p.trajectory.energy[-1], "E_B at the end of the window"),
    "steady_energy_density": (_steady_density, "e_N^SS = E_ss / (N omega0) (open systems, seed 001 Eq. 14)"),
    "steady_fluctuation": (lambda p: p.steady.fluctuation * jnp.sqrt(p.unit[1]), "sigma of H_B in the steady state"),
    "steady_ergotropy": (lambda p: p.steady.ergotropy * p.unit[1], "ergotropy of the steady state (Eq. 16)"),
    "charging_time": (_charging_time, "seed 001 Eq. 17, eps = 1e-3 (window doubled until reached)"),
}


#: Metrics whose NaN means "window too short": those points are re-run with a doubled window.
_EXTEND = {"charging_time"}


#: The per-point failure flag of a chunk's output (:mod:`qbjax.status`), checked on the host.
_STATUS = "_status"


def _resolve_metrics(metrics) -> list[tuple[str, Callable, bool]]:
    """``[(column, fn(point) -> scalar, user)]``; user callables take ``(model, trajectory)``."""
    if isinstance(metrics, str) or callable(metrics):
        metrics = [metrics]
    if isinstance(metrics, Mapping):
        metrics = list(metrics.items())
    out = []
    for m in metrics:
        if isinstance(m, tuple):
            name, fn = m
        elif isinstance(m, str):
            name, fn = m, None
        elif callable(m):
            name, fn = getattr(m, "__name__", "metric"), m
        else:
            raise SweepError(f"a metric must be a name or a callable, got {m!r}")
        if fn is None:
            if name not in METRICS:
                raise SweepError(f"unknown metric {name!r}; allowed: {', '.join(METRICS)} (or a callable)")
            out.append((name, METRICS[name][0], False))
        else:
            out.append((name, fn, True))
    names = [n for n, _, _ in out]
    if len(set(names)) != len(names):
        raise SweepError(f"metric names must be unique, got {names}")
    return out
