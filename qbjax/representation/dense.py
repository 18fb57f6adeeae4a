"""The product basis (optionally one charge block), dense matrices and diagonals of sums of terms."""

from __future__ import annotations

import dataclasses
import functools
import math

import jax.numpy as jnp
import numpy as np
import scipy.sparse as sp

from ..model import Charge, Spec, Term

#: Default limit for one dense complex128 matrix, bytes (override per call).
DENSE_MEMORY_LIMIT = 4 * 2**30


@dataclasses.dataclass(frozen=True, eq=False)
class Basis:
    """Indices (into the flat product basis) of the states kept (static data)."""

    space: tuple
    indices: np.ndarray
    key: tuple

    @property
    def dim(self) -> int:
        return int(self.indices.shape[0])

    @property
    def dims(self) -> tuple[int, ...]:
        return tuple(d.dim for _, d in self.space)

    def embed(self, psi):
        """A vector (or batch) on this basis as a full product-space tensor."""
        full = jnp.zeros(psi.shape[:-1] + (math.prod(self.dims),), psi.dtype)
        full = full.at[..., self.indices].set(psi)
        return full.reshape(psi.shape[:-1] + self.dims)


def _charge_values(dims, charge: Charge) -> np.ndarray:
    grids = np.meshgrid(*[np.arange(d) for d in dims], indexing="ij")
    total = sum(w * g for w, g in zip(charge.weights, grids))
    total = total.reshape(-1)
    return total % charge.modulus if charge.modulus else total


@functools.lru_cache(maxsize=64)
def _basis_indices(dims: tuple[int, ...], charge: Charge | None, value: int | None):
    if charge is None:
        out = np.arange(math.prod(dims))
    else:
        if len(charge.weights) != len(dims):
            raise ValueError(f"charge has {len(charge.weights)} weights for {len(dims)} dofs")
        out = np.nonzero(_charge_values(dims, charge) == value)[0]
    out.setflags(write=False)
    return out


def basis(spec: Spec, *, use_symmetry: bool = True) -> Basis:
    """The basis a dense representation of ``spec`` uses.

    With ``use_symmetry`` and a declared conserved charge, only the block of
    the initial product state is kept (exact, not an approximation: the
    Hamiltonian and the initial state live there).  Dissipators may break
    the charge; the block is then not used.
    """
    dims = spec.dims
    charge = spec.conserved if use_symmetry and not spec.dissipators else None
    value = None
    if charge is not None:
        idx = spec.initial_indices()
        value = sum(w * k for w, k in zip(charge.weights, idx))
        if charge.modulus:
            value %= charge.modulus
    indices = _basis_indices(dims, charge, value)
    return Basis(spec.space, indices, (dims, charge, value))


def truncation_is_exact(spec: Spec, dof_index: int, use_symmetry: bool = True) -> bool:
    """Whether truncating dof ``dof_index`` loses nothing.

    True when a conserved charge with positive weights (no modulus) bounds
    the dof's level index below its cutoff in the initial state's block, as
    for number-conserving couplings.
    """
    charge = spec.conserved
    if not use_symmetry or charge is None or charge.modulus or spec.dissipators:
        return False
    if any(w <= 0 for w in charge.weights):
        return False
    value = sum(w * k for w, k in zip(charge.weights, spec.initial_indices()))
    return value <= charge.weights[dof_index] * (spec.dims[dof_index] - 1)


def check_dense_memory(dim: int, count: int = 1, limit: float | None = None, what="operator"):
    """Raise before allocating ``count`` dense complex ``dim x dim`` matrices over the limit."""
    need = 16 * dim * dim * count
    limit = DENSE_MEMORY_LIMIT if limit is None else limit
    if need > limit:
        raise MemoryError(
            f"dense {what} of dimension {dim} needs {need / 2**30:.2f} GiB "
            f"(limit {limit / 2**30:.2f} GiB); use method='ode' (matrix free) or a smaller cutoff/size"
        )


