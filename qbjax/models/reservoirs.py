"""Charging several batteries from one charger by collective dissipation and pumping (seed 004, Dias et al.).

A charger ensemble of ``N_C`` two-level systems and ``m`` battery ensembles of
``N_B`` each (splitting ``omega0``), as collective spins ``J_mu = sum_i
sigma_i / 2`` (Eq. 1).  Battery ``k`` shares zero-temperature reservoir ``k``
with the charger; the charger is pumped incoherently and collectively
(Eq. 4, the paper's convention ``L[O] rho = 2 O rho O^+ - O^+ O rho - rho O^+ O``):

    d rho/dt = gamma_down sum_k L[J_C^- + J_Bk^-] rho + gamma_up L[J_C^+] rho.

**Convention.**  qbjax's dissipator is ``D[O] rho = O rho O^+ - {O^+ O, rho}/2``
(:class:`qbjax.Dissipator`), so ``gamma L[O] = 2 gamma D[O]``: every rate of
this module is the paper's ``gamma`` and the spec carries ``2 gamma``.

Options (all in the paper's convention):

* ``shared=True``: one reservoir for the charger and every battery, ``gamma_down
  L[J_C^- + sum_k J_Bk^-]`` (Eq. 2 for ``m = 1``);
* ``n_thermal = n``: reservoirs at finite temperature with ``n`` thermal
  quanta at ``omega0``, ``gamma_down ((n + 1) L[J^-_k] + n L[J^+_k])`` per reservoir
  (``J^pm_k = J_C^pm + J_Bk^pm``);
* ``gamma_individual = kappa``: independent decay ``kappa sum_i L[sigma_i^-]`` of
  every spin (it leaves the permutation-symmetric sector: exact only on qubits
  for a handful of spins, :meth:`ReservoirBattery.qubit_spec`; the mean field
  handles any size);
* initial state: ``charger_excited`` and ``battery_excited`` spins excited (Dicke
  states ``|N, n>``; default: charger full, batteries empty, Fig. 2a-f; the
  inset of Fig. 2f starts the charger empty).

Energy densities (Eq. 3): ``E_mu / (N_mu omega0) = <J_mu^z>/N_mu + 1/2``.

Two solvers, one spec (:func:`charge_reservoirs`):

* ``"exact"``: the master equation on the permutation-symmetric collective
  basis, dimension ``(N_C + 1)(N_B + 1)^m``, stored in its U(1)-neutral
  sector (:mod:`qbjax.dynamics.collective`, ``(N_C + 1)(N_B + 1)^{2m}`` real
  entries);
* ``"meanfield"``: the second-order cumulant equations derived from the same
  spec (:mod:`qbjax.dynamics.cumulants`), any ``N`` (``N_C = 10^7`` in milliseconds).

``"lindblad"`` runs the same spec through qbjax's dense core propagator
(``qbjax.dynamics.mesolve``; dimension ``(N_C+1)(N_B+1)^m`` squared: tiny
sizes, a cross-check).  ``method="auto"`` is exact when the exact state fits
in :data:`AUTO_EXACT_ENTRIES` entries and there is no individual decay, else
the mean field.
"""

from __future__ import annotations

import math
from fractions import Fraction

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float

from ..methods import register_native
from ..model import AbstractBattery, Dissipator, Spec, Term, term
from ..operators import Qubit, Spin
from ..status import check
from ._common import ParameterError, check_real, check_size

__all__ = ["ReservoirBattery", "ReservoirTrajectory", "charge_reservoirs", "final_battery_energy",
           "minimal_pump", "METHODS", "AUTO_EXACT_ENTRIES", "MEANFIELD_MAX_BATTERIES",
           "reservoir_trajectory", "plateau_density"]

METHODS = ("auto", "exact", "meanfield", "lindblad")
#: ``method="auto"`` solves exactly up to this many entries of the neutral-sector state (a few seconds here).
AUTO_EXACT_ENTRIES = 200_000
#: Most batteries the mean field takes (``(m+1)(m+3)`` moment equations, derived symbolically and compiled).
MEANFIELD_MAX_BATTERIES = 128


