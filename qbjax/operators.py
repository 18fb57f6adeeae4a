"""Degrees of freedom, their operators, and their classical symbols.

A degree of freedom (dof) is a small, hashable, static description: a boson
with a Fock cutoff, a spin of length j, a qubit, or an n-level system.  Each
knows

* its local matrices (``numpy``, static; built once and cached), in a basis
  ordered from the bottom up: Fock number ``n = 0 .. cutoff - 1`` for a boson,
  ``m = -j .. j`` for a spin (index ``m + j``, so index 0 is spin down), index 0
  = ground for a qubit;
* the classical symbol of each operator (seed 000, Sec. II): a boson becomes
  ``alpha = (q + i p) / sqrt(2)`` with ``{q, p} = 1``; a spin becomes a vector
  ``S`` of fixed length with ``{S_i, S_j} = eps_ijk S_k``.

Operator names per kind of dof:

=========  ===================================================================
boson      ``a``, ``adag``, ``n``, ``x = (a + adag)/sqrt2``, ``p = -i(a - adag)/sqrt2``
spin       ``jz``, ``jx``, ``jy``, ``jp`` (raising), ``jm`` (lowering)
qubit      ``sz``, ``sx``, ``sy``, ``sp``, ``sm`` (Pauli; ``sp = |1><0|``)
levels     ``"k,l"`` for ``|k><l|`` (no classical symbol)
=========  ===================================================================
"""

from __future__ import annotations

import abc
import dataclasses
import functools
from fractions import Fraction

import jax.numpy as jnp
import numpy as np
import scipy.sparse as sp

__all__ = ["Boson", "Spin", "Qubit", "Levels", "Dof"]


class Dof(abc.ABC):
    """Base of the degree-of-freedom descriptions (static, hashable)."""

    #: classical phase-space coordinates of this dof (0: no classical analog)
    classical_size: int = 0

    @property
    @abc.abstractmethod
    def dim(self) -> int:
        """Number of levels kept."""

    def sparse(self, name: str):
        """The local operator ``name`` as a ``scipy.sparse`` CSR matrix (never densified:
        a spin ``N/2`` with ``N = 10^5`` has a 10^5 x 10^5 ladder operator)."""
        return _to_sparse(self.matrix(name))

    @abc.abstractmethod
    def matrix(self, name: str) -> np.ndarray:
        """The local matrix of operator ``name`` (dense; small dofs only)."""

    def symbol(self, name: str, x):
        """Classical value of operator ``name`` at phase-space point ``x``."""
        raise ValueError(
            f"{type(self).__name__} has no classical analog (operator {name!r})"
        )

    #: operator name -> the name of its adjoint (self-adjoint names map to themselves)
    adjoints: dict = {}

    def adjoint_name(self, name: str) -> str | None:
        """The name of the adjoint of operator ``name`` (``None``: not known by name)."""
        return self.adjoints.get(name)

    def canonical_name(self, name: str) -> str:
        """One spelling per operator (``"1, 0"`` and ``"1,0"`` are one level operator)."""
        return name

    def level_index(self, label) -> int:
        """Basis index of a physical label (Fock number, m, ...)."""
        index = int(label)
        if not 0 <= index < self.dim:
            raise ValueError(f"level {label!r} outside 0..{self.dim - 1}")
        return index


