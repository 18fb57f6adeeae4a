"""From a :class:`~qbjax.model.Spec` to something a propagator can use.

* :class:`Basis`: the product basis, optionally restricted to the block of a
  conserved :class:`~qbjax.model.Charge` that holds the initial state.
* :func:`dense`: an operator (sum of terms) as a dense matrix on that basis.
  The term structure is static, so each term's matrix is built once in
  ``numpy`` (through sparse Kronecker products, never the full dense product
  space) and cached; only the coefficients are traced.
* :class:`MatrixFree`: the same operator acting on a state tensor of shape
  ``dims`` without ever forming a matrix: each local factor is applied along
  its axis, banded factors (ladder operators) as shifted diagonals.
* :func:`classical_hamiltonian`: the classical function ``H(x)`` by the
  canonical correspondence (seed 000, Sec. II).

Dense memory is checked before anything is allocated
(:func:`check_dense_memory`).
"""

from __future__ import annotations

import dataclasses
import functools
import itertools
import math

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import scipy.sparse as sp

from ..model import Charge, Spec, Term

__all__ = [
    "Basis",
    "basis",
    "dense",
    "MatrixFree",
    "classical_hamiltonian",
    "classical_state",
    "check_dense_memory",
    "DENSE_MEMORY_LIMIT",
]

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


def row_bound(space, terms: tuple[Term, ...]) -> np.ndarray:
    """Per basis state, a bound on ``sum_j |O_ij|`` (Gershgorin radii; concrete values, tensor of shape ``dims``)."""
    dims = tuple(d.dim for _, d in space)
    out = np.zeros(dims)
    constant = 0.0
    for t in terms:
        scale = abs(complex(np.asarray(t.coeff)))
        vecs, const = _row_sums(space, t.factors)
        if all(v is None for v in vecs):  # constant row sums (Pauli strings): a scalar
            constant += scale * const
            continue
        vec = np.full((), scale * const)
        for (_, dof), v in zip(space, vecs):
            vec = np.multiply.outer(vec, np.ones(dof.dim) if v is None else v)
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


def _bands(m, max_bands: int = 4):
    """Nonzero diagonals of sparse ``m`` as ``(offset, values)`` with ``y[r] += v[r] x[r + offset]``.

    Cached on ``m`` (the dofs' operator matrices are cached and read-only).
    """
    cache = getattr(m, "_qbjax_bands", None)
    if cache is not None and cache[0] == max_bands:
        return cache[1]
    result = _bands_uncached(m, max_bands)
    try:
        m._qbjax_bands = (max_bands, result)
    except AttributeError:
        pass
    return result


def _bands_uncached(m, max_bands: int):
    d = m.shape[0]
    coo = m.tocoo()
    nz = coo.data != 0
    offsets = sorted(set((coo.col[nz] - coo.row[nz]).tolist()))
    if len(offsets) > max_bands:
        return None
    bands = []
    for k in offsets:
        diag = m.diagonal(k)
        v = np.zeros(d, dtype=np.complex128 if np.iscomplexobj(diag) and np.any(diag.imag) else np.float64)
        if k >= 0:
            v[: d - k] = diag.real if v.dtype == np.float64 else diag
        else:
            v[-k:] = diag.real if v.dtype == np.float64 else diag
        bands.append((k, v))
    return bands


def _shift(x, k: int, axis: int):
    """``y[r] = x[r + k]`` along ``axis``, zero where out of range."""
    if k == 0:
        return x
    n = x.shape[axis]
    pad = [(0, 0)] * x.ndim
    if k > 0:
        pad[axis] = (0, k)
        return jax.lax.slice_in_dim(jnp.pad(x, pad), k, k + n, axis=axis)
    pad[axis] = (-k, 0)
    return jax.lax.slice_in_dim(jnp.pad(x, pad), 0, n, axis=axis)