def _count(name, value, minimum, maximum=None):
    n = check_size(name, value, minimum)
    if maximum is not None and n > maximum:
        raise ParameterError(f"{name} must be an integer in [{minimum}, {maximum}], got {value!r}")
    return n


class ReservoirBattery(AbstractBattery):
    """``m`` battery ensembles charged by one charger through collective reservoirs (seed 004, Eq. 1-4).

    Arguments:
        n_charger: ``N_C`` (static).
        n_battery: ``N_B`` per battery (static).
        batteries: ``m`` (static).
        gamma_down: collective decay rate ``gamma_down > 0`` (paper convention ``L``).
        gamma_up: collective pumping rate on the charger ``gamma_up >= 0``.
        gamma_individual: individual decay of every spin ``>= 0`` (0 in the paper).
        n_thermal: thermal quanta of every reservoir at ``omega0`` (0: zero temperature, the paper).
        omega0: splitting (energy unit; drops out of the dynamics in the rotating frame).
        shared: one reservoir for all (Eq. 2) instead of one per battery (Eq. 4).
        charger_excited, battery_excited: initial excitations (default ``N_C`` and 0).
    """

    n_charger: int = eqx.field(static=True)
    n_battery: int = eqx.field(static=True)
    batteries: int = eqx.field(static=True)
    gamma_down: Array
    gamma_up: Array
    gamma_individual: Array
    n_thermal: Array
    omega0: Array
    shared: bool = eqx.field(static=True)
    charger_excited: int = eqx.field(static=True)
    battery_excited: int = eqx.field(static=True)

    def __init__(self, n_charger: int = 100, n_battery: int = 2, batteries: int = 1, gamma_down=1.0, gamma_up=0.0,
                 gamma_individual=0.0, n_thermal=0.0, omega0=1.0, shared: bool = False,
                 charger_excited: int | None = None, battery_excited: int = 0):
        self.n_charger = check_size("n_charger", n_charger)
        self.n_battery = check_size("n_battery", n_battery)
        self.batteries = check_size("batteries", batteries)
        self.gamma_down = check_real("gamma_down", gamma_down, minimum=0.0, strict=True)
        self.gamma_up = check_real("gamma_up", gamma_up, minimum=0.0)
        self.gamma_individual = check_real("gamma_individual", gamma_individual, minimum=0.0)
        self.n_thermal = check_real("n_thermal", n_thermal, minimum=0.0)
        self.omega0 = check_real("omega0", omega0, minimum=0.0, strict=True)
        self.shared = bool(shared)
        self.charger_excited = _count("charger_excited", self.n_charger if charger_excited is None
                                      else charger_excited, 0, self.n_charger)
        self.battery_excited = _count("battery_excited", battery_excited, 0, self.n_battery)

    @property
    def name(self) -> str:
        return "reservoirs"

    def native_method(self) -> str:
        """Charged by its own solvers: ``qb.charge(model)`` runs :func:`reservoir_trajectory`."""
        return "reservoirs"

    @property
    def ensembles(self) -> tuple[str, ...]:
        return ("c",) + tuple(f"b{k + 1}" for k in range(self.batteries))

    @property
    def sizes(self) -> tuple[int, ...]:
        return (self.n_charger,) + (self.n_battery,) * self.batteries

    def _groups(self):
        """Reservoirs as the ensembles they couple: ``[("c", "b1"), ...]`` or one shared group."""
        names = self.ensembles
        return [names] if self.shared else [("c", b) for b in names[1:]]

    def _thermal(self) -> bool:
        return _concrete_positive(self.n_thermal)

    def spec(self, classical: bool = False) -> Spec:
        """Collective spins ``Spin(N/2)`` with the channels of Eq. 2/4 at qbjax rates ``2 gamma``.

        Individual decay is not a collective channel: it is left out here
        (see :meth:`individual_rates`, :meth:`qubit_spec`).
        """
        if classical:
            raise ValueError("the reservoir battery is an open quantum system: no classical analog")
        space = tuple((n, Spin(Fraction(N, 2))) for n, N in zip(self.ensembles, self.sizes))
        channels = []
        for group in self._groups():
            # unit coefficients stay concrete under jit: they are structure (read by the solvers), not leaves
            with jax.ensure_compile_time_eval():
                down = tuple(term(1.0, f"{d}.jm") for d in group)
                up = tuple(term(1.0, f"{d}.jp") for d in group)
                pump = (term(1.0, "c.jp"),)
            channels.append(Dissipator(2.0 * self.gamma_down * (1.0 + self.n_thermal), down))
            if self._thermal():
                channels.append(Dissipator(2.0 * self.gamma_down * self.n_thermal, up))
        if _concrete_positive(self.gamma_up):
            channels.append(Dissipator(2.0 * self.gamma_up, pump))
        battery = tuple(t for b in self.ensembles[1:] for t in (term(self.omega0, f"{b}.jz"),
                                                                  Term(self.omega0 * self.n_battery / 2)))
        charger = (term(self.omega0, "c.jz"), Term(self.omega0 * self.n_charger / 2))
        initial = (("c", Fraction(2 * self.charger_excited - self.n_charger, 2)),) + tuple(
            (b, Fraction(2 * self.battery_excited - self.n_battery, 2)) for b in self.ensembles[1:])
        return Spec(space=space, charger=charger, battery=battery, coupling=(), battery_dofs=self.ensembles[1:],
                    initial=initial, classical_initial={}, dissipators=tuple(channels),
                    energy_bound=self.batteries * self.n_battery * self.omega0)

    def individual_rates(self):
        """``{ensemble: qbjax rate}`` of the individual decay channels (``2 kappa``), empty when off."""
        if not _concrete_positive(self.gamma_individual):
            return {}
        return {e: 2.0 * self.gamma_individual for e in self.ensembles}

    def qubit_spec(self) -> Spec:
        """The same model on ``N_C + m N_B`` qubits (``2^{N_C + m N_B}`` states), individual decay included.

        For tiny sizes only (an independent check of the collective solvers
        through the dense core propagator).
        """
        total = sum(self.sizes)
        if total > 10:
            raise ParameterError(f"qubit_spec needs N_C + m N_B <= 10 spins (2^N states), got {total}")
        space, members = [], {}
        for e, N in zip(self.ensembles, self.sizes):
            members[e] = [f"{e}_{i}" for i in range(N)]
            space += [(q, Qubit()) for q in members[e]]
        channels = []
        for group in self._groups():
            qs = [q for d in group for q in members[d]]
            channels.append(Dissipator(2.0 * self.gamma_down * (1.0 + self.n_thermal),
                                       tuple(term(1.0, f"{q}.sm") for q in qs)))
            if self._thermal():
                channels.append(Dissipator(2.0 * self.gamma_down * self.n_thermal,
                                           tuple(term(1.0, f"{q}.sp") for q in qs)))
        if _concrete_positive(self.gamma_up):
            channels.append(Dissipator(2.0 * self.gamma_up, tuple(term(1.0, f"{q}.sp") for q in members["c"])))
        if _concrete_positive(self.gamma_individual):
            channels += [Dissipator(2.0 * self.gamma_individual, (term(1.0, f"{q}.sm"),)) for q, _ in space]
        initial = tuple((q, 1) for q in members["c"][: self.charger_excited]) + tuple(
            (q, 1) for e in self.ensembles[1:] for q in members[e][: self.battery_excited])
        # a Dicke state is not a product state unless n is 0 or N
        for n, N in ((self.charger_excited, self.n_charger), (self.battery_excited, self.n_battery)):
            if n not in (0, N):
                raise ParameterError("qubit_spec needs each ensemble fully excited or empty initially")
        battery = tuple(t for e in self.ensembles[1:] for q in members[e]
                        for t in (term(self.omega0 / 2, f"{q}.sz"), Term(self.omega0 / 2)))
        charger = tuple(t for q in members["c"] for t in (term(self.omega0 / 2, f"{q}.sz"), Term(self.omega0 / 2)))
        return Spec(space=tuple(space), charger=charger, battery=battery, coupling=(),
                    battery_dofs=tuple(q for e in self.ensembles[1:] for q in members[e]), initial=initial,
                    classical_initial={}, dissipators=tuple(channels))

    def with_n(self, n: int) -> ReservoirBattery:
        return eqx.tree_at(lambda m: m.n_battery, self, check_size("n", n), is_leaf=lambda x: x is None)

    def time_scale(self):
        """The superradiant time ``1 / (gamma_down N_C)`` (the unit of Fig. 2's dynamics)."""
        return 1.0 / (self.gamma_down * self.n_charger)

    def default_t_max(self):
        """Long enough for the burst and the battery plateau: ``(10 + 4 ln N_C) / (gamma_down N_C)``."""
        return (10.0 + 4.0 * math.log(self.n_charger + 1)) * self.time_scale()

    def default_num_times(self) -> int:
        return 401

    def exact_entries(self) -> int:
        from ..dynamics.collective import state_size

        return state_size(self.sizes)

    def exact_memory(self) -> int:
        """Bytes the exact solver needs (:func:`qbjax.dynamics.collective.state_memory`)."""
        from ..dynamics.collective import state_memory

        return state_memory(self.sizes)


