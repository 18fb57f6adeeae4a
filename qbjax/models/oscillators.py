"""Harmonic-oscillator battery (seed 000, Sec. IV, Eq. 6-15).

One charger mode ``a`` and ``N`` battery oscillators ``b_i``::

    H_A = w0 a^+ a,   H_B = w0 sum_i b_i^+ b_i,   H_I = g sum_i (a b_i^+ + a^+ b_i)

Only the bright mode ``B = sum_i b_i / sqrt(N)`` couples (Eq. 7): the model
simulates ``a`` and ``B`` with ``g_N = sqrt(N) g`` (Eq. 8); the ``N - 1`` dark
modes stay in their ground state and carry no energy.  The coupling
conserves the total excitation number, so with the charger in ``|N>`` the
dynamics lives in the ``N + 1``-dimensional block ``{|N - k, k>}``: exact,
with no truncation.

Classical analog (Eq. 12-13): ``a -> (q + i p)/sqrt(2)``; the charger starts
at ``q_a = p_a = sqrt(N)`` (energy ``N w0``), the bright mode at rest.
Closed form (Eq. 10), quantum and classical: ``E_B = N w0 sin^2(g sqrt(N) t)``.
"""

from __future__ import annotations

import math

import equinox as eqx
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array

from ..model import AbstractBattery, Charge, Spec, Term, term
from ..operators import Boson
from ._common import check_real, check_size, check_state_size


class OscillatorBattery(AbstractBattery):
    """``N`` oscillators charged by one cavity mode in the Fock state ``|N>``.

    Arguments:
        n: number of battery oscillators ``N`` (static).
        g: charger-battery coupling.
        omega0: frequency of charger and battery oscillators.
    """

    n: int = eqx.field(static=True)
    g: Array
    omega0: Array

    def __init__(self, n: int = 4, g=0.2, omega0=1.0):
        self.n = check_size("n", n)
        check_state_size("oscillator battery", "n", self.n, lambda k: (k + 1) ** 2)
        self.g = check_real("g", g, minimum=0.0, strict=True)
        self.omega0 = check_real("omega0", omega0, minimum=0.0, strict=True)

    @property
    def name(self) -> str:
        return "oscillator"

    def spec(self, classical: bool = False) -> Spec:
        n = self.n
        gn = self.g * math.sqrt(n)
        k = np.arange(n + 1, dtype=float)
        # N oscillators: level k w0 with degeneracy C(k + N - 1, N - 1).
        deg = np.array([math.comb(int(i) + n - 1, n - 1) for i in k], dtype=float)
        sqn = math.sqrt(n)
        return Spec(
            space=(("a", Boson(n + 1)), ("b", Boson(n + 1))),
            charger=(term(self.omega0, "a.n"),),
            battery=(term(self.omega0, "b.n"),),
            coupling=(Term(gn, (("a", "a"), ("b", "adag"))), Term(gn, (("a", "adag"), ("b", "a")))),
            battery_dofs=("b",),
            initial=(("a", n), ("b", 0)),
            classical_initial={"a": jnp.array([sqn, sqn]), "b": jnp.zeros(2)},
            conserved=Charge((1, 1)),
            battery_levels=jnp.asarray(k) * self.omega0,
            battery_degeneracies=tuple(float(x) for x in deg),
            energy_bound=n * self.omega0,
        )

    def with_n(self, n: int) -> OscillatorBattery:
        return OscillatorBattery(n, self.g, self.omega0)

    def time_scale(self):
        return 1.0 / (self.g * jnp.sqrt(self.n))

    def default_t_max(self):
        # sin^2(x)/x peaks at x = 1.1656 < pi/2: one quarter period is enough; take a half.
        return jnp.pi / 2 * 2 * self.time_scale()
