"""Batteries charged by quantum heat engines (seed 001, Ito & Watanabe).

Two models, one per level of description.

:class:`HeatEngineFull` (Sec. II A, Eq. 1-6): ``N`` three-level engines
(levels ``0, omega0, omega_h``), each coupled to a hot bath on ``0 <-> 2``
and a cold bath on ``1 <-> 2`` (Eq. 1, convention ``D[a] rho = a rho a^+ -
{a^+ a, rho}/2``, the same as qbjax's), and ``N`` two-level batteries,
coupled on the work transition ``0 <-> 1``

* collectively (Eq. 4-5): ``sum_j i g/sqrt(N) (|1><0|_j S_B^- - |0><1|_j S_B^+)``;
  the batteries enter only through ``S_B^pm`` and ``H_B``, so ``S^2`` is
  conserved and they are simulated exactly as one spin ``J = N/2``;
* individually (Eq. 6): ``sum_j i g (|1><0|_j s_j^- - |0><1|_j s_j^+)``.

Engines start in their thermal steady state (Eq. 3), batteries empty.

:class:`HeatEngineBattery` (Sec. II B, Eq. 8): the batteries alone under the
effective negative-temperature master equation

    d rho/dt = -i[H_B, rho] + Gamma_e (D[S^-] + e^{-beta_e omega0} D[S^+]) rho,

valid when ``g sqrt(N) << Gamma_b (1 + e^{-beta_b omega_b})`` (Eq. 7).  In the
collective protocol it is solved in the symmetric sector ``J = N/2`` (the
Holstein-Primakoff-like map of Eq. 9-12 is exactly qbjax's ``Spin(N/2)``);
the state stays diagonal there, so qbjax solves it as a rate equation on
``N + 1`` populations (:mod:`qbjax.dynamics.rates`): ``N = 10^5`` in seconds.
The individual protocol is ``N`` independent copies of ``N = 1``.

Effective parameters from the engine (Sec. II B): ``beta_e omega0 = beta_h
omega_h - beta_c omega_c`` and ``Gamma_e = (2g)^2 / (Gamma_h e^{-beta_h
omega_h} + Gamma_c e^{-beta_c omega_c}) / (1 + e^{-beta_h omega_h} +
e^{-beta_e omega0})``, i.e. ``(2g)^2 p_0 / (2 gamma_01)`` with ``p_0`` the
engine's ground population and ``gamma_01`` the decay rate of its ``0-1``
coherence (re-derived; the comparison with the full model is a test).
Environmental dissipation of the same collective form (rate ``Gamma``,
inverse temperature ``beta``) is folded in as the paper does:
``Gamma_e -> Gamma_e + Gamma`` and ``e^{-beta_e omega0} -> (Gamma_e
e^{-beta_e omega0} + Gamma e^{-beta omega0}) / (Gamma_e + Gamma)``.
"""

from __future__ import annotations

import math
import warnings
from fractions import Fraction

import equinox as eqx
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array

from ..model import AbstractBattery, Dissipator, Spec, Term, term
from ..operators import Levels, Qubit, Spin
from ._common import ParameterError, binomial_levels, check_real, check_size, check_state_size

PROTOCOLS = ("collective", "individual")


def _protocol(value: str) -> str:
    if value not in PROTOCOLS:
        raise ParameterError(f"protocol must be 'collective' or 'individual', got {value!r}")
    return value


def _battery_terms(n: int, omega0, protocol: str):
    """Space, ``H_B``, initial state and physical spectrum of ``N`` two-level batteries."""
    levels, deg = binomial_levels(n)
    if protocol == "collective":
        j = Fraction(n, 2)
        space = (("b", Spin(j)),)
        battery = (term(omega0, "b.jz"), Term(omega0 * n / 2))
        initial = (("b", -j),)
        return space, battery, initial, levels, deg
    space = tuple((f"b{k}", Qubit()) for k in range(n))
    battery = tuple(t for k in range(n) for t in (term(omega0 / 2, f"b{k}.sz"), Term(omega0 / 2)))
    return space, battery, (), levels, deg


#: Largest ``|beta omega0|`` of the effective bath (and of the environment).
BETA_OMEGA_MAX = 50.0