def _local_matrices(space, factors) -> list[np.ndarray | None]:
    """Per dof, the product of the factors acting on it (``None``: identity)."""
    names = [n for n, _ in space]
    local: list[np.ndarray | None] = [None] * len(space)
    for dof_name, op in factors:
        i = names.index(dof_name)
        m = space[i][1].sparse(op)
        local[i] = m if local[i] is None else local[i] @ m
    return local


@functools.lru_cache(maxsize=512)
def _term_matrix(space, factors, basis_key) -> np.ndarray:
    dims = tuple(d.dim for _, d in space)
    indices = _basis_indices(*basis_key)
    full = sp.csr_matrix(np.ones((1, 1)))
    for d, m in zip(dims, _local_matrices(space, factors)):
        full = sp.kron(full, sp.identity(d) if m is None else sp.csr_matrix(m), format="csr")
    block = full[indices][:, indices].toarray()
    if np.iscomplexobj(block) and not np.any(block.imag):
        block = block.real
    block.setflags(write=False)
    return block


def _operator_matrices(space, terms: tuple[Term, ...], b: Basis):
    check_dense_memory(b.dim, count=max(1, len(terms)))
    return [_term_matrix(space, t.factors, b.key) for t in terms]


def dense(spec_space, terms: tuple[Term, ...], b: Basis, dtype=jnp.complex128):
    """``sum_k c_k M_k`` as a dense ``(dim, dim)`` array on basis ``b``.

    ``dtype=None`` picks ``float64`` when every matrix and coefficient is real
    (real symmetric eigensolvers are several times cheaper), else ``complex128``.
    """
    if not terms:
        return jnp.zeros((b.dim, b.dim), dtype or jnp.float64)
    mats = _operator_matrices(spec_space, terms, b)
    if dtype is None:
        real = all(not np.iscomplexobj(m) or not np.any(m.imag) for m in mats) and all(
            not jnp.iscomplexobj(t.coeff) for t in terms)
        dtype = jnp.float64 if real else jnp.complex128
    out = jnp.zeros((b.dim, b.dim), dtype)
    for t, m in zip(terms, mats):
        out = out + t.coeff.astype(dtype) * jnp.asarray(m, dtype)
    return out


def dense_diagonal(space, terms: tuple[Term, ...], b: Basis, dtype=jnp.complex128):
    """The diagonal ``(dim,)`` of an operator whose every factor is diagonal, else ``None``."""
    diags = []
    for t in terms:
        local = _local_matrices(space, t.factors)
        if any(m is not None and not _is_diagonal(m) for m in local):
            return None
        full = np.ones(1)
        for (_, dof), m in zip(space, local):
            full = np.kron(full, np.ones(dof.dim) if m is None else m.diagonal())
        diags.append((t.coeff, full[b.indices]))
    out = jnp.zeros(b.dim, dtype)
    for c, d in diags:
        out = out + c.astype(dtype) * jnp.asarray(d, dtype)
    return out


def initial_vector(spec: Spec, b: Basis, dtype=jnp.complex128):
    """The initial product state as a vector on basis ``b``."""
    flat = int(np.ravel_multi_index(spec.initial_indices(), spec.dims))
    pos = np.nonzero(b.indices == flat)[0]
    if pos.size != 1:  # cannot happen: the block is chosen from the initial state
        raise ValueError("initial state not in the chosen basis block")
    return jnp.zeros(b.dim, dtype).at[int(pos[0])].set(1.0)


def split_diagonal(space, terms: tuple[Term, ...]):
    """``(diagonal terms, the rest)``: terms whose every factor is diagonal, and the others."""
    diag, rest = [], []
    for t in terms:
        (diag if _factors_diagonal(space, t.factors) else rest).append(t)
    return tuple(diag), tuple(rest)


@functools.lru_cache(maxsize=4096)
def _factors_diagonal(space, factors) -> bool:
    return all(m is None or _is_diagonal(m) for m in _local_matrices(space, factors))