def _concrete_positive(x) -> bool:
    """``x > 0`` for a concrete leaf; a traced leaf counts as present (its channel is kept)."""
    if isinstance(x, jax.core.Tracer):
        return True
    return bool(np.any(np.asarray(x) > 0))


class ReservoirTrajectory(eqx.Module):
    """Energy densities (Eq. 3) on a time grid.

    Attributes:
        ts: times ``(T,)``.
        charger: ``E_C(t) / (N_C omega0)``.
        batteries: ``E_Bk(t) / (N_B omega0)``, shape ``(m, T)``.
        method: ``"exact"``, ``"meanfield"`` or ``"lindblad"``; closure: the mean field's (or ``None``).
        moments: the mean field's variables ``(T, n_vars)`` (``None`` for exact solvers).
        status: a :mod:`qbjax.status` flag (``0``: no failure), checked by
            :func:`charge_reservoirs` when concrete.
        stationary_from: the exact solver's stop time when it proved the rest
            of the window stationary (the later points hold the stationary
            state, certified within ``1e-9`` in trace norm); ``None`` when it
            integrated the whole window.
    """

    ts: Float[Array, " T"]
    charger: Float[Array, " T"]
    batteries: Float[Array, "m T"]
    method: str = eqx.field(static=True)
    closure: str | None = eqx.field(static=True, default=None)
    moments: Array | None = None
    status: Array = eqx.field(default_factory=lambda: jnp.zeros((), jnp.int32))
    stationary_from: float | None = eqx.field(static=True, default=None)

    @property
    def battery_total(self):
        """Total battery energy ``sum_k E_Bk / omega0``... per battery spin: the mean density."""
        return jnp.mean(self.batteries, axis=0)