class HeatEngineBattery(AbstractBattery):
    """``N`` two-level batteries under the effective master equation (seed 001, Eq. 8).

    Arguments:
        n: number of batteries ``N`` (static).
        beta_omega: ``beta_e omega0`` in ``[-50, 50]`` (:data:`BETA_OMEGA_MAX`;
            negative: population inversion, charging; ``>= 0``: a positive
            temperature, which discharges a charged battery and leaves an
            empty one at its thermal energy).  Beyond 50 the up and down
            rates differ by more than ``e^50 ~ 5e21`` and the slow one is
            below double precision's resolution of the fast one.
        rate: ``Gamma_e`` (same units as ``omega0``; the paper's ``Gamma_e/omega0``
            when ``omega0 = 1``).
        omega0: battery splitting.
        protocol: ``"collective"`` (one spin ``N/2``) or ``"individual"``
            (``N`` qubits, each with its own channels; figures of merit use
            ``N`` copies of ``N = 1``).
        env_rate, env_beta_omega: optional environmental dissipation of the
            same form (rate ``Gamma >= 0``, ``beta omega0``; ``None``: zero
            temperature), folded into ``Gamma_e`` and ``beta_e`` (Sec. II B).
    """

    n: int = eqx.field(static=True)
    beta_omega: Array
    rate: Array
    omega0: Array
    env_rate: Array
    env_beta_omega: Array | None
    protocol: str = eqx.field(static=True)

    def __init__(self, n: int = 10, beta_omega=-0.8, rate=0.1, omega0=1.0, protocol: str = "collective",
                 env_rate=0.0, env_beta_omega=None):
        self.n = check_size("n", n)
        if protocol == "collective":
            check_state_size("heat-engine battery", "n", self.n, lambda k: k + 1)
        self.beta_omega = check_real("beta_omega", beta_omega, minimum=-BETA_OMEGA_MAX, maximum=BETA_OMEGA_MAX)
        self.rate = check_real("rate", rate, minimum=0.0, strict=True)
        self.omega0 = check_real("omega0", omega0, minimum=0.0, strict=True)
        self.env_rate = check_real("env_rate", env_rate, minimum=0.0)
        self.env_beta_omega = None if env_beta_omega is None else check_real(
            "env_beta_omega", env_beta_omega, minimum=-BETA_OMEGA_MAX, maximum=BETA_OMEGA_MAX)
        self.protocol = _protocol(protocol)

    @property
    def name(self) -> str:
        return "heat-engine"

    def effective_rates(self):
        """``(Gamma_e, e^{-beta_e omega0})`` with the environment folded in."""
        up_env = 0.0 if self.env_beta_omega is None else jnp.exp(-self.env_beta_omega)
        total = self.rate + self.env_rate
        ratio = (self.rate * jnp.exp(-self.beta_omega) + self.env_rate * up_env) / total
        return total, ratio

    def effective_beta_omega(self):
        """``beta_e omega0`` after folding in the environment."""
        return -jnp.log(self.effective_rates()[1])

    def spec(self, classical: bool = False) -> Spec:
        if classical:
            raise ValueError("the heat-engine battery is an open quantum system: no classical analog")
        n = self.n
        down, ratio = self.effective_rates()
        space, battery, initial, levels, deg = _battery_terms(n, self.omega0, self.protocol)
        if self.protocol == "collective":
            channels = (Dissipator(down, term(1.0, "b.jm")), Dissipator(down * ratio, term(1.0, "b.jp")))
        else:
            channels = tuple(ch for k in range(n) for ch in (Dissipator(down, term(1.0, f"b{k}.sm")),
                                                             Dissipator(down * ratio, term(1.0, f"b{k}.sp"))))
        return Spec(
            space=space, charger=(), battery=battery, coupling=(), battery_dofs=tuple(nm for nm, _ in space),
            initial=initial, classical_initial={}, dissipators=channels,
            battery_levels=jnp.asarray(levels) * self.omega0, battery_degeneracies=tuple(float(x) for x in deg),
            energy_bound=n * self.omega0,
        )

    def with_n(self, n: int) -> HeatEngineBattery:
        return HeatEngineBattery(n, self.beta_omega, self.rate, self.omega0, self.protocol, self.env_rate,
                                 self.env_beta_omega)

    def single(self) -> HeatEngineBattery:
        """One battery: the unit of the individual protocol."""
        return HeatEngineBattery(1, self.beta_omega, self.rate, self.omega0, "collective", self.env_rate,
                                 self.env_beta_omega)

    def independent_units(self) -> tuple[HeatEngineBattery, int]:
        """``(single(), N)`` for the individual protocol, ``(self, 1)`` for the collective one."""
        return (self.single(), self.n) if self.protocol == "individual" else (self, 1)

    def time_scale(self):
        """An estimate of the charging time ``tau_N`` (Eq. 17, ``eps = 10^-3``).

        The superradiant cascade of Eq. 20, ``2 log N / (Gamma_e (x - 1) N)``,
        plus the final approach ``log(10^3) / gap``, with the gap bridged from
        ``Gamma_e (x - 1) N`` (large ``N``) to the single-battery
        ``Gamma_e (1 + x)`` (``x = e^{-beta_e omega0}``).  Within a factor 1.5
        of the computed ``tau_N`` for ``N = 1 .. 10^5`` at the paper's parameters.
        """
        down, x = self.effective_rates()
        n = self.n if self.protocol == "collective" else 1
        return (2.0 * math.log(n) + math.log(1e3)) / (down * (jnp.abs(x - 1.0) * n + 1.0 + x))

    def default_t_max(self):
        return 2.5 * self.time_scale()