@functools.lru_cache(maxsize=4096)
def _imaginary_factors(space, factors) -> int | None:
    """Number of purely imaginary local factors, ``None`` if one mixes real and imaginary entries."""
    imaginary = 0
    for m in _local_matrices(space, factors):
        if m is None:
            continue
        d = np.asarray(m.tocoo().data)
        if not np.any(np.imag(d)):
            continue
        if np.any(np.real(d)):
            return None
        imaginary += 1
    return imaginary


def is_real(space, terms: tuple[Term, ...]) -> bool:
    """Whether the sum of ``terms`` is a real matrix in the product basis.

    True when every coefficient has a real dtype and every term has an even
    number of purely imaginary factors (``sigma_y sigma_y`` is real) and no
    factor mixing real and imaginary entries.  A real ``H`` keeps a real
    vector real under ``H x``, which halves the work of a Chebyshev expansion.
    """
    for t in terms:
        if jnp.iscomplexobj(t.coeff):
            return False
        imaginary = _imaginary_factors(space, t.factors)
        if imaginary is None or imaginary % 2:
            return False
    return True


def diagonal_tensor(space, terms: tuple[Term, ...], dtype=jnp.float64):
    """The diagonal of a sum of diagonal terms as a tensor of shape ``dims``.

    Built by broadcasting each term's small per-dof diagonals at run time:
    a full-size numpy tensor per term would be captured as a compile-time
    constant (gigabytes for a 20-spin chain with 190 couplings).  XLA fuses
    this sum of broadcasts into its consumers and re-evaluates it at each
    use; where a diagonal is used many times outside a loop (the Chebyshev
    moment matrices), build it in its own jitted call so it is materialised.
    """
    dims = tuple(d.dim for _, d in space)
    nd = len(dims)
    out = jnp.zeros(dims, dtype)
    for t in terms:
        vec = jnp.real(t.coeff).astype(dtype)
        for axis, m in enumerate(_local_matrices(space, t.factors)):
            if m is None:
                continue
            shape = [1] * nd
            shape[axis] = -1
            vec = vec * jnp.asarray(np.real(m.diagonal()), dtype).reshape(shape)
        out = out + vec
    return out


def row_bound(space, terms: tuple[Term, ...], traced: bool = False):
    """Per basis state, a bound on ``sum_j |O_ij|`` (Gershgorin radii, a tensor of shape ``dims``).

    Concrete coefficients give a numpy array; ``traced=True`` a jax array
    (coefficients may then be tracers: the structure is static).
    """
    xp = jnp if traced else np
    dims = tuple(d.dim for _, d in space)
    out = xp.zeros(dims)
    constant = 0.0
    for t in terms:
        scale = jnp.abs(t.coeff) if traced else abs(complex(np.asarray(t.coeff)))
        vecs, const = _row_sums(space, t.factors)
        if all(v is None for v in vecs):  # constant row sums (Pauli strings): a scalar
            constant = constant + scale * const
            continue
        vec = scale * const
        for i, ((_, dof), v) in enumerate(zip(space, vecs)):
            if v is not None:
                shape = [1] * len(dims)
                shape[i] = dof.dim
                vec = vec * xp.asarray(v).reshape(shape)
        out = out + vec
    return out + constant


@functools.lru_cache(maxsize=4096)
def _row_sums(space, factors):
    """``(per dof: absolute row sums of the local factor, None where constant), product of the constants)``."""
    vecs, const = [], 1.0
    for m in _local_matrices(space, factors):
        v = None if m is None else np.asarray(abs(m).sum(axis=1)).ravel()
        if v is not None and np.ptp(v) == 0:
            const *= float(v[0]) if v.size else 0.0
            v = None
        vecs.append(v)
    return tuple(vecs), const


def _is_diagonal(m) -> bool:
    coo = m.tocoo()
    return not np.any((coo.row != coo.col) & (coo.data != 0))
