"""The closed-system representation of a Spec: operators, masks, the parity sector and the Fock window.

What the closed-dynamics propagators (spectral, Chebyshev, Krylov, ODE)
need from a :class:`~qbjax.model.Spec`, as arrays and operator callables:

* the initial state as a tensor, the diagonals of ``H`` and ``H_B``, and
  ``apply_H``/``apply_B``/``apply_C`` (:func:`closed_operators`), on the
  whole tensor or on the initial state's parity sector (:func:`sector_layout`);
* the top-Fock-level masks of the truncated bosons (truncation checks);
* the dense spectral decomposition (:func:`spectral_decomposition`) and the
  initial density matrix;
* a smaller Fock window of one boson with the constant of its leakage bound
  (:func:`fock_window`), and norms of sums of product terms;
* the classical view of a spec (sizes forgotten: one compiled Hamilton flow
  serves every ``N``).
"""

from __future__ import annotations

import dataclasses
import functools
import math

import equinox as eqx
import jax.numpy as jnp
import numpy as np

from .. import representation as rep
from ..linalg import eigh
from ..model import Spec, Term

#: A Fock window is tried only below this fraction of the boson's cutoff.
WINDOW_FRACTION = 0.8


def top_level_masks(spec: Spec, b: rep.Basis):
    """Per boson dof, a 0/1 vector on the basis marking its top Fock level."""
    from ..operators import Boson

    masks = []
    full = np.array(np.unravel_index(b.indices, spec.dims))
    for i, (_, dof) in enumerate(spec.space):
        if isinstance(dof, Boson) and not rep.truncation_is_exact(spec, i):
            masks.append(jnp.asarray((full[i] == dof.dim - 1).astype(float)))
    return masks


def real_operators(spec: Spec) -> bool:
    """Whether ``H`` and ``H_B`` (hence ``C = H - H_B``) are real matrices."""
    return rep.is_real(spec.space, spec.charger + spec.battery + spec.coupling) and rep.is_real(spec.space,
                                                                                               spec.battery)


def initial_tensor(spec: Spec):
    # a real H keeps a real initial basis state's vectors real
    real = rep.is_real(spec.space, spec.charger + spec.battery + spec.coupling)
    return jnp.zeros(spec.dims, jnp.float64 if real else jnp.complex128).at[spec.initial_indices()].set(1.0)


def fock_window(spec: Spec, working_cutoffs):
    """``(spec_w, axis, G)``: the spec with one boson cut to its working size, or ``None``.

    ``H_w = P H P`` must hold term by term (the windowed operator matrices
    are the full ones sliced: true for ``a``, ``a^+``, ``n`` and their
    products that do not pass through the top level), and ``H`` may leave
    the window only from its top level (single raising steps).  Then
    ``(1 - P) H psi_w = (1 - P) H P_top psi_w`` and
    ``G = sum_t |c_t| |<w|M_t|w-1>| prod_f |M_{t,f}|`` bounds its norm per unit
    amplitude in the top level.
    """
    from ..operators import Boson

    (name, w), = working_cutoffs[:1]
    names = [n for n, _ in spec.space]
    if name not in names:
        return None
    axis = names.index(name)
    dof = spec.space[axis][1]
    k0 = spec.initial_indices()[axis]
    if not isinstance(dof, Boson) or not (k0 < w - 1 and w <= WINDOW_FRACTION * dof.dim):
        return None
    if spec.dissipators or spec.initial_populations is not None:
        return None
    space_w = tuple((n, Boson(w) if i == axis else d) for i, (n, d) in enumerate(spec.space))
    G = 0.0
    for t in spec.charger + spec.battery + spec.coupling:
        full, cut = rep._local_matrices(spec.space, t.factors), rep._local_matrices(space_w, t.factors)
        m = full[axis]
        if m is None:
            continue
        m = m.tocsr()
        if abs(cut[axis] - m[:w, :w]).sum() != 0:
            return None  # a product through the top level: the window is not P H P
        leak = m[w:, :w]
        if leak.nnz == 0:
            continue
        rows, cols = leak.nonzero()
        if cols.min() < w - 1 or rows.max() > 0:
            return None  # raises by more than one level
        other = math.prod(norm2(f) for i, f in enumerate(full) if f is not None and i != axis)
        G += abs(complex(t.coeff)) * float(abs(leak).max()) * other
    spec_w = dataclasses.replace(spec, space=space_w)
    return spec_w, axis, G