def engine_thermal_populations(omega0, omega_h, beta_h, beta_c):
    """The engine's steady state (Eq. 3): populations of ``|0>, |1>, |2>``."""
    omega_c = omega_h - omega0
    w = jnp.stack([jnp.ones_like(beta_h), jnp.exp(beta_c * omega_c - beta_h * omega_h),
                   jnp.exp(-beta_h * omega_h)])
    return w / jnp.sum(w)


class HeatEngineFull(AbstractBattery):
    """``N`` three-level heat engines charging ``N`` two-level batteries (seed 001, Eq. 1-6).

    Arguments:
        n: number of engines = number of batteries (static).
        omega0: battery splitting = engine ``|0> <-> |1>`` gap.
        omega_h: engine ``|2>`` energy (``omega_c = omega_h - omega0``).
        beta_h, beta_c: inverse temperatures of the hot and cold baths.
        gamma_h, gamma_c: bath relaxation rates ``Gamma_h, Gamma_c``.
        g: engine-battery coupling (``g / sqrt(N)`` per pair in the collective protocol).
        protocol: ``"collective"`` (Eq. 5) or ``"individual"`` (Eq. 6).

    Work extraction needs ``beta_h / beta_c < omega_c / omega_h`` (population
    inversion on ``0 <-> 1``); otherwise the engines discharge the batteries
    towards a positive temperature (allowed, with a warning).
    """

    n: int = eqx.field(static=True)
    omega0: Array
    omega_h: Array
    beta_h: Array
    beta_c: Array
    gamma_h: Array
    gamma_c: Array
    g: Array
    protocol: str = eqx.field(static=True)

    def __init__(self, n: int = 1, omega0=1.0, omega_h=3.0, beta_h=0.4, beta_c=1.0, gamma_h=1.0, gamma_c=1.0,
                 g=0.02, protocol: str = "collective"):
        self.n = check_size("n", n)
        self.omega0 = check_real("omega0", omega0, minimum=0.0, strict=True)
        self.omega_h = check_real("omega_h", omega_h, minimum=0.0, strict=True)
        self.beta_h = check_real("beta_h", beta_h, minimum=0.0, strict=True)
        self.beta_c = check_real("beta_c", beta_c, minimum=0.0, strict=True)
        self.gamma_h = check_real("gamma_h", gamma_h, minimum=0.0, strict=True)
        self.gamma_c = check_real("gamma_c", gamma_c, minimum=0.0, strict=True)
        self.g = check_real("g", g, minimum=0.0, strict=True)
        self.protocol = _protocol(protocol)
        try:
            omega_c = float(self.omega_h) - float(self.omega0)
            inverted = float(self.beta_h) / float(self.beta_c) < omega_c / float(self.omega_h)
        except TypeError:  # traced
            return
        if omega_c <= 0:
            raise ParameterError(f"omega_h must be > omega0 (omega_c = omega_h - omega0 > 0), got "
                                 f"omega_h={float(self.omega_h)!r}, omega0={float(self.omega0)!r}")
        if not inverted:
            warnings.warn("beta_h/beta_c >= omega_c/omega_h: no population inversion, the engines do not "
                          "charge the batteries (Sec. II A)", stacklevel=2)

    @property
    def name(self) -> str:
        return "heat-engine"

    def spec(self, classical: bool = False) -> Spec:
        if classical:
            raise ValueError("the heat-engine battery is an open quantum system: no classical analog")
        n = self.n
        space_b, battery, initial, levels, deg = _battery_terms(n, self.omega0, self.protocol)
        engines = tuple((f"e{j}", Levels(3)) for j in range(n))
        charger = tuple(t for j in range(n) for t in (term(self.omega_h, f"e{j}.2,2"), term(self.omega0, f"e{j}.1,1")))
        if self.protocol == "collective":
            lam = self.g / math.sqrt(n)
            coupling = tuple(t for j in range(n) for t in (term(1j * lam, f"e{j}.1,0", "b.jm"),
                                                           term(-1j * lam, f"e{j}.0,1", "b.jp")))
        else:
            coupling = tuple(t for j in range(n) for t in (term(1j * self.g, f"e{j}.1,0", f"b{j}.sm"),
                                                           term(-1j * self.g, f"e{j}.0,1", f"b{j}.sp")))
        omega_c = self.omega_h - self.omega0
        channels = []
        for j in range(n):
            e = f"e{j}"
            channels += [Dissipator(self.gamma_h, term(1.0, f"{e}.0,2")),
                         Dissipator(self.gamma_h * jnp.exp(-self.beta_h * self.omega_h), term(1.0, f"{e}.2,0")),
                         Dissipator(self.gamma_c, term(1.0, f"{e}.1,2")),
                         Dissipator(self.gamma_c * jnp.exp(-self.beta_c * omega_c), term(1.0, f"{e}.2,1"))]
        thermal = engine_thermal_populations(self.omega0, self.omega_h, self.beta_h, self.beta_c)
        return Spec(
            space=engines + space_b, charger=charger, battery=battery, coupling=coupling,
            battery_dofs=tuple(nm for nm, _ in space_b), initial=initial, classical_initial={},
            dissipators=tuple(channels), initial_populations={e: thermal for e, _ in engines},
            battery_levels=jnp.asarray(levels) * self.omega0, battery_degeneracies=tuple(float(x) for x in deg),
            energy_bound=n * self.omega0,
        )

    def effective_parameters(self):
        """``(beta_e omega0, Gamma_e)`` of the effective master equation (Sec. II B)."""
        omega_c = self.omega_h - self.omega0
        hot = jnp.exp(-self.beta_h * self.omega_h)
        cold = jnp.exp(-self.beta_c * omega_c)
        beta_omega = self.beta_h * self.omega_h - self.beta_c * omega_c
        rate = (2 * self.g) ** 2 / (self.gamma_h * hot + self.gamma_c * cold) / (1 + hot + jnp.exp(-beta_omega))
        return beta_omega, rate

    def effective(self) -> HeatEngineBattery:
        """The effective model (Eq. 8) with the parameters derived from the engines."""
        beta_omega, rate = self.effective_parameters()
        return HeatEngineBattery(self.n, beta_omega, rate, self.omega0, self.protocol)

    def separation(self):
        """Eq. 7's ratio ``g sqrt(N) / min_b Gamma_b (1 + e^{-beta_b omega_b})`` (small: effective ME valid)."""
        omega_c = self.omega_h - self.omega0
        scale = jnp.minimum(self.gamma_h * (1 + jnp.exp(-self.beta_h * self.omega_h)),
                            self.gamma_c * (1 + jnp.exp(-self.beta_c * omega_c)))
        nn = self.n if self.protocol == "collective" else 1
        return self.g * math.sqrt(nn) / scale

    def with_n(self, n: int) -> HeatEngineFull:
        return HeatEngineFull(n, self.omega0, self.omega_h, self.beta_h, self.beta_c, self.gamma_h, self.gamma_c,
                              self.g, self.protocol)

    def time_scale(self):
        return self.effective().time_scale()

    def default_t_max(self):
        return 12.0 * self.time_scale()