class MatrixFree(eqx.Module):
    """An operator acting on state tensors of shape ``dims`` (matrix free).

    Memory is ``O(prod(dims))``.  Terms that differ only in one dof's factor
    (``a J_x`` and ``a^+ J_x``) are merged into one banded factor with
    coefficient-weighted bands, and banded factors act by shifted
    multiplications along their axis (no transposes), which XLA fuses into
    a few passes over the state.
    """

    space: tuple = eqx.field(static=True)
    terms: tuple[Term, ...]

    @property
    def dims(self):
        return tuple(d.dim for _, d in self.space)

    def _groups(self):
        """Terms grouped by their local factors on all dofs but the first non-identity one."""
        groups: dict = {}
        for t in self.terms:
            local = _local_matrices(self.space, t.factors)
            axes = [i for i, m in enumerate(local) if m is not None]
            lead = axes[0] if axes else None
            key = tuple((i, id(local[i])) for i in axes[1:]) + (lead,)
            groups.setdefault(key, []).append((t, local, lead))
        return list(groups.values())

    def __call__(self, x):
        """``O x`` for a state tensor of shape ``dims``."""
        if not self.terms:
            return jnp.zeros_like(x)
        banded = _banded_plan(self.space, self.terms)
        if banded is not None:
            return _apply_banded(banded, x)
        monomial, rest = [], []
        for t in self.terms:
            local = _local_matrices(self.space, t.factors)
            perms = [None if m is None else _monomial(m) for m in local]
            if all(m is None or p is not None for m, p in zip(local, perms)):
                monomial.append((t, perms))
            else:
                rest.append(t)
        if monomial and all(d.dim == 2 for _, d in self.space):
            out = _apply_qubit_monomial(self.space, monomial, x)
        else:
            out = _apply_monomial(monomial, x) if monomial else None
        if rest:
            other = MatrixFree(self.space, tuple(rest))._apply_grouped(x)
            out = other if out is None else out + other
        if not jnp.iscomplexobj(x) and jnp.iscomplexobj(out):
            # a real x is passed only for a real operator (see is_real): each term's
            # imaginary factors pair up, so the imaginary part is exactly zero
            out = jnp.real(out)
        return out

    def _apply_grouped(self, x):
        out = None
        for group in self._groups():
            t0, local0, lead = group[0]
            y = x
            # shared factors (all but the lead axis), applied once
            for axis, m in enumerate(local0):
                if m is not None and axis != lead:
                    y = _apply_local(m, y, axis)
            if lead is None:
                part = sum(t.coeff.astype(x.dtype) for t, _, _ in group) * y
            else:
                mats = [(t.coeff, local[lead]) for t, local, _ in group]
                part = _apply_weighted(mats, y, lead)
            out = part if out is None else out + part
        return out


#: Largest padded-to-plain size ratio for :func:`_apply_banded` (qubit axes
#: padded on both sides would grow a state 2x per qubit).
_BANDED_PAD_RATIO = 2.0


def _banded_plan(space, terms):
    """Static plan for :func:`_apply_banded`, or ``None`` when it does not apply.

    Every factor of every term must be banded (at most 4 nonzero diagonals,
    :func:`_bands`); the space must not be all qubits (those have their own
    path); and padding each axis by its largest offsets must grow the state
    by at most ``_BANDED_PAD_RATIO``.  The plan lists, per multi-axis offset,
    the ``(coeff, per-axis band vectors)`` that read ``x`` at that offset.
    """
    if all(d.dim == 2 for _, d in space):
        return None
    by_offset = _banded_terms(space, terms)
    if by_offset is None:
        return None
    nd = len(space)
    lo = [max(0, -min(off[a] for off in by_offset)) for a in range(nd)]
    hi = [max(0, max(off[a] for off in by_offset)) for a in range(nd)]
    dims = [d.dim for _, d in space]
    if math.prod(d + a + b for d, a, b in zip(dims, lo, hi, strict=True)) > _BANDED_PAD_RATIO * math.prod(dims):
        return None
    return tuple(zip(lo, hi, strict=True)), tuple(by_offset.items())