def resolve_method(model: ReservoirBattery, method: str = "auto") -> str:
    """The solver ``method="auto"`` picks (docstring of this module); checks an explicit one."""
    if method not in METHODS:
        raise ParameterError(f"method must be one of {', '.join(METHODS)}, got {method!r}")
    individual = bool(model.individual_rates())
    if method == "auto":
        method = "exact" if model.exact_entries() <= AUTO_EXACT_ENTRIES and not individual else "meanfield"
    if method in ("exact", "lindblad") and individual:
        raise ParameterError("gamma_individual > 0 leaves the permutation-symmetric sector: use method "
                             "'meanfield' (or ReservoirBattery.qubit_spec() for <= 10 spins)")
    if method == "meanfield" and model.batteries > MEANFIELD_MAX_BATTERIES:
        raise ParameterError(f"batteries must be <= {MEANFIELD_MAX_BATTERIES} for the mean field (its (m+1)(m+3) "
                             f"= {(model.batteries + 1) * (model.batteries + 3):.3g} moment equations are derived "
                             f"and compiled; m = 128 takes ~15 s here), got {model.batteries}")
    return method


def charge_reservoirs(model: ReservoirBattery, ts=None, *, method: str = "auto", closure: str = "full",
                      options=None, memory_limit: float | None = None) -> ReservoirTrajectory:
    """Energy densities of the charger and each battery on ``ts``.

    Arguments:
        model: a :class:`ReservoirBattery` (leaves differentiable).
        ts: times from 0 (default ``linspace(0, model.default_t_max(), 401)``).
        method: ``"auto"``, ``"exact"``, ``"meanfield"`` or ``"lindblad"`` (module docstring).
        closure: the mean field's closure, ``"full"`` or ``"factorized"``
            (:mod:`qbjax.dynamics.cumulants`).
        options: :class:`~qbjax.ODEOptions` for the integrator.
        memory_limit: bytes allowed for the exact state (default 4 GiB).

    Raises:
        ParameterError: unknown method, individual decay with an exact method.
        MemoryError: the exact state does not fit (message gives the memory it needs).
    """
    resolved = resolve_method(model, method)
    if resolved == "lindblad" and options is None:
        from ..dynamics import ODEOptions

        options = ODEOptions(rtol=1e-10, atol=1e-12)
    report = {}
    ts, n, _, flags, moments = _run(model, ts, resolved, closure, options, memory_limit, derivatives=False,
                                    report=report)
    dens = n / jnp.asarray(model.sizes, jnp.float64)[:, None]
    traj = ReservoirTrajectory(ts, dens[0], dens[1:], resolved, closure if resolved == "meanfield" else None,
                               moments, flags, report.get("stationary_from"))
    check(traj.status, f"charge_reservoirs (method {traj.method!r})")
    return traj


