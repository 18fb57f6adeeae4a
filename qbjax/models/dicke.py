"""Dicke battery (seed 000, Sec. VI, Eq. 21-26).

A cavity mode charges ``N`` qubits (a collective spin ``J = N/2``)::

    H_A = w0 a^+ a,   H_B = w0 (J_z + N/2),   H_I = 2 g (a^+ + a) J_x

The counter-rotating terms break excitation-number conservation; only the
parity of ``a^+ a + J_z + N/2`` survives, which halves the dense block.  The
charger starts in the Fock state ``|N>`` (energy ``N w0``); the photon
number can then exceed ``N``, so the Fock space is truncated at ``cutoff``
levels, chosen by :func:`default_cutoff` unless given, and every run reports
the largest population of the top kept level (a warning is raised above a
tolerance).

Classical analog (Eq. 23): ``a -> (q + i p)/sqrt(2)``, a spin vector of
length ``N/2``; the charger starts at ``q_a = p_a = sqrt(N)`` (Eq. 23 text;
the printed constraint ``p^2 + q^2 = 2 N w0`` should read ``2 N``), the spin
at the south pole.  The field's torque moves the spin off the pole at once,
so no tilt is needed.  The equations of motion are derived from Eq. 23 by
:mod:`qbjax.dynamics.hamilton`; Eq. 24 as printed does not conserve energy:
its ``dp_a/dt`` carries a spurious factor ``q_a`` in the coupling force
(``-dH/dq_a = -w0 q_a - sqrt(2) N g sin(theta) cos(phi)``).
"""

from __future__ import annotations

import math
from fractions import Fraction

import equinox as eqx
import jax.numpy as jnp
from jaxtyping import Array

from ..model import AbstractBattery, Charge, Spec, term
from ..operators import Boson, Spin
from ._common import ParameterError, binomial_levels, check_real, check_size, check_state_size


def default_cutoff(n: int, g: float, omega0: float = 1.0) -> int:
    """Fock levels kept for the Dicke battery over the default window ``t <= 3/(g sqrt N)``.

    The field amplitude starts at ``sqrt(N)`` and is displaced by the force
    ``2 g J_x`` (``|J_x| <= N/2``): by at most ``g N t = 3 sqrt(N)`` over the
    window, and by about ``2 g N / w0`` when the counter-rotating drive is
    off resonance.  With ``A`` the smaller of the two, the photon number
    stays below ``(sqrt(N) + A)^2`` plus a few standard deviations.  Checked
    against converged runs for ``N <= 10`` and ``0.01 <= g/w0 <= 2``: the rule
    leaves ``< 1e-10`` in the top level (``charge`` warns if a run does not).
    """
    amp = math.sqrt(n) + min(3.0 * math.sqrt(n), 2.0 * g * n / omega0)
    return int(math.ceil(amp * amp + 6.0 * amp + 18.0))


class DickeBattery(AbstractBattery):
    """``N`` qubits charged by a cavity in the Fock state ``|N>``.

    Arguments:
        n: number of qubits ``N`` (static).
        g: coupling (seed 000 normalisation, *not* ``g/sqrt(N)``).
        omega0: cavity and qubit frequency (resonant).
        cutoff: Fock levels kept (static, must exceed ``n``); ``None``:
            :func:`default_cutoff`.
    """

    n: int = eqx.field(static=True)
    g: Array
    omega0: Array
    cutoff: int = eqx.field(static=True)

    def __init__(self, n: int = 4, g=0.5, omega0=1.0, cutoff: int | None = None):
        self.n = check_size("n", n)
        self.g = check_real("g", g, minimum=0.0, strict=True)
        self.omega0 = check_real("omega0", omega0, minimum=0.0, strict=True)
        if cutoff is None:
            try:
                gmax, w = float(jnp.max(self.g)), float(jnp.min(self.omega0))
            except Exception:  # traced parameters: fall back to a generous rule
                gmax, w = 2.0, 1.0
            check_state_size("Dicke battery", "n", self.n, lambda n: default_cutoff(n, gmax, w) * (n + 1))
            cutoff = default_cutoff(self.n, gmax, w)
        cutoff = check_size("cutoff", cutoff, minimum=2)
        check_state_size("Dicke battery", "cutoff", cutoff, lambda c: c * (self.n + 1))
        if cutoff <= self.n:
            raise ParameterError(
                f"cutoff must be > n = {self.n} (the charger starts in the Fock state |{self.n}>, "
                f"which needs {self.n + 1} levels), got {cutoff}"
            )
        self.cutoff = cutoff

    @property
    def name(self) -> str:
        return "dicke"

    def spec(self, classical: bool = False) -> Spec:
        n = self.n
        j = Fraction(n, 2)
        levels, deg = binomial_levels(n)
        sqn = math.sqrt(n)
        return Spec(
            space=(("a", Boson(self.cutoff)), ("b", Spin(j))),
            charger=(term(self.omega0, "a.n"),),
            battery=(term(self.omega0, "b.jz"), term(self.omega0 * n / 2)),
            coupling=(term(2 * self.g, "a.a", "b.jx"), term(2 * self.g, "a.adag", "b.jx")),
            battery_dofs=("b",),
            initial=(("a", n), ("b", -j)),
            classical_initial={"a": jnp.array([sqn, sqn]), "b": jnp.array([0.0, 0.0, -n / 2])},
            conserved=Charge((1, 1), modulus=2),
            battery_levels=jnp.asarray(levels) * self.omega0,
            battery_degeneracies=tuple(float(x) for x in deg),
            energy_bound=n * self.omega0,
        )

    def working_cutoffs(self):
        """``(("a", default_cutoff(n, g, omega0)),)`` when the chosen cutoff is larger (concrete parameters only)."""
        try:
            w = default_cutoff(self.n, float(self.g), float(self.omega0))
        except Exception:  # traced or batched parameters: no hint
            return ()
        w = 16 * math.ceil(w / 16)  # nearby couplings share compiled shapes
        return (("a", w),) if self.n < w < self.cutoff else ()

    def with_n(self, n: int) -> DickeBattery:
        return DickeBattery(n, self.g, self.omega0, None)

    def time_scale(self):
        return 1.0 / (self.g * jnp.sqrt(self.n))

    def default_t_max(self):
        return 3.0 * self.time_scale()

    def default_num_times(self) -> int:
        # The counter-rotating terms add wiggles at ~2 w0 on top of the
        # g sqrt(N) envelope: keep >= 24 points per 2 pi / w0.
        try:
            periods = float(jnp.max(self.default_t_max() * self.omega0)) / (2 * math.pi)
        except Exception:  # traced parameters
            return 401
        # rounded up to 400 * 2^k + 1 points so that nearby couplings share a compiled grid shape
        need = 24 * periods
        k = max(0, math.ceil(math.log2(max(need, 1.0) / 400)))
        return 400 * 2**k + 1