def _banded_terms(space, terms):
    """``{offsets: [(coeff, per-axis band vectors)]}`` when every factor is banded, else ``None``."""
    by_offset: dict = {}
    for t in terms:
        combos = [((), t.coeff, ())]
        for m in _local_matrices(space, t.factors):
            if m is None:
                combos = [(off + (0,), c, vs + (None,)) for off, c, vs in combos]
                continue
            bands = _bands(m)
            if bands is None:
                return None
            combos = [(off + (k,), c, vs + (v,)) for off, c, vs in combos for k, v in bands]
        for off, c, vs in combos:
            by_offset.setdefault(off, []).append((c, vs))
    return by_offset


def _band_coefficient(items, dtype, nd: int, sample=None):
    """``sum_t c_t (x)_axis v_{t,axis}`` as a broadcastable tensor (``sample(v, axis)`` resamples a band vector)."""
    coef = 0.0
    for c, vs in items:
        factor = c.astype(dtype) if jnp.issubdtype(dtype, jnp.complexfloating) else c
        for axis, v in enumerate(vs):
            if v is not None:
                shape = [1] * nd
                shape[axis] = -1
                vec = v if sample is None else sample(v, axis)
                factor = factor * jnp.asarray(vec).reshape(shape)
        coef = coef + factor
    return coef


def _apply_banded(plan, x):
    """``O x`` for banded factors: one zero-padded copy of ``x``, then each offset is a shifted
    slice of it times a broadcast of per-axis band vectors.

    XLA fuses the slices, the products and the sum into one pass (a 20-spin
    Dicke battery's coupling: 21 us per product of a real pair of 6930
    entries, against 43 us for axis-by-axis shifts that materialise two
    padded copies).
    """
    pads, by_offset = plan
    nd = x.ndim
    xp = jnp.pad(x, pads) if any(a or b for a, b in pads) else x
    complex_x = jnp.iscomplexobj(x)
    out = None
    for off, items in by_offset:
        y = xp[tuple(slice(lo + k, lo + k + n) for (lo, _), k, n in zip(pads, off, x.shape, strict=True))]
        part = _band_coefficient(items, x.dtype, nd) * y
        out = part if out is None else out + part
    if not complex_x and jnp.iscomplexobj(out):
        # a real x is passed only for a real operator (see is_real)
        out = jnp.real(out)
    return out


def _monomial(m):
    """``(perm, values)`` with ``(m x)[r] = values[r] x[perm[r]]`` if ``m`` has at most one
    nonzero per row and per column (a permutation times a diagonal, rows may be empty), else ``None``.

    Empty rows get the unused columns (value 0), so ``perm`` is a full permutation;
    a single band of offset ``k`` becomes the cyclic shift ``perm[r] = r + k mod d``.
    """
    cache = getattr(m, "_qbjax_monomial", False)
    if cache is not False:
        return cache
    coo = m.tocoo()
    nz = coo.data != 0
    rows, cols, vals = coo.row[nz], coo.col[nz], coo.data[nz]
    d = m.shape[0]
    result = None
    if len(set(rows.tolist())) == len(rows) and len(set(cols.tolist())) == len(cols):
        perm = np.full(d, -1)
        values = np.zeros(d, dtype=np.complex128 if np.iscomplexobj(vals) and np.any(vals.imag) else np.float64)
        perm[rows] = cols
        values[rows] = vals.real if values.dtype == np.float64 else vals
        offsets = set((cols - rows).tolist())
        empty = np.nonzero(perm < 0)[0]
        if len(offsets) <= 1:  # a band: complete to the cyclic shift
            k = offsets.pop() if offsets else 0
            perm[empty] = (empty + k) % d
        else:
            perm[empty] = np.setdiff1d(np.arange(d), cols)
        result = (tuple(int(i) for i in perm), values)
    try:
        m._qbjax_monomial = result
    except AttributeError:
        pass
    return result