def _run(model: ReservoirBattery, ts, resolved: str, closure: str, options, memory_limit=None,
         derivatives: bool = True, report: dict | None = None):
    """The one run behind :func:`charge_reservoirs` and ``qb.charge``: ``(ts, n, extra, status, moments)``.

    ``n``: mean excitations per ensemble ``(K, T)`` (charger first);
    ``extra``: ``(dn, d2n, cov)`` with ``derivatives``, else ``None``;
    ``moments``: the mean field's variables (``None`` for the exact solvers).
    """
    from ..charging import time_grid

    ts = time_grid(model) if ts is None else jnp.asarray(ts, jnp.float64)
    spec = model.spec()
    if resolved == "lindblad":
        names = ["charger"] + [f"battery_{k + 1}" for k in range(model.batteries)]
        traj = _lindblad_trajectory(model, spec, ts, options, names)
        n = jnp.stack([traj.expect[name] for name in names]) / model.omega0
        return ts, n, ("lindblad", traj), traj.status, None
    if resolved == "meanfield":
        problem, eqs, rates, ys, flags = _cumulants(model, spec, ts, closure, options)
        if not derivatives:
            zi = [eqs.z_index(e) for e in range(len(problem.sizes))]
            n = jnp.asarray(problem.sizes, jnp.float64)[:, None] * (1.0 + ys[:, zi].T) / 2.0
            return ts, n, None, flags, ys
        n, dn, d2n, cov = _meanfield_moments(problem, eqs, rates, ys)
        return ts, n, (dn, d2n, cov), flags, ys
    from ..dynamics.collective import solve_collective
    from ..representation.collective import collective_problem

    problem, rates = collective_problem(spec)
    if not derivatives:
        n, _, flags = solve_collective(problem, rates, ts, options=options, memory_limit=memory_limit, status=True,
                                       report=report)
        return ts, n, None, flags, None
    n, dn, d2n, cov, _, flags = solve_collective(problem, rates, ts, options=options, memory_limit=memory_limit,
                                                 status=True, moments=True, report=report)
    return ts, n, (dn, d2n, cov), flags, None


def _cumulants(model, spec, ts, closure, options):
    """``(problem, eqs, rates, ys, flags)``: the cumulant equations of the spec (and individual decay), solved."""
    from ..dynamics.cumulants import Individual, derive, initial_moments, solve_cumulants
    from ..representation.collective import collective_problem

    problem, rates = collective_problem(spec)
    channels, all_rates = list(problem.channels), [rates]
    for e, r in model.individual_rates().items():
        channels.append(Individual(problem.names.index(e)))
        all_rates.append(jnp.reshape(r, (1,)))
    eqs = derive(problem.sizes, tuple(channels), closure)
    rates = jnp.concatenate(all_rates)
    kw = {} if options is None else {"options": options}
    ys, flags = solve_cumulants(eqs, rates, initial_moments(eqs, problem.excitations), ts, status=True, **kw)
    return problem, eqs, rates, ys, flags


