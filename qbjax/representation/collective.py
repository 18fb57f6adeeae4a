"""Collective-spin specs as a permutation-symmetric problem: the ensembles, their channels, the initial excitations.

A spec made of collective spins ``Spin(N_e/2)``, jump operators that are
sums of ``J^+`` or ``J^-`` of single ensembles, and a Hamiltonian that is a
common ``omega0 * (total J_z)`` reduces to the exact permutation-symmetric
master equation of :mod:`qbjax.dynamics.collective` and to the cumulant
equations of :mod:`qbjax.dynamics.cumulants`.  :func:`collective_problem`
reads that structure from the spec (or says what is not of that form).
"""

from __future__ import annotations

from dataclasses import dataclass

import jax
import jax.numpy as jnp
import numpy as np

from ..dynamics.cumulants import Collective

__all__ = ["CollectiveProblem", "collective_problem"]


@dataclass(frozen=True)
class CollectiveProblem:
    """The static structure of a collective-spin spec.

    Attributes:
        names, sizes: dof names and ``N_e`` (``2 j_e``).
        channels: :class:`~qbjax.dynamics.cumulants.Collective` structures, one per dissipator.
        excitations: initial ``n_e`` per ensemble.
    """

    names: tuple[str, ...]
    sizes: tuple[int, ...]
    channels: tuple[Collective, ...]
    excitations: tuple[int, ...]


def collective_problem(spec) -> tuple[CollectiveProblem, jnp.ndarray]:
    """``(structure, rates)`` of a spec made of collective spins and ladder-sum dissipators.

    Raises:
        ValueError: naming what is not of that form (a non-spin dof, a jump
            operator mixing raising and lowering or with a non-ladder
            factor, complex coefficients, a Hamiltonian that is not a
            multiple of the total excitation).
    """
    from ..operators import Spin

    names = spec.names
    sizes = []
    for name, dof in spec.space:
        if not isinstance(dof, Spin) or dof.j.denominator not in (1, 2):
            raise ValueError(f"dof {name!r} is {dof}: collective dynamics needs Spin dofs (N/2)")
        sizes.append(int(2 * dof.j))
    channels, rates = [], []
    for d in spec.dissipators:
        kinds, terms = set(), []
        for t in d.operator:
            if len(t.factors) != 1 or t.factors[0][1] not in ("jm", "jp"):
                raise ValueError(f"jump operator term {t.factors} is not a single J^+ or J^- of one ensemble")
            c = np.asarray(t.coeff)
            if np.iscomplexobj(c) and np.any(np.imag(c) != 0):
                raise ValueError("jump operator coefficients must be real (the Dicke-basis state stays real)")
            kinds.add(t.factors[0][1])
            terms.append((names.index(t.factors[0][0]), float(np.real(c))))
        if len(kinds) != 1:
            raise ValueError("a jump operator must be all lowering or all raising (U(1) covariance)")
        channels.append(Collective(tuple(terms), raising=kinds == {"jp"}))
        rates.append(jnp.asarray(d.rate, jnp.float64))
    # H: only J_z / identity terms with one common coefficient commute with the neutral-sector state
    coeffs = {}
    for t in spec.charger + spec.battery + spec.coupling:
        if not t.factors:
            continue
        if len(t.factors) != 1 or t.factors[0][1] != "jz":
            raise ValueError(f"Hamiltonian term {t.factors}: only J_z terms (a common splitting) are allowed")
        coeffs.setdefault(t.factors[0][0], []).append(t.coeff)
    values = [float(np.real(np.asarray(sum(v)))) for v in coeffs.values()
              if not isinstance(sum(v), jax.core.Tracer)]  # traced splittings (under jit) are not checked
    if coeffs and len(coeffs) != len(names):
        values = [0.0, 1.0]  # an ensemble without J_z next to one with it: detuned
    if values and max(values) - min(values) > 1e-12 * max(1.0, max(map(abs, values))):
        raise ValueError("the Hamiltonian must be omega0 * (total J_z) with one omega0 for every ensemble "
                         "(then it drops out exactly); detuned ensembles are not supported")
    excitations = tuple(d.level_index(dict(spec.initial).get(n, -d.j)) for n, d in spec.space)
    if spec.initial_populations:
        raise ValueError("collective dynamics starts from a Dicke product state (initial), not initial_populations")
    return CollectiveProblem(tuple(names), tuple(sizes), tuple(channels), excitations), jnp.stack(rates)
