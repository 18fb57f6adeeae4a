"""The dense open-system representation of a Spec: one assembly of the Lindblad equation's operators."""

from __future__ import annotations

from typing import NamedTuple

import jax.numpy as jnp

from .. import representation as rep
from ..model import Spec

__all__ = ["DenseLindblad", "dense_lindblad", "initial_density_matrix"]


class DenseLindblad(NamedTuple):
    """``H_A + H_B`` (``H0``), ``H_I`` (``HI``), the jumps ``[(rate, L)]`` and ``rho_0`` on ``basis``."""

    basis: rep.Basis
    H0: jnp.ndarray
    HI: jnp.ndarray
    jumps: list
    rho0: jnp.ndarray

    @property
    def H(self):
        """The full Hamiltonian ``H0 + HI``."""
        return self.H0 + self.HI


def dense_lindblad(spec: Spec, b: rep.Basis | None = None) -> DenseLindblad:
    """The operators of ``d rho/dt = -i[H, rho] + sum_k rate_k D[L_k] rho`` as dense matrices on ``b``.

    The one assembly that the Lindblad propagator (``charge``), the steady
    state and the reservoirs' dense check share.  ``b`` defaults to
    ``rep.basis(spec)`` (the full product basis when dissipators break the
    declared charge).
    """
    b = rep.basis(spec) if b is None else b
    H0 = rep.dense(spec.space, spec.charger + spec.battery, b)
    HI = rep.dense(spec.space, spec.coupling, b)
    jumps = [(d.rate, rep.dense(spec.space, d.operator, b)) for d in spec.dissipators]
    return DenseLindblad(b, H0, HI, jumps, initial_density_matrix(spec, b))


def initial_density_matrix(spec: Spec, b: rep.Basis):
    """``rho_0`` on basis ``b``: the pure initial product state, or the mixed one of ``initial_populations``."""
    if spec.initial_populations:
        p = spec.initial_population_tensor().reshape(-1)[b.indices]
        return jnp.diag(p.astype(jnp.complex128))
    psi0 = rep.initial_vector(spec, b)
    return jnp.outer(psi0, psi0.conj())