def final_battery_energy(model: ReservoirBattery, t_max, *, method: str = "meanfield", closure: str = "full",
                         num_times: int = 2, options=None):
    """Mean battery energy density at ``t_max`` (differentiable in every leaf, e.g. ``gamma_up``)."""
    ts = jnp.linspace(0.0, jnp.asarray(t_max, jnp.float64), num_times)
    return jnp.mean(charge_reservoirs(model, ts, method=method, closure=closure, options=options).batteries[:, -1])


def minimal_pump(model: ReservoirBattery, target: float, t_max, *, max_pump=None, grid: int = 41, steps: int = 200,
                 closure: str = "full", tol: float = 1e-7):
    """The smallest ``gamma_up`` that charges the batteries to ``target`` (mean energy density) at ``t_max``.

    The battery energy ``E_B(gamma_up)`` at ``t_max`` is not monotonic: it
    rises to full charge at ``gamma_up = (m - 1) gamma_down`` and then
    collapses (the charger no longer decays collectively), with transient
    crossings of the target above that.  So the search (i) brackets the
    first crossing on a grid of ``grid`` pumps in ``[0, max_pump]``
    (default ``2 m gamma_down``), then (ii) finds the root of
    ``E_B - target`` inside the bracket with :func:`qbjax.optimize.bracketed_root`:
    Newton steps with the exact derivative through the mean-field ODE,
    safeguarded by bisection, from the secant point (``steps`` at most;
    ``tol`` bounds ``|E_B - target|``).  A root in a known bracket is a
    root-finding problem: Newton converges in a few steps where the
    projected Adam on ``(E_B - target)^2`` used before needed tens.

    Returns:
        ``{"gamma_up", "energy", "steps", "bracket", "history"}`` (plain floats;
        ``history``: ``(gamma_up, E_B)`` per Newton step).  ``gamma_up`` is ``nan``
        when no pump in the range reaches the target.
    """
    from ..optimize import bracketed_root

    @eqx.filter_jit
    def value_and_grad(g):
        def energy(x):
            return final_battery_energy(eqx.tree_at(lambda m: m.gamma_up, model, x), t_max, closure=closure)

        return jax.value_and_grad(energy)(g)

    hi_pump = 2.0 * model.batteries * float(model.gamma_down) if max_pump is None else float(max_pump)
    pumps = np.linspace(0.0, hi_pump, grid)
    values = [float(value_and_grad(jnp.asarray(g))[0]) for g in pumps]
    above = [i for i, v in enumerate(values) if v >= target]
    if not above:
        return {"gamma_up": float("nan"), "energy": max(values), "steps": 0, "bracket": None, "history": []}
    i = above[0]
    if i == 0:
        return {"gamma_up": 0.0, "energy": values[0], "steps": 0, "bracket": (0.0, 0.0), "history": []}
    lo, hi = float(pumps[i - 1]), float(pumps[i])
    root = bracketed_root(lambda g: (lambda v, d: (v - target, d))(*value_and_grad(g)), lo, hi,
                          f_lo=values[i - 1] - target, f_hi=values[i] - target, tol=tol, max_steps=steps)
    history = [(g, f + target) for g, f in root["history"]]
    return {"gamma_up": root["x"], "energy": root["f"] + target, "steps": root["steps"], "bracket": (lo, hi),
            "history": history}


def reservoir_trajectory(model: ReservoirBattery, ts=None, method=None, options=None):
    """What ``qb.charge(model)`` returns: the common :class:`~qbjax.Trajectory` of the batteries.

    ``energy`` is the total battery energy ``sum_k E_Bk`` (zero when every
    battery spin is down), with its exact first and second time derivatives
    (the generator applied to the saved state; for the mean field, the
    cumulant right-hand side and its directional derivative), so
    :func:`qbjax.max_power` refines between grid points as for the other
    families.  ``variance`` is that of the total battery energy (the exact
    state's populations; the mean field's second moments).  ``expect`` holds
    ``"charger"`` and ``"battery_1"`` ... ``"battery_m"``, each ``E(t)`` in
    energy units.  ``method``: a :mod:`qbjax.methods` value (``Auto``,
    ``CollectiveExact``, ``MeanField``, ``Lindblad``) or ``None``.
    """
    from ..status import merge
    from ..trajectory import Trajectory, finite_status

    key = "auto" if method is None else method.key
    resolved = resolve_method(model, key)
    if options is None and method is not None:
        options = method.adaptive_options()
    closure = getattr(method, "closure", "full")
    ts, n, extra, flags, _ = _run(model, ts, resolved, closure, options)
    if resolved == "lindblad":
        return extra[1]
    dn, d2n, cov = extra
    w0 = model.omega0
    names = ["charger"] + [f"battery_{k + 1}" for k in range(model.batteries)]
    energy = w0 * jnp.sum(n[1:], axis=0)
    var = w0**2 * jnp.sum(cov[1:, 1:], axis=(0, 1))
    expect = {name: w0 * n[i] for i, name in enumerate(names)}
    return Trajectory(ts, energy, w0 * jnp.sum(dn[1:], axis=0), w0 * jnp.sum(d2n[1:], axis=0),
                      jnp.maximum(var, 0.0), jnp.zeros(0), jnp.asarray(model.spec().energy_bound, jnp.float64),
                      "quantum", resolved, merge(flags, finite_status(energy)), expect=expect)


