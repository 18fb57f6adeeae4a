"""Bounds and limits of seed 003: incoherent power bounds, full-swap times, coherent driving limits.

Units ``E = Omega = 1``: energies above the ground state, times ``Omega tau``.

Incoherent bounds (any adaptive schedule, any ``q``, ``c = 0``) come from a
differential inequality for the linearly interpolated mean energy:

========================  =====================================================  ==========================
battery                   inequality                                             closed form (derived here)
========================  =====================================================  ==========================
oscillator (Eq. 14)       ``dE/dtau <= R0 sqrt(E + 1)``                          ``E <= R0 tau (1 + R0 tau/4)`` (Eq. 15)
spin ``j`` (Eq. 27)       ``dJ/dtau <= R0 sqrt(j(j+1) - J(J+1))``, ``J(0)=-j``  ``J+1/2 <= (j+1/2) sin(phi0+R0 tau)``
oscillator + loss (C4)    ``dE/dtau <= R0 (1-gamma) sqrt(E+1) - 2 gamma E/pi``   :func:`damped_oscillator_bound`
uniform ladder            ``dE/dtau <= R0``                                      ``E <= R0 tau``
========================  =====================================================  ==========================

with ``R0 = max_x sin^2(x)/x = 0.7246`` at ``x0 = 1.1656`` (``tan x0 = 2 x0``,
Eq. 12) and ``phi0 = arcsin((1 - 2j)/(2j + 1))``.

Misprints in the paper (each checked in the tests against the integrated
inequality or the exact sum):

* Eq. 17: ``(pi/2) sum_{k<=K} k^{-1/2} = pi sqrt(K) + (pi/2) zeta(1/2) + O(K^{-1/2})``,
  ``(pi/2) zeta(1/2) = -2.2939``; the paper's constant ``-zeta_{1/2} = -1.46``
  misses the factor ``pi/2``.
* Eq. 28: the initial term is ``arctan[(1 - 2j)/(2 f_+(j, -j))] = arctan[(1 - 2j)/(2 sqrt(2j))]``,
  not ``arctan[(1 - 2j)/2]``; as printed the inequality already fails at
  ``tau = 0`` (its left side is positive) and the "bound" lies *below* the
  true one (a too strong, invalid bound).
* Eq. 29: correspondingly ``tau* >= [pi/2 - arcsin((1 - 2j)/(2j + 1))]/R0``
  (``f_+(j, j) = 0`` makes the first arctan ``pi/2``, not ``arctan((2j+1)/2)``);
  the limit ``pi/R0`` for ``j -> infinity`` is right.
* Eq. 32: ``D(tau) = exp[-i (Omega tau/2)(J_+ + J_-)] = exp(-i Omega tau J_x)``;
  without the ``i`` it is not unitary.  (Also Eq. 19: for ``alpha = 0`` the
  displacement is ``D(-i Omega tau/2)``; the energy ``(Omega tau)^2/4`` is unaffected.)
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np

from ._model import LadderBattery

__all__ = [
    "R0",
    "X0",
    "ZETA_HALF",
    "oscillator_bound",
    "oscillator_bound_power",
    "spin_bound",
    "spin_bound_printed",
    "spin_full_charge_time_bound",
    "spin_full_charge_time_bound_printed",
    "ladder_bound",
    "damped_oscillator_bound",
    "damped_oscillator_time",
    "incoherent_bound",
    "bound_rhs",
    "full_swap_angles",
    "full_swap_time",
    "full_swap_time_asymptotic",
    "full_swap_time_printed",
    "coherent_limit",
    "oscillator_advantage",
    "spin_advantage",
]


def _solve_x0() -> float:
    x = 1.17
    for _ in range(50):  # Newton on tan x - 2x
        x -= (math.tan(x) - 2 * x) / (1 / math.cos(x) ** 2 - 2)
    return x


#: ``x0`` with ``tan x0 = 2 x0``: the maximiser of ``sin^2(x)/x`` (Eq. 12: ``theta = x0/sqrt(n+1)``).
X0 = _solve_x0()
#: ``R0 = max_x sin^2(x)/x`` (Eq. 12).
R0 = math.sin(X0) ** 2 / X0
#: Riemann ``zeta(1/2)``.
ZETA_HALF = -1.4603545088095868


def oscillator_bound(time):
    """Eq. 15: ``E <= R0 tau (1 + R0 tau/4)``, the solution of Eq. 14 with ``E(0) = 0``."""
    x = R0 * jnp.asarray(time, dtype=jnp.float64)
    return x * (1 + x / 4)


def oscillator_bound_power(time):
    """Eq. 16: ``Pbar <= R0 (1 + R0 tau/4)``."""
    return R0 * (1 + R0 * jnp.asarray(time, dtype=jnp.float64) / 4)


def _spin_energy(time, j, phi0):
    a = j + 0.5
    phase = jnp.minimum(phi0 + R0 * jnp.asarray(time, dtype=jnp.float64), jnp.pi / 2)
    return a * jnp.sin(phase) - 0.5 + j  # J + j


def spin_bound(time, j):
    """Eq. 27 integrated: the largest ``E = <J_z> + j`` an incoherent protocol reaches by ``tau``.

    ``arcsin((2J + 1)/(2j + 1)) - arcsin((1 - 2j)/(2j + 1)) <= R0 tau`` (corrected Eq. 28;
    ``arctan[(2J+1)/(2 f_+(j, J))] = arcsin[(2J+1)/(2j+1)]``), capped at the full charge ``2j``.
    """
    return _spin_energy(time, j, math.asin((1 - 2 * j) / (2 * j + 1)))


def spin_bound_printed(time, j):
    """Eq. 28 exactly as printed (initial term ``arctan((1 - 2j)/2)``): positive already at ``tau = 0``."""
    return _spin_energy(time, j, math.atan((1 - 2 * j) / 2))


def spin_full_charge_time_bound(j) -> float:
    """Corrected Eq. 29: ``tau* >= [pi/2 - arcsin((1-2j)/(2j+1))]/R0`` (``-> pi/R0`` as ``j -> inf``)."""
    return (math.pi / 2 - math.asin((1 - 2 * j) / (2 * j + 1))) / R0


def spin_full_charge_time_bound_printed(j) -> float:
    """Eq. 29 as printed: ``[arctan((2j+1)/2) - arctan((1-2j)/2)]/R0``."""
    return (math.atan((2 * j + 1) / 2) - math.atan((1 - 2 * j) / 2)) / R0


def ladder_bound(time, levels: int):
    """Uniform ladder: ``Delta E / theta <= sum_n p_n sin^2(theta)/theta <= R0``, so ``E <= min(R0 tau, d - 1)``."""
    return jnp.minimum(R0 * jnp.asarray(time, dtype=jnp.float64), levels - 1)


def _damped_constants(gamma):
    a = R0 * (1 - gamma)
    b = 2 * gamma / math.pi
    root = math.sqrt(a * a + 4 * b * b)
    s_plus = (a + root) / (2 * b)
    s_minus = -2 * b / (a + root)  # (a - root)/(2b), without cancellation
    return a, b, root, s_plus, s_minus


def damped_oscillator_time(energy, gamma):
    """Time to reach ``energy`` along the equality in C4, in closed form (``s = sqrt(E + 1)``)::

        tau(s) = (2/sqrt(a^2 + 4b^2)) [s+ ln((s+ - 1)/(s+ - s)) + s- ln((s - s-)/(1 - s-))]

    ``a = R0 (1 - gamma)``, ``b = 2 gamma/pi``, ``s+- = (a +- sqrt(a^2 + 4b^2))/(2b)``, the roots of
    ``a s - b (s^2 - 1)``; ``s+^2 - 1`` is the stationary energy the bound saturates at.
    """
    if gamma <= 0:
        s = np.sqrt(np.asarray(energy, dtype=float) + 1)
        return 2 * (s - 1) / R0
    a, b, root, sp, sm = _damped_constants(gamma)
    s = np.sqrt(np.asarray(energy, dtype=float) + 1)
    with np.errstate(divide="ignore", invalid="ignore"):
        t = -sp * np.log1p(-(s - 1) / (sp - 1)) + sm * np.log1p((s - 1) / (1 - sm))
    return 2 * t / root


def damped_oscillator_bound(time, gamma, iterations: int = 200):
    """Appendix C, Eq. C4 integrated with ``E(0) = 0``: the incoherent bound with damping ``gamma``.

    Inverts :func:`damped_oscillator_time` by bisection on ``s in [1, s+)`` (``gamma = 0``: Eq. 15).
    """
    time = np.asarray(time, dtype=float)
    if gamma <= 0:
        return np.asarray(oscillator_bound(time))
    a, b, root, sp, sm = _damped_constants(gamma)
    lo = np.ones_like(time)
    hi = np.full_like(time, sp)
    for _ in range(iterations):
        mid = 0.5 * (lo + hi)
        below = damped_oscillator_time(mid * mid - 1, gamma) <= time
        lo = np.where(below, mid, lo)
        hi = np.where(below, hi, mid)
    s = 0.5 * (lo + hi)
    return s * s - 1


def bound_rhs(kind: str, *, j=None, gamma=0.0):
    """Right-hand side ``f(E)`` of the differential inequality ``dE/dtau <= f(E)`` (Eq. 14, 27, C4; ladder).

    For the spin ``E = J + j``.  Used to integrate the bounds numerically (tests, notebook); ``f`` takes
    numpy arrays (fast inside ``scipy.integrate``) or jax arrays (traceable).
    """

    def xp(e):
        return jnp if isinstance(e, jax.Array) else np

    if kind == "oscillator":
        return lambda e: R0 * (1 - gamma) * xp(e).sqrt(e + 1) - 2 * gamma / math.pi * e
    if kind == "spin":

        def f(e):
            jz = e - j
            return R0 * xp(e).sqrt(xp(e).maximum(j * (j + 1) - jz * (jz + 1), 0.0))

        return f
    if kind == "ladder":
        return lambda e: R0 * xp(e).ones_like(e)
    raise ValueError(f"kind must be oscillator, spin or ladder, got {kind!r}")


def incoherent_bound(battery: LadderBattery, time, loss: float = 0.0):
    """The incoherent bound on the stored energy at ``Omega tau = time`` for this battery.

    Oscillator: Eq. 15 (``loss = 0``) or C4; spin: corrected Eq. 28; ladder: ``R0 tau``.
    (For the truncated oscillator the bound of the untruncated one is quoted.)
    """
    if battery.kind == "oscillator":
        return damped_oscillator_bound(time, loss) if loss > 0 else oscillator_bound(time)
    if battery.kind == "spin":
        return spin_bound(time, battery.j)
    return ladder_bound(time, battery.levels)


def full_swap_angles(battery: LadderBattery) -> np.ndarray:
    """``theta_k = pi/(2 g_{k-1})``, ``k = 1 .. d - 1``: ``|k-1> -> |k>`` with certainty (excited units)."""
    return np.pi / (2 * np.asarray(battery.coupling))


def full_swap_time(battery: LadderBattery, collisions: int) -> float:
    """Exact ``Omega tau`` of ``collisions`` full swaps (Eq. 17, 30 before their asymptotics)."""
    return float(np.sum(full_swap_angles(battery)[:collisions]))


def full_swap_time_asymptotic(collisions):
    """Corrected Eq. 17: ``pi sqrt(K) + (pi/2) zeta(1/2) + pi/(4 sqrt(K)) + O(K^{-3/2})``."""
    k = np.asarray(collisions, dtype=float)
    return math.pi * np.sqrt(k) + math.pi / 2 * ZETA_HALF + math.pi / (4 * np.sqrt(k))


def full_swap_time_printed(collisions):
    """Eq. 17 as printed: ``pi sqrt(K) - zeta_{1/2}`` with ``zeta_{1/2} = 1.46``."""
    return math.pi * np.sqrt(np.asarray(collisions, dtype=float)) - 1.46


def coherent_limit(kind: str, time, drive=0.5, j=None):
    """Driving limit ``theta -> 0`` (Eq. 19-20, 31-32) for drive ``s = c sqrt(q(1-q))`` (``1/2`` at ``q = 1/2, c = 1``).

    The collisions then act as ``H_drive = s (A + A^+)`` per unit ``Omega tau`` (Eq. A13):
    oscillator: displaced vacuum, ``E = s^2 tau^2`` (``tau^2/4``, Eq. 20);
    spin: rotation ``exp(-i 2 s tau J_x)``, ``E = j (1 - cos 2 s tau)`` (Eq. 31-32).
    Untruncated closed forms; for the truncated oscillator or the ladder see
    :func:`qbjax.collisional.driving_limit`.
    """
    t = jnp.asarray(time, dtype=jnp.float64)
    if kind == "oscillator":
        return (drive * t) ** 2
    if kind == "spin":
        return j * (1 - jnp.cos(2 * drive * t))
    raise ValueError(f"no closed-form driving limit for {kind!r}; use driving_limit()")


def oscillator_advantage() -> float:
    """``lim Pbar_coh/Pbar_bound = (tau^2/4)/(R0^2 tau^2/4) = R0^-2`` (Sec. III C: 1.90)."""
    return 1 / R0**2


def spin_advantage() -> float:
    """``tau*_bound/tau*_coh = (pi/R0)/pi = R0^-1`` as ``j -> infinity`` (Sec. IV C: 1.38)."""
    return 1 / R0