def norm2(m) -> float:
    """The spectral norm of a small sparse matrix (dense SVD up to 512 levels, else sqrt(|m|_1 |m|_inf))."""
    if m.shape[0] <= 512:
        return float(np.linalg.norm(m.toarray(), 2))
    a = abs(m)
    return float(np.sqrt(a.sum(axis=0).max() * a.sum(axis=1).max()))


def operator_norm(space, terms) -> float:
    """``sum_t |c_t| prod_f |M_{t,f}|``: a bound of the operator norm of a sum of product terms."""
    return sum(abs(complex(t.coeff)) * math.prod(norm2(f) for f in rep._local_matrices(space, t.factors)
                                                 if f is not None) for t in terms)


def evaluation_terms(spec: Spec):
    """Off-diagonal terms of the operator applied to evaluate ``<H_B>``: ``H_B``, or ``C = H - H_B`` if smaller."""
    _, b_off = rep.split_diagonal(spec.space, spec.battery)
    _, c_off = rep.split_diagonal(spec.space, spec.charger + spec.coupling)
    return c_off if len(b_off) > len(c_off) else b_off


def classical_view(spec: Spec) -> Spec:
    """The spec with everything the classical flow does not use made canonical.

    Sizes (cutoffs, spin lengths), the quantum initial state and the battery
    spectrum are static data that would force a recompilation for every
    ``N``; the classical Hamiltonian depends on none of them, so one compiled
    flow serves every size.
    """
    from ..operators import Boson, Spin

    def canonical(dof):
        if not dof.classical_size or not isinstance(dof, (Boson, Spin)):
            return dof  # qubits and the like have no size to forget
        return Boson(1) if isinstance(dof, Boson) else Spin(1)

    space = tuple((name, canonical(dof)) for name, dof in spec.space)
    return Spec(space=space, charger=spec.charger, battery=spec.battery, coupling=spec.coupling,
                battery_dofs=spec.battery_dofs, initial=(), classical_initial=spec.classical_initial,
                energy_bound=spec.energy_bound)


@eqx.filter_jit
def operator_diagonals(spec: Spec):
    """The diagonals of ``H`` and ``H_B`` as materialised arrays.

    Built inside :func:`_chebyshev_jit`, XLA would fuse each sum of
    broadcast terms into every consumer and re-evaluate it per use: for a
    16-spin chain's 120 couplings that made the ``K`` products ``B phi_k``
    of the moment matrices cost 1.7 s instead of a few milliseconds.
    """
    diag, _ = rep.split_diagonal(spec.space, spec.charger + spec.battery + spec.coupling)
    b_diag_terms, _ = rep.split_diagonal(spec.space, spec.battery)
    return rep.diagonal_tensor(spec.space, diag), rep.diagonal_tensor(spec.space, b_diag_terms)


def sector_layout(spec: Spec) -> rep.ParityLayout | None:
    """The compact layout of the initial state's parity sector, when every closed-dynamics operator has one.

    A declared parity (``Charge(..., modulus=2)``, the Dicke battery's
    ``a^+ a + J_z + j``) confines a pure initial basis state to half the
    space; :func:`_chebyshev_jit` then propagates that half alone
    (:class:`~qbjax.representation.ParityLayout`).  ``None`` when there is no
    parity, or when ``H``, ``H_B`` or ``H - H_B`` is not banded or mixes the
    sectors (then the declared charge is not conserved by the terms).
    """
    charge = spec.conserved
    if charge is None or charge.modulus != 2 or spec.initial_populations is not None:
        return None
    # structure only (cached): dofs, which operators act where, the charge, the initial state
    structure = tuple(tuple(t.factors for t in op) for op in (spec.charger, spec.battery, spec.coupling))
    return _sector_layout_cached(spec.space, structure, charge, spec.initial_indices())


