"""The classical analog of a Spec: ``H(x)`` by the canonical correspondence (seed 000, Sec. II)."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from ..model import Spec, Term


def classical_hamiltonian(space, terms: tuple[Term, ...]):
    """The classical function ``H(x)`` of the concatenated phase-space vector ``x``.

    Each operator becomes its classical symbol (:meth:`Dof.symbol`), products
    become products; the real part is taken (the sum is real for a Hermitian
    operator written term by term with its conjugates).  Terms with the same
    operators on equal dofs (all ``s_i^z s_j^z`` of a spin chain) are
    evaluated together as one gathered product, so the traced program grows
    with the number of kinds of terms, not with the number of terms.
    """
    slices = _classical_slices(space)
    dofs = dict(space)
    groups: dict = {}
    for t in terms:
        key = tuple((dofs[d], op) for d, op in t.factors)
        groups.setdefault(key, []).append(t)
    plan = []
    for key, group in groups.items():
        starts = [np.array([slices[t.factors[p][0]].start for t in group]) for p in range(len(key))]
        plan.append((key, group, starts))

    def h(x):
        total = jnp.zeros((), x.dtype)
        for key, group, starts in plan:
            value = jnp.stack([jnp.asarray(t.coeff, jnp.complex128) for t in group])
            for (dof, op), start in zip(key, starts):
                xs = x[start[:, None] + np.arange(dof.classical_size)[None, :]]
                value = value * jax.vmap(lambda xi, dof=dof, op=op: dof.symbol(op, xi))(xs)
            total = total + jnp.sum(jnp.real(value))
        return total

    return h


def _classical_slices(space):
    out, start = {}, 0
    for name, dof in space:
        if dof.classical_size == 0:
            raise ValueError(f"dof {name!r} ({type(dof).__name__}) has no classical analog")
        out[name] = slice(start, start + dof.classical_size)
        start += dof.classical_size
    return out


def classical_state(spec: Spec):
    """The initial classical phase-space vector (dofs concatenated in order)."""
    parts = []
    for name, dof in spec.space:
        if name not in spec.classical_initial:
            raise ValueError(f"classical initial condition missing for dof {name!r}")
        x = jnp.asarray(spec.classical_initial[name], jnp.float64)
        if x.shape != (dof.classical_size,):
            raise ValueError(
                f"classical initial condition of {name!r} must have shape ({dof.classical_size},), got {x.shape}"
            )
        parts.append(x)
    return jnp.concatenate(parts)


def classical_kinds(space) -> tuple[str, ...]:
    """Per dof: ``"canonical"`` (q, p) or ``"spin"`` (vector)."""
    return tuple("canonical" if dof.classical_size == 2 else "spin" for _, dof in space)
