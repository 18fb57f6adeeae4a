"""What a user asks of :func:`qbjax.charge` beyond the battery's energy: observables, an initial state
on the full space, and the states themselves.

:func:`prepare` checks the request on the host, before any work, and
returns a :class:`Request` (a pytree: the observables' coefficients and the
initial state are leaves, so ``jit``, ``vmap`` and ``grad`` pass through).
The propagators in :mod:`qbjax.charging` read it through the helpers here:

* :func:`operator_on` / :func:`state_on`: an observable or the initial state
  on a dense basis (the spec's symmetry block, or the full product space);
* :func:`expect_kets`: the expectation values of every observable in one
  pass over saved kets (density matrices: the Lindblad solver's own traces);
* :func:`embed`: a state on a basis back on the full product space (the
  tensor order of the spec), which is how states leave ``charge``.

Operators are ``Term`` s, tuples of ``Term`` s, dense ``(D, D)`` arrays on the
full space (``D`` the product of the spec's dims, in its tensor order) or
QuTiP ``Qobj`` s.  A Hermitian operator gives a real expectation value,
any other a complex one; Hermiticity is decided on the host from the
concrete operator.  For terms built from traced coefficients (inside your
own ``jit`` or ``grad``) it is decided term by term: real coefficients on
Hermitian products (``g * a^+ a``) count as Hermitian; a sum that is only
Hermitian as a whole (``g (a + a^+)`` written as two terms) then counts as not
Hermitian, and its value is complex: take ``.real``.
"""

from __future__ import annotations

import dataclasses
import functools
import math
from collections.abc import Mapping

import equinox as eqx
import jax.numpy as jnp
import numpy as np
import scipy.sparse as sp
from jaxtyping import Array

from . import representation as rep
from .model import Spec, Term
from .status import is_concrete

__all__ = ["Request", "prepare", "operator_on", "state_on", "embed", "expect_kets", "qobj_data"]

#: Relative tolerance of the checks of a concrete initial state (norm, trace, Hermiticity, positivity).
STATE_TOL = 1e-8


class Request(eqx.Module):
    """Observables, an initial state and whether to keep the states (see :func:`prepare`)."""

    names: tuple[str, ...] = eqx.field(static=True)
    operators: tuple
    hermitian: tuple[bool, ...] = eqx.field(static=True)
    state: Array | None
    save_states: bool = eqx.field(static=True, default=False)

    @property
    def mixed(self) -> bool:
        """The initial state is a density matrix."""
        return self.state is not None and self.state.ndim == 2

    @property
    def needs_states(self) -> bool:
        """The propagator must form the state at every save time (observables or saved states)."""
        return bool(self.names) or self.save_states

    @property
    def general(self) -> bool:
        """Anything beyond the default request (the battery energy from the spec's initial state)."""
        return self.needs_states or self.state is not None

    def named(self, values) -> dict:
        """``{name: value}``, real parts for Hermitian observables."""
        return {n: (jnp.real(v) if h else v) for n, h, v in zip(self.names, self.hermitian, values, strict=True)}


def qobj_data(x, dims: tuple[int, ...], what: str, kind: str):
    """A QuTiP ``Qobj``'s array, its dims checked against the spec's (``kind``: ``"oper"`` or ``"state"``)."""
    qdims = [list(map(int, d)) for d in x.dims]
    D = math.prod(dims)
    flat_ok = qdims[0] == [D]
    if kind == "oper":
        if not x.isoper:
            raise ValueError(f"{what} must be an operator Qobj, got type {x.type!r}")
        if not (qdims == [list(dims), list(dims)] or (flat_ok and qdims[1] == [D])):
            raise ValueError(f"{what} has dims {qdims}; the spec's space has dims {[list(dims), list(dims)]}")
    else:
        if not (x.isket or x.isoper):
            raise ValueError(f"{what} must be a ket or a density-matrix Qobj, got type {x.type!r}")
        if not (qdims[0] == list(dims) or flat_ok):
            raise ValueError(f"{what} has dims {qdims}; the spec's space has dims {list(dims)}")
    out = np.asarray(x.full())
    return out[:, 0] if x.isket else out


def _is_qobj(x) -> bool:
    return type(x).__name__ == "Qobj" and hasattr(x, "full") and hasattr(x, "dims")


