"""Spin-chain battery (seed 002, Le et al., Eq. 1-10).

``N`` spins-1/2 with the static Hamiltonian ``H_0 = H_B + H_g``::

    H_B = B sum_i sigma^z_i,
    H_g = - sum_{i<j} g_ij [sigma^z_i sigma^z_j + alpha (sigma^x_i sigma^x_j + sigma^y_i sigma^y_j)],

couplings nearest neighbour ``g_ij = g delta_{i,j-1}`` (Eq. 4a; open, or
periodic with ``periodic=True``), power law ``g / |i - j|^p`` (Eq. 4b; ``p = 0``
is the infinite-range chain) or any symmetric matrix.  The chain starts in
``|down...down>`` (the ground state of ``H_0`` for ``g >= 0``, ``|alpha| <= 1``).
While charging (``0 < t < T``) the field ``B`` is off and the local field
``V = omega sum_i sigma^x_i`` (Eq. 6; per-site amplitudes allowed) is on,
``H = H_g + V`` (Eq. 7); the work is measured with ``H_0`` (Eq. 9):
``W(t) = tr[H_0 rho_t] - tr[H_0 rho_down]``.

In qbjax's spec this is ``H_A + H_B + H_I`` with the battery energy ``H_0 +
NB + G`` (zero initially, ``G = sum_{i<j} g_ij``), the "charger" ``-B sum
sigma^z`` (the field switched off during charging; it acts on the battery
spins and has no dofs of its own) and the coupling ``V``, so every
propagator, the maximum power and the classical analog apply unchanged.

Classical analog (Eq. 20-21): the mean-field chain, each spin a Bloch vector
``S_m = <sigma_m>/2`` of length 1/2 under the classical Hamiltonian with
``sigma -> 2 S`` (qbjax's qubit symbol), which is the equation of motion of a
product state under its own mean field.  Exact for ``alpha = 1`` with
uniform field, where ``V`` commutes with ``H_g`` (Sec. III A).
"""

from __future__ import annotations

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array

from ..model import AbstractBattery, Spec, Term, term
from ..operators import Qubit
from ._common import ParameterError, check_real, check_size

COUPLINGS = ("nn", "power", "matrix")
#: Largest chain: a 2^N complex state and a few dozen Chebyshev vectors of it.
MAX_N = 26


def state_memory(n: int, vectors: int = 32) -> int:
    """Bytes of ``vectors`` complex128 state tensors of ``n`` spins."""
    return vectors * 16 * 2**n


