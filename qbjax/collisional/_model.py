"""The collisional-charging model (seed 003, Salvia et al., Sec. II-IV, Eq. 1, 2, 21, 22-23).

Units: energies in units of the level spacing ``E``, times as the
dimensionless ``Omega tau`` (swap angles ``theta_k = Omega t_k``, Eq. 5).
Every battery is a uniform ladder ``H_B = E N``, ``N = sum_n n |n><n|``,
``n = 0 .. d - 1``, so the energy is zero in the ground state (for the spin,
``n = m + j`` and the energy is the paper's ``E(K) + E j``).

The ladder operator ``A`` (Eq. 2) is fixed by its amplitudes
``<n|A|n+1> = g_n``:

=============  ===========================================  ======================
battery        ``g_n``                                       paper
=============  ===========================================  ======================
``oscillator`` ``sqrt(n + 1)`` (Fock space cut at ``d``)     Sec. III, ``A = a``
``spin``       ``f_+(j, n - j) = sqrt((n + 1)(2j - n))``    Sec. IV, Eq. 23, ``d = 2j + 1``
``ladder``     ``1``                                         Ref. [82], App. B
=============  ===========================================  ======================

The qubit units are in the state of Eq. 1 (ground-state population ``q``,
coherence ``c``, phase ``alpha``).  Between collisions an oscillator battery
may pass through the damping channel of Eq. 21 with
``gamma = 1 - exp(-kappa t_0)`` (Sec. III D).
"""

from __future__ import annotations

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float

from ..model import AbstractBattery, Spec, term
from ..models._common import ParameterError, check_real, check_size
from ..operators import Boson

__all__ = [
    "BATTERIES",
    "LadderBattery",
    "QubitUnits",
    "CollisionalModel",
    "collisional_model",
    "spin_battery",
    "damping_terms",
    "check_schedule",
]

BATTERIES = ("oscillator", "spin", "ladder")

#: Largest tail probability dropped from the binomial sum of the damping channel.
DAMPING_TAIL = 1e-18


class LadderBattery(eqx.Module):
    """A ladder battery ``H_B = E N`` with the ladder operator ``A`` of its kind.

    Arguments:
        kind: ``"oscillator"`` (a truncated to ``levels`` Fock states),
            ``"spin"`` (spin ``j = (levels - 1)/2``) or ``"ladder"``
            (uniform ladder, ``A = sum_n |n><n+1|``).
        levels: number of levels ``d >= 2`` (static).
    """

    kind: str = eqx.field(static=True)
    levels: int = eqx.field(static=True)
    coupling: Float[Array, " levels-1"]

    def __init__(self, kind: str = "oscillator", levels: int = 250):
        if kind not in BATTERIES:
            raise ParameterError(f"battery must be one of {', '.join(BATTERIES)}, got {kind!r}")
        self.kind = kind
        self.levels = check_size("levels", levels, minimum=2)
        # g_n = <n|A|n+1>, n = 0 .. d-2: an array leaf, so that one compiled scan serves every
        # ladder of the same size (and the amplitudes are differentiable).
        n = np.arange(self.levels - 1, dtype=float)
        if kind == "oscillator":
            g = np.sqrt(n + 1)
        elif kind == "spin":
            g = np.sqrt((n + 1) * (self.levels - 1 - n))
        else:
            g = np.ones_like(n)
        self.coupling = jnp.asarray(g)

    @property
    def j(self) -> float:
        """Spin length ``j = (d - 1)/2`` (meaningful for the spin battery)."""
        return (self.levels - 1) / 2

    @property
    def truncated(self) -> bool:
        """Whether the top level is an artificial cut (the oscillator's Fock cutoff)."""
        return self.kind == "oscillator"

    def ladder_operator(self):
        """Dense ``A`` (``d x d``), for the independent checks of App. A."""
        return jnp.diag(self.coupling, k=1)


def spin_battery(j) -> LadderBattery:
    """The spin-``j`` battery of Sec. IV (``2j + 1`` levels; ``j`` integer or half-integer)."""
    two_j = 2 * float(j)
    if not two_j.is_integer() or two_j < 1:
        raise ParameterError(f"j must be a positive integer or half-integer, got {j!r}")
    return LadderBattery("spin", int(two_j) + 1)