def _as_terms(op, name: str, names: tuple[str, ...]):
    terms = (op,) if isinstance(op, Term) else tuple(op)
    if not terms or not all(isinstance(t, Term) for t in terms):
        return None
    for t in terms:
        for dof, _ in t.factors:
            if dof not in names:
                raise ValueError(f"observables[{name!r}] acts on unknown dof {dof!r}; the spec's space has {list(names)}")
    return terms


def _operator(spec: Spec, name, op):
    """``(terms or dense (D, D) array, hermitian)``: one observable, checked."""
    if not isinstance(name, str):
        raise ValueError(f"observable names must be strings, got {name!r}")
    D = math.prod(spec.dims)
    if isinstance(op, (Term, tuple, list)):
        terms = _as_terms(op, name, spec.names)
        if terms is not None:
            for t in terms:
                # building the operator validates each factor's name on its dof
                for dof, o in t.factors:
                    spec.dof(dof).sparse(o)
            concrete = all(is_concrete(t.coeff) for t in terms)
            if concrete and not all(np.all(np.isfinite(np.asarray(t.coeff))) for t in terms):
                raise ValueError(f"observables[{name!r}] has a non-finite coefficient")
            if concrete:
                coeffs = tuple(complex(np.asarray(t.coeff)) for t in terms)
                return terms, _hermitian(spec.space, tuple(t.factors for t in terms), coeffs)
            # traced coefficients: Hermitian when every term is, whatever its (real) coefficient
            return terms, all(not jnp.iscomplexobj(t.coeff) and _hermitian(spec.space, (t.factors,), (1.0,))
                              for t in terms)
    if _is_qobj(op):
        op = qobj_data(op, spec.dims, f"observables[{name!r}]", "oper")
    try:
        arr = jnp.asarray(op)
    except TypeError as e:
        raise ValueError(f"observables[{name!r}] must be a Term, a tuple of Terms, a ({D}, {D}) array on the "
                         f"full space (dims {spec.dims}) or a Qobj, got {type(op).__name__}") from e
    if arr.shape != (D, D):
        raise ValueError(f"observables[{name!r}] must be a ({D}, {D}) operator on the full space (dims {spec.dims}, "
                         f"the spec's tensor order), got shape {arr.shape}")
    arr = arr.astype(jnp.complex128)
    hermitian = False
    if is_concrete(arr):
        a = np.asarray(arr)
        if not np.all(np.isfinite(a)):
            raise ValueError(f"observables[{name!r}] has non-finite entries")
        scale = max(float(np.max(np.abs(a))), 1e-300)
        hermitian = bool(np.max(np.abs(a - a.conj().T)) <= 1e-12 * scale)
    return arr, hermitian


def _hermitian(space, factors, coeffs) -> bool:
    """Whether ``sum_k coeffs[k] prod(factors[k])`` is Hermitian, checked on sparse matrices of the product space."""
    m = _sparse_sum(space, factors, coeffs)
    diff = m - m.conj().T
    scale = max(float(abs(m).max()) if m.nnz else 0.0, 1e-300)
    return bool((abs(diff).max() if diff.nnz else 0.0) <= 1e-12 * scale)


@functools.lru_cache(maxsize=256)
def _sparse_sum(space, factors, coeffs):
    dofs = dict(space)
    out = None
    for fs, c in zip(factors, coeffs):
        locs = {}
        for dof, o in fs:
            m = dofs[dof].sparse(o)
            locs[dof] = m if dof not in locs else locs[dof] @ m
        full = sp.identity(1, dtype=complex, format="csr")
        for name, dof in space:
            full = sp.kron(full, locs.get(name, sp.identity(dof.dim, format="csr")), format="csr")
        out = c * full if out is None else out + c * full
    return out


