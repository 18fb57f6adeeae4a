"""Spin-spin battery (seed 000, Sec. V, Eq. 16-20).

``N`` charger qubits and ``N`` battery qubits as two collective spins of
length ``J = N/2``::

    H_A = w0 (J_z^a + N/2),   H_B = w0 (J_z^b + N/2),
    H_I = 4 g (J_x^a J_x^b + J_y^a J_y^b) = 2 g (J_+^a J_-^b + J_-^a J_+^b)

``J_z^a + J_z^b`` is conserved: starting from ``|J, J>_a |J, -J>_b`` the
dynamics lives in an ``N + 1``-dimensional block (exact).

Classical analog (Eq. 18): two vectors of length ``J``.  Both start at
poles, which is an exact fixed point of the classical flow (the torques
vanish); the charger is therefore tilted by the angle ``tilt`` (radians,
azimuth 0) while the battery starts exactly in its ground state, so that
``E_B(0) = 0``.  The charger's energy is then ``N w0 (1 + cos tilt)/2``.
Because ``w0`` only rotates both spins together about ``z`` (it commutes
with the coupling), the classical flow depends on time only through
``g N t`` for any fixed tilt: ``Gamma_cl = N`` exactly, whatever the tilt
(tested), while ``Pbar`` itself grows as the tilt grows (the escape from
the pole takes a time ``~ log(1/tilt) / (g N)``).  ``tilt`` is reported
with every classical result.
"""

from __future__ import annotations

from fractions import Fraction

import equinox as eqx
import jax.numpy as jnp
from jaxtyping import Array

from ..model import AbstractBattery, Charge, Spec, Term, term
from ..operators import Spin
from ._common import binomial_levels, check_real, check_size, check_state_size

DEFAULT_TILT = 1e-2


class SpinBattery(AbstractBattery):
    """``N`` qubits charged by ``N`` fully excited qubits (collective spins).

    Arguments:
        n: number of battery qubits ``N`` (static; also the number of charger qubits).
        g: coupling.
        omega0: qubit splitting.
        tilt: classical only: polar angle of the charger spin away from the
            north pole (radians, ``0 <= tilt < pi``); 0 is a fixed point.
    """

    n: int = eqx.field(static=True)
    g: Array
    omega0: Array
    tilt: Array

    def __init__(self, n: int = 4, g=0.2, omega0=1.0, tilt=DEFAULT_TILT):
        self.n = check_size("n", n)
        check_state_size("spin battery", "n", self.n, lambda k: (k + 1) ** 2)
        self.g = check_real("g", g, minimum=0.0, strict=True)
        self.omega0 = check_real("omega0", omega0, minimum=0.0, strict=True)
        self.tilt = check_real("tilt", tilt, minimum=0.0, maximum=jnp.pi)

    @property
    def name(self) -> str:
        return "spins"

    def spec(self, classical: bool = False) -> Spec:
        n = self.n
        j = Fraction(n, 2)
        half = n / 2
        levels, deg = binomial_levels(n)
        charger_vec = half * jnp.stack([jnp.sin(self.tilt), jnp.zeros_like(self.tilt), jnp.cos(self.tilt)])
        return Spec(
            space=(("a", Spin(j)), ("b", Spin(j))),
            charger=(term(self.omega0, "a.jz"), Term(self.omega0 * half)),
            battery=(term(self.omega0, "b.jz"), Term(self.omega0 * half)),
            coupling=(term(2 * self.g, "a.jp", "b.jm"), term(2 * self.g, "a.jm", "b.jp")),
            battery_dofs=("b",),
            initial=(("a", j), ("b", -j)),
            classical_initial={"a": charger_vec, "b": jnp.array([0.0, 0.0, -half])},
            conserved=Charge((1, 1)),
            battery_levels=jnp.asarray(levels) * self.omega0,
            battery_degeneracies=tuple(float(x) for x in deg),
            energy_bound=n * self.omega0,
        )

    def with_n(self, n: int) -> SpinBattery:
        return SpinBattery(n, self.g, self.omega0, self.tilt)

    def time_scale(self):
        return 1.0 / (self.g * self.n)

    def default_t_max(self):
        return 2.0 * jnp.pi * self.time_scale()