def closed_form_steady(n: int, beta_omega: float, omega0: float = 1.0) -> dict:
    """Seed 001's closed forms for the collective steady state (Eq. 13-16), in float64.

    With ``y = e^{beta_e omega0}`` and ``Z_N = sum_m y^{-m}``:

    * ``energy_density``: Eq. 14 divided by ``N omega0``;
    * ``fluctuation``: the exact standard deviation of ``H_B`` in Eq. 13,
      ``omega0 sqrt(y/(1-y)^2 - (N+1)^2 y^{N+1}/(1-y^{N+1})^2)`` (a truncated
      geometric distribution in ``N - m``), and ``fluctuation_eq15`` the
      paper's large-``N`` form ``omega0 csch(-beta_e omega0/2) / (2 (1 - y^{N+1}))``;
    * ``ergotropy``: Eq. 16, any unitary on the ``2^N``-dimensional space:
      ``E - omega0 (1 - (1 - y)/(1 - y^{N+1}))``; ``ergotropy_symmetric``:
      unitaries inside the symmetric sector, ``2E - N omega0`` (the passive
      state there puts ``p_{N-k}`` on ``k`` excitations).

    The formulas are those of ``beta_e omega0 < 0`` (the charging regime);
    ``y^{N+1}`` is evaluated as ``exp((N+1) beta_e omega0)``, so any ``N``
    works.  A positive temperature (``beta_e omega0 > 0``) is the mirror
    image ``m -> N - m`` of ``-beta_e omega0``: the energy is ``N omega0``
    minus the mirror's, the fluctuation is the mirror's, the full-space
    passive energy is ``omega0 (1 - p_max)`` as before, and the state is
    passive inside the symmetric sector (``ergotropy_symmetric = 0``).
    ``beta_e omega0 = 0`` is the uniform distribution on ``m = 0..N``
    (``fluctuation_eq15``, a large-``N`` form that diverges there, is ``None``).
    Up to ``N = 10^6`` the values are sums over the distribution itself (the
    closed forms cancel catastrophically as ``beta_e omega0 -> 0``); the
    closed forms are tested against those sums.
    """
    b = float(beta_omega)
    if not math.isfinite(b):
        raise ValueError(f"beta_omega must be finite, got {b!r}")
    eq15 = None if b == 0 else omega0 / math.sinh(abs(b) / 2) / (2 * (1 - math.exp(-abs(b) * (n + 1))))
    if n <= _DIRECT_SUMS:
        # the distribution itself, p_m ~ e^{-b m} (exact at any b, no cancellation near b = 0)
        m = np.arange(n + 1, dtype=np.float64)
        logw = -b * m
        p = np.exp(logw - logw.max())
        p /= p.sum()
        mean = float(p @ m)
        energy = omega0 * mean
        var = float(p @ (m - mean) ** 2)
        ordered = np.sort(p)[::-1]
        return {"energy": energy, "energy_density": mean / n, "fluctuation": omega0 * math.sqrt(var),
                "fluctuation_eq15": eq15, "ergotropy": energy - omega0 * (1 - float(p.max())),
                "ergotropy_symmetric": max(energy - omega0 * float(ordered @ m), 0.0)}
    if b == 0:  # uniform on m = 0..N
        energy = n * omega0 / 2
        return {"energy": energy, "energy_density": 0.5, "fluctuation": omega0 * math.sqrt(n * (n + 2) / 12),
                "fluctuation_eq15": None, "ergotropy": energy - omega0 * n / (n + 1), "ergotropy_symmetric": 0.0}
    if b > 0:
        m = closed_form_steady(n, -b, omega0)
        # directly in x = e^{-b} (N omega0 minus the mirror's energy would cancel to ~N eps)
        x, xN, xN1 = math.exp(-b), math.exp(-b * n), math.exp(-b * (n + 1))
        energy = omega0 * (x / -math.expm1(-b) - (n + 1) * xN1 / (1 - xN1))
        passive = omega0 * x * (1 - xN) / (1 - xN1)  # omega0 (1 - p_0): p_0 is the largest here
        return {"energy": energy, "energy_density": energy / (n * omega0), "fluctuation": m["fluctuation"],
                "fluctuation_eq15": eq15, "ergotropy": max(energy - passive, 0.0), "ergotropy_symmetric": 0.0}
    y = math.exp(b)
    yN = math.exp(b * n)
    yN1 = math.exp(b * (n + 1))
    x = 1.0 / y
    energy = n * omega0 / (1 - yN1) - omega0 / (x - 1) * (1 - yN) / (1 - yN1)
    var = y / (1 - y) ** 2 - (n + 1) ** 2 * yN1 / (1 - yN1) ** 2
    passive = omega0 * (1 - (1 - y) / (1 - yN1))
    return {
        "energy": energy,
        "energy_density": energy / (n * omega0),
        "fluctuation": omega0 * math.sqrt(max(var, 0.0)),
        "fluctuation_eq15": eq15,
        "ergotropy": energy - passive,
        "ergotropy_symmetric": 2 * energy - n * omega0,
    }


#: Up to this ``N`` :func:`closed_form_steady` sums the distribution directly (exact at every ``beta``).
_DIRECT_SUMS = 10**6


def cascade_time(n: int, beta_omega: float, rate: float) -> float:
    """Eq. 20 of seed 001: the superradiant cascade's charging time estimate
    ``sum_{m=1}^{N-1} 1/((N-m) m) / (Gamma_e (e^{-beta omega} - 1))`` (``N >= 2``, ``beta omega < 0``)."""
    if int(n) != n or n < 2:
        raise ValueError(f"n must be an integer >= 2 (a cascade needs two batteries), got {n!r}")
    if not beta_omega < 0:
        raise ValueError(f"beta_omega must be < 0 (population inversion), got {beta_omega!r}")
    m = np.arange(1, int(n), dtype=float)
    return float(np.sum(1.0 / ((n - m) * m)) / (rate * (math.exp(-beta_omega) - 1.0)))
