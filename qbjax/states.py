"""The battery's reduced state and its ergotropy at a time (closed dynamics)."""

from __future__ import annotations

import math

import equinox as eqx
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array

from . import representation as rep
from .dynamics import ODEOptions, sesolve
from .methods import resolve_method
from .model import AbstractBattery, Spec
from .representation.closed import spectral_decomposition
from .status import merge, settle
from .trajectory import finite_status

__all__ = ["battery_state", "battery_state_status", "battery_hamiltonian", "battery_ergotropy",
           "battery_ergotropy_status"]


def battery_state(model: AbstractBattery | Spec, t) -> Array:
    """The battery's reduced density matrix at time ``t`` (closed quantum dynamics).

    The global state is evolved exactly (dense spectral block, or matrix-free
    ODE for large spaces) and the charger dofs are traced out.  Returned on
    the battery dofs' product basis (dimension ``prod`` of their dims).
    """
    rho, flags = battery_state_status(model, t)
    return settle(rho, flags, "battery_state")


def battery_state_status(model: AbstractBattery | Spec, t, eig=None, psi=None):
    """``(rho_B, status)``: :func:`battery_state` with its failure flag (:mod:`qbjax.status`) returned, not raised.

    ``eig``: the :func:`spectral_decomposition` of the spec, when the caller has it;
    ``psi``: the global state tensor (shape ``spec.dims``) at ``t``, when the caller has it.
    """
    spec = _closed_spec(model)
    if spec.dissipators:
        raise ValueError("battery_state needs closed dynamics; for open systems use the Lindblad states")
    spec.require_static("battery_state (for a modulated spec, charge with save_states=True and use qb.reduced_state)")
    if psi is not None:
        return _reduce(spec, psi), finite_status(psi)
    method = resolve_method(spec, "auto", False, None)
    if method in ("spectral", "chebyshev") and eig is None:
        from .expansions import CHEB_COMPILE_SECONDS, CHEB_PLAN_SECONDS, spectral_seconds, state_at, state_seconds

        # Auto's cost model: one expansion where it is cheaper than eigh (and always instead of an
        # adaptive ODE at 1e-12, the matrix-free fallback for blocks too large to diagonalise); a small
        # block is diagonalised without estimating the expansion at all
        spectral = spectral_seconds(rep.basis(spec).dim, 1) if method == "spectral" else math.inf
        if spectral > CHEB_PLAN_SECONDS + CHEB_COMPILE_SECONDS:
            cheb = state_seconds(spec, t)
            if cheb is not None and cheb < spectral:
                return state_at(spec, t, reduce=_reduced_status)
    return _battery_state_jit(spec, jnp.asarray(t, jnp.float64), method, eig if method == "spectral" else None)


@eqx.filter_jit
def _battery_state_jit(spec: Spec, t, method: str, eig=None):
    ts = jnp.stack([jnp.zeros_like(t), t])
    if method == "spectral":
        b = rep.basis(spec)
        w, V = spectral_decomposition(spec) if eig is None else eig
        psi = V @ (jnp.exp(-1j * w * t) * (V.conj().T @ rep.initial_vector(spec, b)))
        full = b.embed(psi)
        solved = jnp.int32(0)
    else:
        H = rep.MatrixFree(spec.space, spec.charger + spec.battery + spec.coupling)
        psi0 = jnp.zeros(spec.dims, jnp.complex128).at[spec.initial_indices()].set(1.0)
        psis, solved = sesolve(lambda s, x, a: H(x), psi0, ts, options=ODEOptions(rtol=1e-12, atol=1e-12),
                               status=True)
        full = psis[-1]
    rho = _reduce(spec, full)
    return rho, merge(solved, finite_status(rho))


def _reduced_status(spec: Spec, full):
    rho = _reduce(spec, full)
    return rho, finite_status(rho)


def _reduce(spec: Spec, full):
    """The battery dofs' reduced density matrix of a global state tensor."""
    keep = [i for i, n in enumerate(spec.names) if n in spec.battery_dofs]
    rest = [i for i in range(len(spec.dims)) if i not in keep]
    x = jnp.transpose(full, keep + rest).reshape(math.prod(spec.dims[i] for i in keep), -1)
    return x @ x.conj().T


def battery_hamiltonian(spec: Spec) -> Array:
    """``H_B`` as a dense matrix on the battery dofs' product basis."""
    sub = tuple((n, d) for n, d in spec.space if n in spec.battery_dofs)
    b = rep.Basis(sub, np.arange(math.prod(d.dim for _, d in sub)), (tuple(d.dim for _, d in sub), None, None))
    return rep.dense(sub, spec.battery, b)


def battery_ergotropy(model: AbstractBattery | Spec, t, *, physical: bool = True) -> Array:
    """Ergotropy of the battery's reduced state at ``t``.

    With ``physical=True`` the passive state may use the whole physical
    battery (the spec's ``battery_levels`` / ``battery_degeneracies``, for
    example all ``2^N`` states of ``N`` qubits simulated in the symmetric
    sector); with ``False`` only the simulated battery space.
    """
    value, flags = battery_ergotropy_status(model, t, physical=physical)
    return settle(value, flags, "battery_ergotropy")


def battery_ergotropy_status(model: AbstractBattery | Spec, t, *, physical: bool = True, eig=None, psi=None):
    """``(ergotropy, status)``: :func:`battery_ergotropy` with its failure flag returned, not raised
    (``eig``, ``psi``: as in :func:`battery_state_status`)."""
    spec = _closed_spec(model)
    rho, flags = battery_state_status(spec, t, eig=eig, psi=psi)
    return _ergotropy_jit(spec, rho, physical), flags


@eqx.filter_jit
def _ergotropy_jit(spec: Spec, rho, physical: bool):
    # one compiled (and persistently cached) program: eagerly, these few operations were ~25 tiny
    # compilations per process (~1 s of a command's start-up)
    from .metrics import ergotropy

    hb = battery_hamiltonian(spec)
    if physical and spec.battery_levels is not None:
        return ergotropy(rho, hb, levels=spec.battery_levels, degeneracies=spec.battery_degeneracies)
    return ergotropy(rho, hb)


def _closed_spec(model: AbstractBattery | Spec) -> Spec:
    """The spec whose Hamiltonian these functions evolve; a battery charged by its own solvers has none."""
    if isinstance(model, AbstractBattery) and model.native_method() is not None:
        raise ValueError(f"battery_state: a {model.name} battery is charged by its own solvers "
                         f"({model.native_method()}), not by a Hamiltonian this function could evolve; for "
                         "collisions use qbjax.collisional.collide(...).density_matrix() and .ergotropy()")
    return model.spec() if isinstance(model, AbstractBattery) else model