def _state(spec: Spec, x):
    """The initial state as a complex ``(D,)`` ket or ``(D, D)`` density matrix, checked."""
    D = math.prod(spec.dims)
    if _is_qobj(x):
        x = qobj_data(x, spec.dims, "initial_state", "state")
    arr = jnp.asarray(x)
    if arr.shape == (D, 1):
        arr = arr[:, 0]
    if arr.shape not in ((D,), (D, D)):
        raise ValueError(f"initial_state must be a ket ({D},) or a density matrix ({D}, {D}) on the full space "
                         f"(dims {spec.dims}, the spec's tensor order), got shape {arr.shape}")
    arr = arr.astype(jnp.complex128)
    if is_concrete(arr):
        a = np.asarray(arr)
        if not np.all(np.isfinite(a)):
            raise ValueError("initial_state has non-finite entries")
        if a.ndim == 1:
            n2 = float(np.vdot(a, a).real)
            if abs(n2 - 1.0) > STATE_TOL:
                raise ValueError(f"initial_state must be a normalised ket (|psi|^2 = 1 within {STATE_TOL:g}), "
                                 f"got |psi|^2 = {n2:.10g}")
        else:
            tr = complex(np.trace(a))
            herm = float(np.max(np.abs(a - a.conj().T)))
            if herm > STATE_TOL or abs(tr - 1.0) > STATE_TOL:
                raise ValueError(f"initial_state must be a density matrix (Hermitian, trace 1 within {STATE_TOL:g}), "
                                 f"got trace {tr:.10g} and |rho - rho^+| = {herm:.2e}")
            low = float(np.linalg.eigvalsh(0.5 * (a + a.conj().T))[0]) if D <= 4096 else 0.0
            if low < -STATE_TOL:
                raise ValueError(f"initial_state must be positive semidefinite, got the eigenvalue {low:.3e}")
    return arr


def prepare(spec: Spec, observables=None, initial_state=None, save_states: bool = False,
            classical: bool = False) -> tuple[Spec, Request]:
    """Check a request on the host and return ``(spec, request)``.

    A spec's per-dof ``initial_states`` become the request's state (classical
    dynamics starts from ``classical_initial`` and ignores them).

    With an explicit ``initial_state`` the spec loses its declared conserved
    charge (the state need not lie in one block) and its
    ``initial_populations`` (the explicit state replaces them).
    """
    if observables is None:
        observables = {}
    if not isinstance(observables, Mapping):
        raise ValueError(f"observables must be a mapping {{name: operator}}, got {type(observables).__name__}")
    if not isinstance(save_states, (bool, np.bool_)):
        raise ValueError(f"save_states must be True or False, got {save_states!r}")
    names, ops, herm = [], [], []
    for name, op in observables.items():
        o, h = _operator(spec, name, op)
        names.append(name)
        ops.append(o)
        herm.append(h)
    state = None
    if initial_state is None and spec.initial_states:
        if not classical:
            initial_state = spec.initial_product()
        spec = dataclasses.replace(spec, initial_states=None)
    if initial_state is not None:
        state = _state(spec, initial_state)
        spec = dataclasses.replace(spec, conserved=None, initial_populations=None, initial_states=None)
    return spec, Request(tuple(names), tuple(ops), tuple(herm), state, bool(save_states))


def operator_on(spec: Spec, op, b: rep.Basis):
    """An observable as a dense ``(b.dim, b.dim)`` matrix on basis ``b``."""
    if isinstance(op, tuple):
        return rep.dense(spec.space, op, b)
    if b.dim == math.prod(b.dims):
        return op
    idx = jnp.asarray(b.indices)
    return op[idx][:, idx]


def state_on(spec: Spec, req: Request, b: rep.Basis, mixed: bool | None = None):
    """The initial state on basis ``b`` (a ket, or a density matrix when it is mixed or ``mixed=True``)."""
    from .representation.open import initial_density_matrix

    if req.state is None:
        return initial_density_matrix(spec, b) if mixed else rep.initial_vector(spec, b)
    full = b.dim == math.prod(b.dims)
    idx = jnp.asarray(b.indices)
    x = req.state
    if x.ndim == 1:
        x = x if full else x[idx]
        return jnp.outer(x, jnp.conj(x)) if mixed else x
    return x if full else x[idx][:, idx]


def embed(x, b: rep.Basis, dm: bool = False):
    """States on basis ``b`` (kets ``(..., d)``, or density matrices ``(..., d, d)`` with ``dm``) on the full
    product space (flat, the spec's tensor order)."""
    D = math.prod(b.dims)
    if b.dim == D:
        return x
    idx = jnp.asarray(b.indices)
    if dm:
        out = jnp.zeros(x.shape[:-2] + (D, D), x.dtype)
        return out.at[..., idx[:, None], idx[None, :]].set(x)
    return jnp.zeros(x.shape[:-1] + (D,), x.dtype).at[..., idx].set(x)


def expect_kets(ops, psis):
    """``<psi|O|psi>`` for every observable (dense matrices ``ops`` on the kets' basis) and saved ket ``(T, d)``."""
    return [jnp.einsum("ti,ij,tj->t", jnp.conj(psis), O, psis) for O in ops]