class QubitUnits(eqx.Module):
    """Identical qubit units in the state of Eq. 1::

        rho_Q = q |g><g| + (1 - q) |e><e| + c sqrt(q (1 - q)) (e^{-i alpha} |g><e| + h.c.)

    Arguments:
        q: ground-state population, ``0 <= q <= 1``.
        coherence: ``c``, ``0 <= c <= 1`` (``c = 0``: incoherent, "classical" units).
        phase: ``alpha`` (radians).
    """

    q: Float[Array, ""]
    coherence: Float[Array, ""]
    phase: Float[Array, ""]

    def __init__(self, q=0.5, coherence=1.0, phase=0.0):
        self.q = check_real("q", q, minimum=0.0, maximum=1.0)
        self.coherence = check_real("coherence", coherence, minimum=0.0, maximum=1.0)
        self.phase = check_real("phase", phase)

    @property
    def drive(self):
        """``s = c sqrt(q (1 - q))``: the off-diagonal weight of ``rho_Q`` (the driving amplitude, Eq. A13)."""
        return self.coherence * jnp.sqrt(self.q * (1 - self.q))

    def density_matrix(self):
        """``rho_Q`` in the basis ``(|g>, |e>)``."""
        off = self.drive * jnp.exp(-1j * self.phase)
        return jnp.array([[self.q, off], [jnp.conj(off), 1 - self.q]], dtype=jnp.complex128)

    def is_incoherent(self) -> bool | None:
        """True/False when ``c`` (or ``q``) is concrete, None under tracing."""
        try:
            c = np.asarray(self.coherence)
            qq = np.asarray(self.q)
        except (jax.errors.TracerArrayConversionError, jax.errors.ConcretizationTypeError):
            return None
        return bool(np.all((c == 0) | (qq == 0) | (qq == 1)))


def damping_terms(gamma: float, levels: int, tail: float = DAMPING_TAIL) -> int:
    """Number of binomial terms ``k = 0 .. K`` kept in the damping channel (Eq. 21).

    From level ``m`` the channel loses ``k ~ Binomial(m, gamma)`` excitations;
    the terms ``k > K`` carry at most the tail ``P[Binomial(d - 1, gamma) > K]``
    of the top level, which is made smaller than ``tail``.
    """
    from scipy.stats import binom

    if gamma <= 0:
        return 0
    n = levels - 1
    for k in range(n + 1):
        if binom.sf(k, n, gamma) < tail:
            return k
    return n