def _meanfield_moments(problem, eqs, rates, ys):
    """Mean excitations ``n_e``, their two derivatives and covariances from the solved cumulant equations."""
    from ..dynamics.cumulants import cumulant_rhs

    rhs = cumulant_rhs(eqs, rates)
    dys = jax.vmap(rhs)(ys)
    d2ys = jax.vmap(lambda y, dy: jax.jvp(rhs, (y,), (dy,))[1])(ys, dys)
    sizes = jnp.asarray(problem.sizes, jnp.float64)
    K = len(problem.sizes)
    zi = [eqs.z_index(e) for e in range(K)]
    n = sizes[:, None] * (1.0 + ys[:, zi].T) / 2.0
    dn = sizes[:, None] * dys[:, zi].T / 2.0
    d2n = sizes[:, None] * d2ys[:, zi].T / 2.0
    # Cov(n_e, n_f) = N_e N_f (w_ef - z_e z_f) / 4, and N (1 + (N - 1) w_ee - N z_e^2) / 4 on the diagonal
    z = ys[:, zi].T
    rows = []
    for e in range(K):
        row = []
        for f in range(K):
            key = ((min(e, f), "z"), (max(e, f), "z"))
            # the factorized closure keeps no zz correlators: <s^z s^z> = z_e z_f (binomial ensembles)
            w = ys[:, eqs.variables.index(key)] if key in eqs.variables else z[e] * z[f]
            if e == f:
                N = sizes[e]
                row.append(N * (1.0 + (N - 1.0) * w - N * z[e] ** 2) / 4.0)
            else:
                row.append(sizes[e] * sizes[f] * (w - z[e] * z[f]) / 4.0)
        rows.append(jnp.stack(row))
    return n, dn, d2n, jnp.stack(rows)


def _lindblad_trajectory(model, spec, ts, options, names):
    """The dense Lindblad run of ``charge`` on the spec, with the ensembles' energies as observables."""
    from .. import representation as rep
    from ..propagators import lindblad_trajectory

    b = rep.basis(spec)
    ops = {}
    for name, e in zip(names, model.ensembles):
        N = model.sizes[model.ensembles.index(e)]
        ops[name] = rep.dense(spec.space, (term(model.omega0, f"{e}.jz"), Term(model.omega0 * N / 2)), b)
    return lindblad_trajectory(spec, ts, None, options, observables=ops)


register_native("reservoirs", ("auto", "exact", "meanfield", "lindblad"),
                lambda model, ts, method, options: reservoir_trajectory(model, ts, method, options))


def plateau_density(batteries: int, pump_ratio: float) -> float:
    """``sin^2(pi / (2 (m - gamma_up/gamma_down)))``: the large-``N_C`` mean-field plateau of the battery energy
    density, found numerically in this computation for ``0 <= gamma_up <= (m - 1) gamma_down`` (an observation,
    not a result of the paper; ``qbjax reproduce reservoirs-pump`` draws it against the solved plateaus)."""
    meff = batteries - pump_ratio
    if not meff >= 1:
        raise ValueError(f"pump_ratio must be <= batteries - 1 = {batteries - 1} (the plateau regime), got {pump_ratio!r}")
    return math.sin(math.pi / (2 * meff)) ** 2