@functools.lru_cache(maxsize=256)
def _sector_layout_cached(space, structure, charge, initial):
    value = sum(w * k for w, k in zip(charge.weights, initial, strict=True)) % 2
    layout = rep.ParityLayout.of(tuple(d.dim for _, d in space), charge, value)
    if layout is None:
        return None
    charger, battery, coupling = (tuple(Term(1.0, f) for f in op) for op in structure)
    _, off = rep.split_diagonal(space, charger + battery + coupling)
    _, b_off = rep.split_diagonal(space, battery)
    for terms in (off, b_off, charger + coupling):
        if rep.compact_operator(space, terms, layout) is None:
            return None
    return layout


def closed_operators(spec: Spec, diagonals, layout: rep.ParityLayout | None = None):
    """``apply_H``, ``apply_B`` and (when ``H_B`` has more off-diagonal terms than the rest) ``apply_C = H - H_B``.

    With ``layout`` they act on that compact parity sector (:func:`sector_layout`).
    """
    _, off = rep.split_diagonal(spec.space, spec.charger + spec.battery + spec.coupling)
    D, b_diag = diagonals
    if layout is not None:
        D, b_diag = layout.compact(D), layout.compact(b_diag)
        offdiag = rep.compact_operator(spec.space, off, layout)
    else:
        offdiag = rep.MatrixFree(spec.space, off)

    def apply_H(x):
        return D * x + offdiag(x)

    _, b_off = rep.split_diagonal(spec.space, spec.battery)
    b_rest = rep.MatrixFree(spec.space, b_off) if layout is None else rep.compact_operator(spec.space, b_off, layout)

    def apply_B(x):
        return b_diag * x + b_rest(x) if b_off else b_diag * x

    # B = H - (H_A + H_I): when H_B has more off-diagonal terms than the rest,
    # get B psi from the H psi the expansion already has
    rest = spec.charger + spec.coupling
    apply_C = None
    if len(b_off) > len(rep.split_diagonal(spec.space, rest)[1]):
        apply_C = rep.MatrixFree(spec.space, rest) if layout is None else rep.compact_operator(spec.space, rest, layout)
    return apply_H, apply_B, apply_C


def truncated_axes(spec: Spec) -> list[int]:
    """The dof indices of the truncated bosons, in the order of :func:`tensor_masks`."""
    from ..operators import Boson

    return [i for i, (_, d) in enumerate(spec.space) if isinstance(d, Boson) and not rep.truncation_is_exact(spec, i)]


def tensor_masks(spec: Spec):
    """Per truncated boson dof, a 0/1 tensor marking its top Fock level."""
    masks = []
    for i in truncated_axes(spec):
        d = spec.space[i][1]
        shape = [1] * len(spec.dims)
        shape[i] = d.dim
        m = np.zeros(d.dim)
        m[-1] = 1.0
        masks.append(jnp.asarray(np.broadcast_to(m.reshape(shape), spec.dims)))
    return tuple(masks)


def spectral_decomposition(spec: Spec):
    """``(w, V)`` of the spec's closed Hamiltonian on its symmetry-reduced basis (``rep.basis(spec)``).

    What ``method="spectral"`` diagonalises: compute it once and hand it to
    :func:`spectral_trajectory` and :func:`battery_state_status` (``eig=``) when one
    point needs both a trajectory and a state (a sweep's ``ergotropy``).
    """
    b = rep.basis(spec)
    return eigh(rep.dense(spec.space, spec.charger + spec.battery + spec.coupling, b, dtype=None))


def tensor_top(spec: Spec, populations: bool = False):
    from ..operators import Boson

    axes = [i for i, (_, d) in enumerate(spec.space) if isinstance(d, Boson) and not rep.truncation_is_exact(spec, i)]

    def top(psi):
        p = psi if populations else jnp.abs(psi) ** 2
        return jnp.stack([jnp.sum(jnp.take(p, -1, axis=i)) for i in axes]) if axes else jnp.zeros(0)

    return top