class CollisionalModel(AbstractBattery):
    """Battery + qubit units + damping between collisions.

    Arguments:
        battery: a :class:`LadderBattery`.
        units: the :class:`QubitUnits` (Eq. 1).
        loss: ``gamma = 1 - exp(-kappa t_0)`` of the damping channel Eq. 21
            applied after every collision, ``0 <= gamma < 1``; oscillator only.
        damping_terms: binomial terms kept in Eq. 21 (static); default from
            :func:`damping_terms` at the given (concrete) ``loss``; pass it
            explicitly to trace or vmap ``loss``.
        schedule: the swap angles ``theta_k = Omega t_k`` ``(K,)`` (an array
            leaf: ``jax.grad`` and optax act on it), or ``None``; see
            :meth:`with_schedule`.

    A battery model like the others: ``qb.charge(model.with_schedule(thetas))``
    returns the common :class:`~qbjax.Trajectory`, one point per collision
    (plus ``t = 0``), through the collision map (``qb.methods.Collisions``).
    Energies are in units of the ladder spacing ``E``, times are ``Omega tau``.
    """

    battery: LadderBattery
    units: QubitUnits
    loss: Float[Array, ""]
    damping_terms: int = eqx.field(static=True)
    schedule: Array | None = None

    def __init__(self, battery: LadderBattery, units: QubitUnits | None = None, loss=0.0,
                 damping_terms: int | None = None, schedule=None):
        if not isinstance(battery, LadderBattery):
            raise ParameterError(f"battery must be a LadderBattery, got {type(battery).__name__}")
        self.battery = battery
        self.units = QubitUnits() if units is None else units
        self.loss = check_real("loss", loss, minimum=0.0)
        concrete = not isinstance(self.loss, jax.core.Tracer)
        if concrete and np.any(np.asarray(self.loss) >= 1):
            raise ParameterError(f"loss must be in [0, 1), got {float(np.max(np.asarray(self.loss)))!r}")
        if damping_terms is None:
            if not concrete:
                raise ParameterError("damping_terms must be given when loss is traced")
            damping_terms = _terms_for(float(np.max(np.asarray(self.loss))), battery.levels)
        self.damping_terms = check_size("damping_terms", damping_terms, minimum=0)
        if self.damping_terms > 0 and battery.kind != "oscillator":
            raise ParameterError(f"loss must be 0 for the {battery.kind} battery "
                                 "(Eq. 21 is the bosonic damping channel of the oscillator)")
        self.schedule = None if schedule is None else check_schedule(schedule)

    @property
    def lossy(self) -> bool:
        return self.damping_terms > 0

    def with_schedule(self, thetas) -> CollisionalModel:
        """The same battery and units charged by the swap angles ``thetas`` (checked when concrete)."""
        return CollisionalModel(self.battery, self.units, self.loss, self.damping_terms, thetas)

    # -- AbstractBattery ------------------------------------------------------------------------

    @property
    def name(self) -> str:
        return "collisional"

    def native_method(self) -> str:
        return "collisions"

    def own_grid(self) -> bool:
        return True

    def spec(self, classical: bool = False) -> Spec:
        """The battery ladder alone: ``H_B = sum_n n |n><n|`` (units of ``E``), starting in ``|0>``.

        The chargers are a stream of qubit units, one per collision, that
        the collision map traces out; they are not part of this spec.
        """
        d = self.battery.levels
        return Spec(space=(("b", Boson(d)),), charger=(), battery=(term(1.0, "b.n"),), coupling=(),
                    battery_dofs=("b",), initial=(("b", 0),), classical_initial={}, energy_bound=float(d - 1))

    def with_n(self, n: int) -> CollisionalModel:
        raise ValueError("a collisional battery has no number of units N (the collective advantage is not defined)")

    def time_scale(self):
        """A quarter of the first full swap: ``pi / (2 g_0)`` (units of ``1/Omega``)."""
        return jnp.pi / (2.0 * self.battery.coupling[0])

    def default_t_max(self):
        """The schedule's total time ``sum theta_k``."""
        if self.schedule is None:
            raise ValueError("a collisional model needs a schedule: model.with_schedule(thetas)")
        return jnp.sum(self.schedule)

    def default_num_times(self) -> int:
        """One point per collision, plus ``t = 0``."""
        if self.schedule is None:
            raise ValueError("a collisional model needs a schedule: model.with_schedule(thetas)")
        return int(self.schedule.shape[0]) + 1

    def params(self):
        return {"battery": self.battery.kind, "levels": self.battery.levels, "q": float(self.units.q),
                "coherence": float(self.units.coherence), "phase": float(self.units.phase),
                "loss": float(self.loss), "collisions": None if self.schedule is None else int(self.schedule.shape[0])}


def _terms_for(gamma: float, levels: int) -> int:
    if gamma <= 0:
        return 0
    return max(1, damping_terms(gamma, levels))


def collisional_model(battery: str = "oscillator", levels: int = 250, q=0.5, coherence=1.0, phase=0.0,
                      loss=0.0) -> CollisionalModel:
    """Convenience constructor: ``collisional_model("spin", 100, q=0.5)`` etc."""
    return CollisionalModel(LadderBattery(battery, levels), QubitUnits(q, coherence, phase), loss)


def check_schedule(thetas) -> jax.Array:
    """Swap angles ``theta_k >= 0`` (a 1-d array; checked when concrete)."""
    arr = thetas if isinstance(thetas, jax.core.Tracer) else jnp.asarray(thetas, dtype=jnp.float64)
    if arr.ndim != 1:
        raise ParameterError(f"thetas must be a 1-d array of swap angles, got shape {tuple(arr.shape)}")
    if arr.shape[0] < 1:
        raise ParameterError("thetas must hold at least one swap angle")
    if not isinstance(arr, jax.core.Tracer):
        a = np.asarray(arr)
        if not np.all(np.isfinite(a)):
            raise ParameterError("thetas must be finite")
        if np.any(a < 0):
            raise ParameterError(f"thetas must be >= 0, got {float(a.min())!r}")
    return arr