def _permute(x, perm, axis):
    d = len(perm)
    if perm == tuple(range(d)):
        return x
    if perm == tuple(range(d - 1, -1, -1)):
        return jnp.flip(x, axis)
    shift = (perm[0]) % d
    if perm == tuple((i + shift) % d for i in range(d)):
        return jnp.roll(x, -shift, axis)
    return jnp.take(x, jnp.asarray(perm), axis=axis)


def _apply_monomial(terms, x):
    """Sum of monomial terms: grouped by their permutation, one gather per group.

    Each group ``P`` contributes ``(sum_t c_t (x)_a v_{t,a}) * x[P(r)]``; the
    coefficient tensors are broadcasts of per-axis vectors, which XLA fuses
    with the gather (for qubit chains: one flip per coupled pair).
    """
    groups: dict = {}
    for t, perms in terms:
        key = tuple(None if p is None else p[0] for p in perms)
        groups.setdefault(key, []).append((t, perms))
    out = None
    nd = x.ndim
    for key, group in groups.items():
        y = x
        for axis, perm in enumerate(key):
            if perm is not None:
                y = _permute(y, perm, axis)
        coef = 0.0
        for t, perms in group:
            c = t.coeff.astype(x.dtype) if jnp.iscomplexobj(x) else t.coeff
            factor = c
            for axis, p in enumerate(perms):
                if p is not None:
                    shape = [1] * nd
                    shape[axis] = -1
                    factor = factor * jnp.asarray(p[1]).reshape(shape)
            coef = coef + factor
        part = coef * y
        out = part if out is None else out + part
    return out


def _apply_qubit_monomial(space, terms, x):
    """Monomial terms on qubits, grouped by the set of qubits they flip.

    A monomial term flips some qubits (``sigma_x``, ``sigma_y``, ``sigma_+``
    ...) and multiplies by a value that depends on the bits of the qubits it
    acts on.  Terms that flip the same set of qubits and act on the same set
    are merged into one coefficient table over those qubits, and each group is one reversal of
    the state viewed as ``(2**a, 2, 2**b, 2, ...)`` (a bitcast), times a
    broadcast table: XLA fuses the reversal, the multiply and the sum into
    streaming passes, with no index arithmetic or gathers.  A 16-spin chain
    with power-law XXZ couplings and a transverse field has 137 groups.
    """
    n = len(space)
    groups: dict = {}
    for t, perms in terms:
        axes = tuple(a for a, p in enumerate(perms) if p is not None)
        flips = tuple(a for a in axes if p_is_flip(perms[a][0]))
        vals = tuple(np.asarray(perms[a][1]) for a in axes)
        # grouped by flips and support: the tables stay small (a union of
        # supports would turn all single-site diagonal terms into one 2^N table)
        groups.setdefault((flips, axes), []).append((axes, t.coeff, vals))
    real = not jnp.iscomplexobj(x)
    out = None
    for (flips, _), items in groups.items():
        support = sorted({a for axes, _, _ in items for a in axes})
        k = len(support)
        table = None
        for axes, coeff, vals in items:
            static = np.ones((2,) * k, np.complex128)
            for a, v in zip(axes, vals, strict=True):
                shape = [1] * k
                shape[support.index(a)] = 2
                static = static * v.reshape(shape)
            if real:
                if np.any(static.imag != 0) or jnp.iscomplexobj(coeff):
                    raise TypeError("a complex term acting on a real state: use a complex state")
                part = coeff * jnp.asarray(static.real)
            else:
                part = coeff.astype(x.dtype) * jnp.asarray(static)
            table = part if table is None else table + part
        # view the state so that every qubit in the support is its own axis of length 2
        shape, tshape, prev = [], [], -1
        for a in support:
            shape += [2 ** (a - prev - 1), 2]
            tshape += [1, 2]
            prev = a
        shape.append(2 ** (n - 1 - prev))
        tshape.append(1)
        y = x.reshape(shape)
        if flips:
            y = jnp.flip(y, tuple(2 * support.index(a) + 1 for a in flips))
        part = (table.reshape(tshape) * y).reshape(x.shape)
        out = part if out is None else out + part
    return out


