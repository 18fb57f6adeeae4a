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

from .classical import (  # noqa: F401
    _classical_slices,
    classical_hamiltonian,
    classical_kinds,
    classical_state,
)
from .dense import (  # noqa: F401
    DENSE_MEMORY_LIMIT,
    Basis,
    _basis_indices,
    _charge_values,
    _factors_diagonal,
    _imaginary_factors,
    _is_diagonal,
    _local_matrices,
    _operator_matrices,
    _row_sums,
    _term_matrix,
    basis,
    check_dense_memory,
    dense,
    dense_diagonal,
    diagonal_tensor,
    initial_vector,
    is_real,
    row_bound,
    split_diagonal,
    truncation_is_exact,
)
from .matrix_free import (  # noqa: F401
    _BANDED_PAD_RATIO,
    MatrixFree,
    _apply_banded,
    _apply_local,
    _apply_monomial,
    _apply_qubit_monomial,
    _apply_weighted,
    _band_coefficient,
    _band_mul,
    _banded_plan,
    _banded_terms,
    _bands,
    _bands_uncached,
    _monomial,
    _permute,
    p_is_flip,
    shift,
)
from .parity import (  # noqa: F401
    ParityLayout,
    _layout_index,
    compact_operator,
)

basis_indices = _basis_indices
banded_plan = _banded_plan

__all__ = [
    "Basis",
    "basis",
    "basis_indices",
    "dense",
    "MatrixFree",
    "banded_plan",
    "classical_hamiltonian",
    "classical_state",
    "check_dense_memory",
    "DENSE_MEMORY_LIMIT",
    "ParityLayout",
]