@dataclasses.dataclass(frozen=True)
class Boson(Dof):
    """A bosonic mode truncated to ``cutoff`` Fock levels ``n = 0 .. cutoff-1``.

    The truncation follows QuTiP and dynamiqs: ``cutoff`` is the dimension.
    Classically the mode is the pair ``(q, p)``, ``a -> (q + i p)/sqrt(2)``,
    so that ``adag a -> (q^2 + p^2)/2`` (normal ordering, no zero-point term).
    """

    cutoff: int
    classical_size: int = dataclasses.field(default=2, init=False)
    adjoints = {"a": "adag", "adag": "a", "n": "n", "x": "x", "p": "p"}

    def __post_init__(self):
        if int(self.cutoff) != self.cutoff or self.cutoff < 1:
            raise ValueError(f"cutoff must be an integer >= 1, got {self.cutoff!r}")

    @property
    def dim(self) -> int:
        return int(self.cutoff)

    def matrix(self, name: str) -> np.ndarray:
        return _boson_sparse(self.dim, name).toarray()

    def sparse(self, name: str):
        return _boson_sparse(self.dim, name)

    def symbol(self, name: str, x):
        q, p = x[0], x[1]
        alpha = (q + 1j * p) / np.sqrt(2.0)
        table = {
            "a": lambda: alpha,
            "adag": lambda: jnp.conj(alpha),
            "n": lambda: (q**2 + p**2) / 2,
            "x": lambda: q,
            "p": lambda: p,
        }
        if name not in table:
            raise ValueError(f"unknown boson operator {name!r}; known: {sorted(table)}")
        return table[name]()


@dataclasses.dataclass(frozen=True)
class Spin(Dof):
    """A spin of length ``j`` (integer or half-integer), ``2j + 1`` levels.

    For ``N`` two-level units in the symmetric (Dicke) sector, ``j = N/2``.
    Classically a vector ``S`` of length ``j`` (the convention of seed 000,
    Eq. 18 and 23) with ``{S_i, S_j} = eps_ijk S_k``.
    """

    j: Fraction
    classical_size: int = dataclasses.field(default=3, init=False)
    adjoints = {"jp": "jm", "jm": "jp", "jx": "jx", "jy": "jy", "jz": "jz"}

    def __post_init__(self):
        j = Fraction(self.j).limit_denominator(2)
        if j < 0 or (2 * j).denominator != 1 or j != Fraction(self.j):
            raise ValueError(f"spin length j must be a non-negative multiple of 1/2, got {self.j!r}")
        object.__setattr__(self, "j", j)

    @property
    def dim(self) -> int:
        return int(2 * self.j) + 1

    def matrix(self, name: str) -> np.ndarray:
        return _spin_sparse(int(2 * self.j), name).toarray()

    def sparse(self, name: str):
        return _spin_sparse(int(2 * self.j), name)

    def level_index(self, label) -> int:
        """Index of ``m`` (``-j <= m <= j``)."""
        m = Fraction(label)
        index = m + self.j
        if index.denominator != 1 or not 0 <= index < self.dim:
            raise ValueError(f"m = {label!r} outside -{self.j}..{self.j}")
        return int(index)

    def symbol(self, name: str, x):
        sx, sy, sz = x[0], x[1], x[2]
        table = {
            "jx": lambda: sx,
            "jy": lambda: sy,
            "jz": lambda: sz,
            "jp": lambda: sx + 1j * sy,
            "jm": lambda: sx - 1j * sy,
        }
        if name not in table:
            raise ValueError(f"unknown spin operator {name!r}; known: {sorted(table)}")
        return table[name]()

    @property
    def length(self) -> float:
        return float(self.j)


@dataclasses.dataclass(frozen=True)
class Qubit(Dof):
    """A two-level system; index 0 is the ground state ``|0>`` (spin down).

    Pauli operators ``sz = |1><1| - |0><0|``, ``sp = |1><0|``.  Classically a
    spin-1/2 vector ``S`` with ``sigma -> 2 S``.
    """

    classical_size: int = dataclasses.field(default=3, init=False)
    adjoints = {"sp": "sm", "sm": "sp", "sx": "sx", "sy": "sy", "sz": "sz"}

    @property
    def dim(self) -> int:
        return 2

    @property
    def length(self) -> float:
        return 0.5

    def matrix(self, name: str) -> np.ndarray:
        pauli = {"sz": "jz", "sx": "jx", "sy": "jy"}
        if name in pauli:
            return 2 * _spin_sparse(1, pauli[name]).toarray()
        if name == "sp":
            return _spin_sparse(1, "jp").toarray()
        if name == "sm":
            return _spin_sparse(1, "jm").toarray()
        raise ValueError(f"unknown qubit operator {name!r}; known: sx, sy, sz, sp, sm")

    def sparse(self, name: str):
        return _cached_sparse(self, name)

    def symbol(self, name: str, x):
        pauli = {"sz": "jz", "sx": "jx", "sy": "jy"}
        spin = Spin(Fraction(1, 2))
        if name in pauli:
            return 2 * spin.symbol(pauli[name], x)
        if name in ("sp", "sm"):
            return spin.symbol("j" + name[1], x)
        raise ValueError(f"unknown qubit operator {name!r}; known: sx, sy, sz, sp, sm")