class SpinChainBattery(AbstractBattery):
    """XXZ spin chain charged by a local transverse field (seed 002).

    Arguments:
        n: number of spins ``N`` (static; exact dynamics on ``2^N`` states).
        b: field ``B`` of ``H_B`` (sets the stored energy scale).
        g: coupling strength ``g >= 0``.
        field: charging field ``omega`` of ``V``.
        alpha: anisotropy, ``|alpha| <= 1`` (0: Ising, 1: XXX).
        couplings: ``"nn"``, ``"power"`` or ``"matrix"`` (static).
        power: exponent ``p >= 0`` of the power law.
        periodic: nearest-neighbour ring instead of an open chain (static).
        matrix: ``(N, N)`` symmetric coupling matrix ``g_ij`` (with
            ``couplings="matrix"``; ``g`` then multiplies it).
        sites: per-site charging amplitudes (``V = omega sum_i s_i sigma^x_i``;
            default all ones; for example ``[1, 0, ..., 0, 1]`` charges the ends).
    """

    n: int = eqx.field(static=True)
    b: Array
    g: Array
    field: Array
    alpha: Array
    power: Array
    matrix: Array | None
    sites: Array
    couplings: str = eqx.field(static=True)
    periodic: bool = eqx.field(static=True)

    def __init__(self, n: int = 4, b=1.0, g=1.0, field=4.0, alpha=0.0, couplings: str = "nn", power=1.0,
                 periodic: bool = False, matrix=None, sites=None):
        self.n = check_size("n", n)
        if self.n > MAX_N:
            raise ParameterError(f"n must be <= {MAX_N} for exact dynamics: 2^{self.n} states need "
                                 f"{state_memory(self.n) / 2**30:.0f} GiB for the propagator's vectors")
        self.b = check_real("b", b, minimum=0.0, strict=True)
        self.g = check_real("g", g, minimum=0.0)
        self.field = check_real("field", field)
        self.alpha = check_real("alpha", alpha, minimum=-1.0, maximum=1.0)
        self.power = check_real("power", power, minimum=0.0)
        if couplings not in COUPLINGS:
            raise ParameterError(f"couplings must be one of {', '.join(COUPLINGS)}, got {couplings!r}")
        self.couplings = couplings
        self.periodic = bool(periodic)
        if couplings == "matrix":
            if matrix is None:
                raise ParameterError("couplings='matrix' needs matrix=(N, N) couplings g_ij")
            m = jnp.asarray(matrix, jnp.float64)
            if m.shape != (self.n, self.n):
                raise ParameterError(f"matrix must have shape ({self.n}, {self.n}), got {m.shape}")
            self.matrix = m
        else:
            if matrix is not None:
                raise ParameterError("matrix is only used with couplings='matrix'")
            self.matrix = None
        s = jnp.ones(self.n) if sites is None else jnp.asarray(sites, jnp.float64)
        if s.shape != (self.n,):
            raise ParameterError(f"sites must have shape ({self.n},), got {s.shape}")
        self.sites = s
        if self.periodic and couplings != "nn":
            raise ParameterError("periodic applies to nearest-neighbour couplings only")

    @property
    def name(self) -> str:
        return "spin-chain"

    def pairs(self) -> list[tuple[int, int]]:
        """The coupled pairs ``i < j`` (static structure)."""
        n = self.n
        if self.couplings == "nn":
            out = [(i, i + 1) for i in range(n - 1)]
            if self.periodic and n > 2:
                out.append((0, n - 1))
            return out
        return [(i, j) for i in range(n) for j in range(i + 1, n)]

    def coupling_matrix(self):
        """``g_ij`` as an ``(N, N)`` symmetric array with zero diagonal (traceable)."""
        n = self.n
        if self.couplings == "matrix":
            full = self.g * self.matrix
            full = 0.5 * (full + full.T)
            return full * (1 - jnp.eye(n))
        if self.couplings == "power":
            d = jnp.asarray(np.abs(np.subtract.outer(np.arange(n), np.arange(n))), jnp.float64)
            safe = jnp.where(d > 0, d, 1.0)
            return jnp.where(d > 0, self.g / safe**self.power, 0.0)
        mask = np.zeros((n, n))
        for a, c in self.pairs():
            mask[a, c] = mask[c, a] = 1.0
        return self.g * jnp.asarray(mask)

    def total_coupling(self):
        """``G = sum_{i<j} g_ij``."""
        gm = self.coupling_matrix()
        return 0.5 * jnp.sum(gm)

    def spec(self, classical: bool = False) -> Spec:
        n = self.n
        names = [f"s{i}" for i in range(n)]
        gm = self.coupling_matrix()
        # a concrete alpha = 0 (Ising) has no flip terms: leave them out of the
        # structure (a traced alpha, as under jax.grad, keeps them)
        flips = isinstance(self.alpha, jax.core.Tracer) or bool(np.any(np.asarray(self.alpha) != 0))
        # concrete parameters: index numpy copies (N^2 eager device ops cost ~0.1 s at N = 16)
        traced = any(isinstance(x, jax.core.Tracer) for x in jax.tree.leaves(self))
        gms, alpha = (gm, self.alpha) if traced else (np.asarray(gm), np.asarray(self.alpha))
        interaction = []
        for i, j in self.pairs():
            gij = gms[i, j]
            interaction.append(term(-gij, f"{names[i]}.sz", f"{names[j]}.sz"))
            if flips:
                interaction += [term(-gij * alpha, f"{names[i]}.sx", f"{names[j]}.sx"),
                                term(-gij * alpha, f"{names[i]}.sy", f"{names[j]}.sy")]
        field = tuple(term(self.b, f"{s}.sz") for s in names)
        offset = Term(n * self.b + self.total_coupling())  # W(0) = 0 (Eq. 5)
        return Spec(
            space=tuple((s, Qubit()) for s in names),
            charger=tuple(term(-self.b, f"{s}.sz") for s in names),  # B is off while charging (Eq. 7)
            battery=field + tuple(interaction) + (offset,),
            coupling=tuple(term(self.field * self.sites[i], f"{s}.sx") for i, s in enumerate(names)),
            battery_dofs=tuple(names),
            initial=(),
            classical_initial={s: jnp.array([0.0, 0.0, -0.5]) for s in names},
            energy_bound=2 * n * self.b + 2 * (1 + 2 * jnp.abs(self.alpha)) * jnp.sum(jnp.abs(gm)) / 2,
        )

    def with_n(self, n: int) -> SpinChainBattery:
        if self.couplings == "matrix":
            raise ValueError("with_n is not defined for a user coupling matrix")
        return SpinChainBattery(n, self.b, self.g, self.field, self.alpha, self.couplings, self.power,
                                self.periodic, None, None)

    def time_scale(self):
        return 1.0 / jnp.maximum(jnp.abs(self.field), 1e-12)

    def default_t_max(self):
        """``pi / omega``: holds the first maxima of power and work of the weakly
        coupled chain (one spin's work ``2B sin^2(omega T)`` peaks at ``pi/(2 omega)``)."""
        return jnp.pi * self.time_scale()

    def default_num_times(self) -> int:
        return 201


def single_spin_work(b, omega, t):
    """Eq. 11: ``W^(1)(t) = 2 B sin^2(omega t)``."""
    return 2 * b * jnp.sin(omega * t) ** 2


def weak_coupling_work(n, b, omega, alpha, total_coupling, t):
    """Eq. 18: ``W(t) = 2 B N sin^2(omega t) + (1 - alpha) G sin^2(2 omega t)`` (first order in ``G``)."""
    return 2 * b * n * jnp.sin(omega * t) ** 2 + (1 - alpha) * total_coupling * jnp.sin(2 * omega * t) ** 2