def p_is_flip(perm) -> bool:
    return perm == (1, 0)


def _apply_local(m, x, axis):
    bands = _bands(m)
    if bands is None:
        y = jnp.tensordot(jnp.asarray(m.toarray(), x.dtype), x, axes=(1, axis))
        return jnp.moveaxis(y, 0, axis)
    return sum(_band_mul(jnp.asarray(v), _shift(x, k, axis), axis) for k, v in bands)


def _apply_weighted(mats, x, axis):
    """``sum_i c_i M_i`` applied along ``axis`` (bands merged by offset)."""
    by_offset: dict = {}
    dense = []
    for c, m in mats:
        bands = _bands(m)
        if bands is None:
            dense.append((c, m))
            continue
        for k, v in bands:
            by_offset[k] = by_offset.get(k, 0) + c * jnp.asarray(v)
    out = sum(_band_mul(v, _shift(x, k, axis), axis) for k, v in by_offset.items()) if by_offset else 0
    for c, m in dense:
        out = out + c.astype(x.dtype) * _apply_local(m, x, axis)
    return out


def _band_mul(v, x, axis):
    shape = [1] * x.ndim
    shape[axis] = -1
    return v.reshape(shape) * x


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


@dataclasses.dataclass(frozen=True)
class ParityLayout:
    """One sector of a conserved parity, stored without the other sector's zeros.

    For a :class:`~qbjax.model.Charge` with ``modulus = 2`` the level indices
    ``k_a`` on the axes of odd weight (``A``) split into even and odd
    sublattices.  The states of sector ``sum_{a in A} k_a = value (mod 2)``
    live on the sublattice blocks ``s`` (one parity per axis in ``A``) with
    ``sum s = value``; a block is a regular array with index
    ``k_a = 2 i_a + s_a`` on ``A`` and ``k_a = i_a`` elsewhere.  The compact
    state has shape ``(blocks, *half_dims)`` (``half`` is ``ceil(d_a / 2)``
    on ``A``); entries past an odd ``d_a`` are padding and stay zero.

    A Dicke battery's parity sector (cutoff 330, 21 spin levels) is two
    blocks of ``165 x 11``: 3630 entries instead of 6930, so every product,
    stored Chebyshev vector and combination costs half.
    """

    dims: tuple[int, ...]
    axes: tuple[int, ...]
    blocks: tuple[tuple[int, ...], ...]

    @staticmethod
    def of(dims, charge, value: int):
        """The layout of sector ``value``, or ``None`` when ``charge`` is not a parity."""
        if charge is None or charge.modulus != 2 or len(charge.weights) != len(dims):
            return None
        axes = tuple(a for a, w in enumerate(charge.weights) if w % 2)
        if not axes:
            return None
        blocks = tuple(s for s in itertools.product((0, 1), repeat=len(axes)) if sum(s) % 2 == value % 2)
        return ParityLayout(tuple(dims), axes, blocks)

    @property
    def shape(self) -> tuple[int, ...]:
        half = tuple(-(-d // 2) if a in self.axes else d for a, d in enumerate(self.dims))
        return (len(self.blocks),) + half

    def _index(self):
        """Flat full-space index of each compact entry, and whether it is a real (not padding) entry."""
        grids = np.meshgrid(*[np.arange(n) for n in self.shape[1:]], indexing="ij")
        idx, ok = [], []
        for s in self.blocks:
            k = list(grids)
            valid = np.ones(self.shape[1:], bool)
            for a, sa in zip(self.axes, s, strict=True):
                k[a] = 2 * grids[a] + sa
                valid &= k[a] < self.dims[a]
            flat = np.ravel_multi_index(tuple(np.where(valid, ka, 0) for ka in k), self.dims)
            idx.append(flat)
            ok.append(valid)
        return np.stack(idx), np.stack(ok)

    def compact(self, x):
        """A full tensor (shape ``dims``) in the compact layout (padding zero)."""
        idx, ok = _layout_index(self)
        return jnp.where(ok, x.reshape(-1)[idx], 0)

    def expand(self, y):
        """A compact tensor back on the full space (the other sector zero)."""
        idx, ok = _layout_index(self)
        full = jnp.zeros(math.prod(self.dims), y.dtype).at[idx[ok]].set(y[ok])
        return full.reshape(self.dims)


@functools.lru_cache(maxsize=32)
def _layout_index(layout: ParityLayout):
    idx, ok = layout._index()
    idx.setflags(write=False)
    ok.setflags(write=False)
    return idx, ok


def compact_operator(space, terms: tuple[Term, ...], layout: ParityLayout):
    """``x -> O x`` on the compact layout, or ``None`` when ``O`` is not banded or mixes the sectors.

    Each offset ``k`` of the banded plan (:func:`_banded_plan`) maps block
    ``s`` to block ``t = s + k (mod 2)`` on the parity axes: target row
    ``2 i + t`` reads source row ``2 i + t + k``, compact index ``i + (t + k - s) / 2``; the band vectors are sampled
    on the target block's sublattice.  One zero-padded copy of the compact
    state serves every (offset, block) slice, as in :func:`_apply_banded`.
    """
    if not terms:
        return lambda y: jnp.zeros_like(y)
    by_offset = _banded_terms(space, terms)
    if by_offset is None:
        return None
    by_offset = by_offset.items()
    axes, blocks = layout.axes, layout.blocks
    where = {s: b for b, s in enumerate(blocks)}
    half = layout.shape[1:]
    nd = len(layout.dims)
    pieces = []  # (target block, source block, compact shifts, items)
    for off, items in by_offset:
        if sum(off[a] for a in axes) % 2:
            return None  # the operator changes the parity: not a sector operator
        for b, s in enumerate(blocks):
            t = tuple((sa + off[a]) % 2 for a, sa in zip(axes, s, strict=True))
            shift = list(off)
            for a, sa, ta in zip(axes, s, t, strict=True):
                # target row 2 i + t reads full row 2 i + t + k = 2 (i + shift) + s
                shift[a] = (ta + off[a] - sa) // 2
            pieces.append((where[t], b, tuple(shift), items))
    lo = [max(0, -min(p[2][a] for p in pieces)) for a in range(nd)]
    hi = [max(0, max(p[2][a] for p in pieces)) for a in range(nd)]

    def sampled(v, a, target):
        # band vector v (full axis a) on the target block's compact index
        if a not in axes:
            return np.asarray(v)
        sa = blocks[target][axes.index(a)]
        out = np.zeros(half[a], np.asarray(v).dtype)
        vals = np.asarray(v)[sa::2]
        out[: vals.shape[0]] = vals
        return out

    def apply(y):
        yp = jnp.pad(y, [(0, 0)] + list(zip(lo, hi, strict=True))) if any(lo) or any(hi) else y
        complex_y = jnp.iscomplexobj(y)
        outs = [None] * len(blocks)
        for target, source, shift, items in pieces:
            sl = yp[(source,) + tuple(slice(lo[a] + shift[a], lo[a] + shift[a] + half[a]) for a in range(nd))]
            part = _band_coefficient(items, y.dtype, nd, lambda v, a, t=target: sampled(v, a, t)) * sl
            outs[target] = part if outs[target] is None else outs[target] + part
        out = jnp.stack([o if o is not None else jnp.zeros(half, yp.dtype) for o in outs])
        if not complex_y and jnp.iscomplexobj(out):
            out = jnp.real(out)
        return out

    return apply