@dataclasses.dataclass(frozen=True)
class Levels(Dof):
    """An ``n``-level system; operator ``"k,l"`` is ``|k><l|``."""

    n: int

    def __post_init__(self):
        if int(self.n) != self.n or self.n < 1:
            raise ValueError(f"number of levels must be an integer >= 1, got {self.n!r}")

    @property
    def dim(self) -> int:
        return int(self.n)

    def adjoint_name(self, name: str) -> str | None:
        try:
            k, l = (int(x) for x in name.split(","))
        except ValueError:
            return None
        return f"{l},{k}"

    def canonical_name(self, name: str) -> str:
        try:
            k, l = (int(x) for x in name.split(","))
        except ValueError:
            return name
        return f"{k},{l}"

    def matrix(self, name: str) -> np.ndarray:
        try:
            k, l = (int(s) for s in name.split(","))
        except ValueError:
            raise ValueError(f"levels operator must be 'k,l' for |k><l|, got {name!r}") from None
        if not (0 <= k < self.n and 0 <= l < self.n):
            raise ValueError(f"levels operator {name!r} outside 0..{self.n - 1}")
        out = np.zeros((self.n, self.n))
        out[k, l] = 1.0
        return out

    def sparse(self, name: str):
        return _cached_sparse(self, name)


@functools.lru_cache(maxsize=4096)
def _cached_sparse(dof: Dof, name: str):
    return _to_sparse(dof.matrix(name))


def _to_sparse(m: np.ndarray):
    return _frozen(sp.csr_matrix(m))


def _frozen(m):
    m = sp.csr_matrix(m)
    m.eliminate_zeros()
    for arr in (m.data, m.indices, m.indptr):
        arr.setflags(write=False)
    return m


@functools.cache
def _boson_sparse(dim: int, name: str):
    a = sp.diags(np.sqrt(np.arange(1, dim, dtype=float)), 1, shape=(dim, dim))
    table = {
        "a": lambda: a,
        "adag": lambda: a.T,
        "n": lambda: sp.diags(np.arange(dim, dtype=float), 0, shape=(dim, dim)),
        "x": lambda: (a + a.T) / np.sqrt(2.0),
        "p": lambda: -1j * (a - a.T) / np.sqrt(2.0),
    }
    if name not in table:
        raise ValueError(f"unknown boson operator {name!r}; known: {sorted(table)}")
    return _frozen(table[name]())


@functools.cache
def _spin_sparse(twoj: int, name: str):
    j = twoj / 2
    d = twoj + 1
    m = np.arange(d) - j  # m = -j .. j
    # jp |m> = sqrt(j(j+1) - m(m+1)) |m+1>: entries below the diagonal.
    jp = sp.diags(np.sqrt(j * (j + 1) - m[:-1] * (m[:-1] + 1)), -1, shape=(d, d))
    table = {
        "jz": lambda: sp.diags(m, 0, shape=(d, d)),
        "jp": lambda: jp,
        "jm": lambda: jp.T,
        "jx": lambda: (jp + jp.T) / 2,
        "jy": lambda: -1j * (jp - jp.T) / 2,
    }
    if name not in table:
        raise ValueError(f"unknown spin operator {name!r}; known: {sorted(table)}")
    return _frozen(table[name]())
