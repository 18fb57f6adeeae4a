"""States and quantum information: initial-state helpers, partial traces, entropy, purity, log-negativity.

Everything here is a plain function of arrays, traceable and differentiable
(``jax.grad`` reaches ``alpha``, ``nbar``, ``theta`` and the entries of a
density matrix).  Levels are ordered as qbjax orders them
(:mod:`qbjax.operators`): Fock number ``n = 0 .. dim - 1`` for a boson,
``m = -j .. j`` for a spin (index 0 is spin down; QuTiP's ``jmat`` and
``spin_coherent`` order them from ``m = +j``), index 0 = ground for a qubit.

State constructors
    :func:`basis`, :func:`coherent` (and its classical counterpart
    :func:`classical_coherent`), :func:`thermal`, :func:`spin_coherent`,
    :func:`tensor` (tensor product, kets or density matrices),
    :func:`superposition` (a normalised sum of kets), :func:`ket2dm`.

Quantum information
    :func:`ptrace` (keep some subsystems of a state), :func:`reduced_state`
    (the same on a saved trajectory, by dof name), :func:`entropy`
    (von Neumann, natural log), :func:`purity`, :func:`log_negativity`.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence

import jax.numpy as jnp
import numpy as np

from .linalg import eigvalsh
from .status import is_concrete
from .trajectory import TRUNCATION_TOL, TruncationWarning

__all__ = [
    "basis",
    "coherent",
    "classical_coherent",
    "thermal",
    "spin_coherent",
    "tensor",
    "superposition",
    "ket2dm",
    "ptrace",
    "reduced_state",
    "entropy",
    "purity",
    "log_negativity",
]


def _dim(dim, name="dim") -> int:
    if not (isinstance(dim, (int, np.integer)) and dim >= 1):
        raise ValueError(f"{name} must be an integer >= 1, got {dim!r}")
    return int(dim)


def basis(dim: int, k: int):
    """The basis ket ``|k>`` of a ``dim``-level system (``(dim,)`` complex)."""
    dim = _dim(dim)
    if not (isinstance(k, (int, np.integer)) and 0 <= k < dim):
        raise ValueError(f"k must be an integer in 0..{dim - 1}, got {k!r}")
    return jnp.zeros(dim, jnp.complex128).at[int(k)].set(1.0)


def coherent(dim: int, alpha):
    """The coherent state ``|alpha>`` truncated to ``dim`` Fock levels and renormalised.

    Amplitudes ``alpha^n / sqrt(n!)`` (QuTiP's ``method="analytic"``) divided
    by their norm on the kept levels, so the state is normalised.  When the
    truncation drops more than :data:`~qbjax.trajectory.TRUNCATION_TOL` of
    the norm, a :class:`~qbjax.trajectory.TruncationWarning` says so (for a
    concrete ``alpha``).  Differentiable in ``alpha`` (real or complex).
    """
    dim = _dim(dim)
    alpha = jnp.asarray(alpha)
    if is_concrete(alpha) and not np.all(np.isfinite(np.asarray(alpha))):
        raise ValueError(f"alpha must be finite, got {alpha!r}")
    steps = alpha.astype(jnp.complex128) / jnp.sqrt(jnp.arange(1, dim, dtype=jnp.float64))
    amp = jnp.concatenate([jnp.ones(1, jnp.complex128), jnp.cumprod(steps)])
    norm2 = jnp.sum(jnp.abs(amp) ** 2)
    if is_concrete(alpha):
        a2 = float(np.abs(np.asarray(alpha)) ** 2)
        lost = 1.0 - float(norm2) * math.exp(-a2) if a2 < 700 else 1.0
        if lost > TRUNCATION_TOL:
            warnings.warn(f"coherent(dim={dim}, alpha={complex(np.asarray(alpha)):.4g}) drops {lost:.2e} of the "
                          f"norm above level {dim - 1}: increase dim (the state is renormalised)",
                          TruncationWarning, stacklevel=2)
    return amp / jnp.sqrt(norm2)


def classical_coherent(alpha):
    """``(q, p)``: the classical counterpart of the coherent state ``|alpha>`` (``a -> (q + i p)/sqrt 2``,
    :class:`~qbjax.operators.Boson`), for a spec's ``classical_initial``."""
    alpha = jnp.asarray(alpha, jnp.complex128)
    return jnp.stack([jnp.sqrt(2.0) * jnp.real(alpha), jnp.sqrt(2.0) * jnp.imag(alpha)])


def thermal(dim: int, nbar):
    """The thermal (Gibbs) density matrix of an oscillator with mean occupation ``nbar``, truncated to
    ``dim`` levels and renormalised (as QuTiP's ``thermal_dm``): ``p_n ~ (nbar / (1 + nbar))^n``."""
    dim = _dim(dim)
    nbar = jnp.asarray(nbar, jnp.float64)
    if is_concrete(nbar) and not (np.isfinite(float(nbar)) and float(nbar) >= 0):
        raise ValueError(f"nbar must be finite and >= 0, got {float(nbar)!r}")
    x = nbar / (1.0 + nbar)
    n = jnp.arange(dim, dtype=jnp.float64)
    # x^n with 0^0 = 1 and a finite gradient at nbar = 0
    base = jnp.where(n == 0, 1.0, x)
    p = base**n
    return jnp.diag((p / jnp.sum(p)).astype(jnp.complex128))


def spin_coherent(j, theta, phi):
    """The spin coherent state ``|theta, phi>`` of a spin ``j`` (``(2j + 1,)``, levels ``m = -j .. j``).

    ``<J> = j (sin theta cos phi, sin theta sin phi, cos theta)``: ``theta = 0``
    is ``m = +j`` (the last level), ``theta = pi`` is ``m = -j``.  Amplitudes
    ``sqrt(C(2j, j + m)) cos(theta/2)^(j + m) sin(theta/2)^(j - m) e^{i (j - m) phi}``
    (QuTiP's ``spin_coherent`` up to a global phase and the level order).
    """
    twoj = 2 * j
    if not (float(twoj) == int(round(float(twoj))) and twoj >= 0):
        raise ValueError(f"j must be a non-negative integer or half-integer, got {j!r}")
    twoj = int(round(float(twoj)))
    theta, phi = jnp.asarray(theta, jnp.float64), jnp.asarray(phi, jnp.float64)
    k = np.arange(twoj + 1)  # k = j + m
    log_binom = jnp.asarray(
        [math.lgamma(twoj + 1) - math.lgamma(i + 1) - math.lgamma(twoj - i + 1) for i in k], jnp.float64)
    up, down = jnp.cos(theta / 2), jnp.sin(theta / 2)

    def power(x, e):
        # x^e with 0^0 = 1 and finite gradients at x = 0
        e = jnp.asarray(e, jnp.float64)
        return jnp.where(e == 0, 1.0, x) ** e

    amp = jnp.exp(0.5 * log_binom) * power(up, k) * power(down, twoj - k)
    return amp.astype(jnp.complex128) * jnp.exp(1j * (twoj - k) * phi)


def ket2dm(psi):
    """``|psi><psi|`` (``(d, d)``)."""
    psi = jnp.asarray(psi)
    return jnp.outer(psi, jnp.conj(psi))


def tensor(*states):
    """The tensor product of kets ``(d_i,)`` or density matrices ``(d_i, d_i)``, in the order given.

    All kets give a ket; any density matrix makes the result a density matrix.
    """
    if not states:
        raise ValueError("tensor needs at least one state")
    arrays = [jnp.asarray(s) for s in states]
    for i, s in enumerate(arrays):
        if s.ndim not in (1, 2) or (s.ndim == 2 and s.shape[0] != s.shape[1]):
            raise ValueError(f"state {i} must be a ket (d,) or a density matrix (d, d), got shape {s.shape}")
    mixed = any(s.ndim == 2 for s in arrays)
    out = jnp.ones((1, 1) if mixed else (1,), jnp.complex128)
    for s in arrays:
        s = ket2dm(s) if mixed and s.ndim == 1 else s
        out = jnp.kron(out, s.astype(jnp.complex128))
    return out


def superposition(*kets, weights=None):
    """``sum_i w_i |psi_i>``, normalised (equal weights by default; complex weights allowed)."""
    if not kets:
        raise ValueError("superposition needs at least one ket")
    arrays = [jnp.asarray(k, jnp.complex128) for k in kets]
    if any(a.ndim != 1 or a.shape != arrays[0].shape for a in arrays):
        raise ValueError(f"superposition takes kets of one shape, got {[a.shape for a in arrays]}")
    w = jnp.ones(len(arrays)) if weights is None else jnp.asarray(weights)
    if w.shape != (len(arrays),):
        raise ValueError(f"weights must have shape ({len(arrays)},), got {w.shape}")
    psi = jnp.tensordot(w.astype(jnp.complex128), jnp.stack(arrays), axes=1)
    norm = jnp.linalg.norm(psi)
    if is_concrete(norm) and not float(norm) > 0:
        raise ValueError("the superposition is the zero vector")
    return psi / norm


def _is_ket(state, D: int, ket: bool | None) -> bool:
    if ket is not None:
        return bool(ket)
    return not (state.ndim >= 2 and state.shape[-2] == D)


def ptrace(state, dims: Sequence[int], keep: Sequence[int], ket: bool | None = None):
    """The reduced density matrix on subsystems ``keep`` (indices into ``dims``, kept in that order).

    ``state``: kets ``(..., D)`` or density matrices ``(..., D, D)`` with
    ``D = prod(dims)``.  ``ket`` says which; ``None`` reads a trailing
    ``(D, D)`` as density matrices (say ``ket=True`` for ``D`` kets of size
    ``D``).  Leading axes (times, a batch) are kept.
    """
    dims = tuple(int(d) for d in dims)
    D = math.prod(dims)
    keep = [int(k) for k in keep]
    n = len(dims)
    if len(set(keep)) != len(keep) or any(not 0 <= k < n for k in keep):
        raise ValueError(f"keep must be distinct subsystem indices in 0..{n - 1}, got {keep}")
    state = jnp.asarray(state)
    if state.shape[-1] != D:
        raise ValueError(f"state of size {state.shape[-1]} does not match dims {dims} (product {D})")
    is_dm = not _is_ket(state, D, ket)
    lead = state.shape[:-2] if is_dm else state.shape[:-1]
    L = len(lead)
    rest = [k for k in range(n) if k not in keep]
    dk = math.prod(dims[k] for k in keep)
    if not is_dm:
        psi = state.reshape(lead + dims)
        psi = jnp.moveaxis(psi, [L + k for k in keep] + [L + k for k in rest], list(range(L, L + n)))
        psi = psi.reshape(lead + (dk, -1))
        return jnp.einsum("...ir,...jr->...ij", psi, jnp.conj(psi))
    rho = state.reshape(lead + dims + dims)
    order = [L + k for k in keep] + [L + k for k in rest] + [L + n + k for k in keep] + [L + n + k for k in rest]
    rho = jnp.moveaxis(rho, order, list(range(L, L + 2 * n)))
    rho = rho.reshape(lead + (dk, D // dk, dk, D // dk))
    return jnp.einsum("...irjr->...ij", rho)


def reduced_state(traj, dofs):
    """The reduced density matrices ``(T, d_sub, d_sub)`` of the dofs ``dofs`` (names, kept in that order)
    along a trajectory charged with ``save_states=True`` (closed or open)."""
    if traj.states is None:
        raise ValueError("reduced_state needs the states: charge with save_states=True")
    if isinstance(dofs, str):
        dofs = (dofs,)
    names = traj.dof_names
    unknown = [d for d in dofs if d not in names]
    if unknown:
        raise ValueError(f"dofs {unknown} not in the trajectory's space {list(names)}")
    # kets (T, D) or density matrices (T, D, D): the trajectory knows which, even when T == D
    return ptrace(traj.states, traj.dims, [names.index(d) for d in dofs], ket=traj.states.ndim == 2)


def _spectrum(rho):
    rho = jnp.asarray(rho)
    if rho.ndim < 2 or rho.shape[-1] != rho.shape[-2]:
        raise ValueError(f"expected density matrices (..., d, d), got shape {rho.shape}")
    return eigvalsh(0.5 * (rho + jnp.conj(jnp.swapaxes(rho, -1, -2))))


def entropy(rho):
    """Von Neumann entropy ``-tr rho ln rho`` (natural log) of density matrices ``(..., d, d)``.

    Eigenvalues below zero (rounding) count as zero; the gradient is finite
    where an eigenvalue vanishes.
    """
    p = _spectrum(rho)
    pos = p > 1e-300
    safe = jnp.where(pos, p, 1.0)
    # >= 0 exactly: rounding (an eigenvalue 1 + 1e-16) must not give -1e-16
    value = -jnp.sum(jnp.where(pos, safe * jnp.log(safe), 0.0), axis=-1)
    return jnp.where(value < 0, 0.0, value)


def purity(rho):
    """``tr rho^2`` of density matrices ``(..., d, d)``."""
    rho = jnp.asarray(rho)
    return jnp.real(jnp.sum(rho * jnp.swapaxes(rho, -1, -2), axis=(-2, -1)))


def log_negativity(rho, dims: Sequence[int], part, ket: bool | None = None):
    """``ln || rho^{T_A} ||_1``: the logarithmic negativity across the cut ``part | rest``.

    ``dims``: the subsystem dimensions; ``part``: the index (or indices) of
    the subsystems transposed.  ``rho`` is a density matrix ``(..., D, D)``
    (or kets ``(..., D)``; ``ket`` as for :func:`ptrace`).  Natural log; 0 for a separable state, ``ln d``
    for a maximally entangled pair of ``d``-level systems.
    """
    dims = tuple(int(d) for d in dims)
    D = math.prod(dims)
    part = [int(part)] if np.ndim(part) == 0 else [int(p) for p in part]
    n = len(dims)
    if any(not 0 <= k < n for k in part) or len(set(part)) != len(part):
        raise ValueError(f"part must be distinct subsystem indices in 0..{n - 1}, got {part}")
    rho = jnp.asarray(rho)
    if _is_ket(rho, D, ket):
        rho = jnp.einsum("...i,...j->...ij", rho, jnp.conj(rho))
    if rho.shape[-1] != D:
        raise ValueError(f"state of size {rho.shape[-1]} does not match dims {dims} (product {D})")
    lead = rho.shape[:-2]
    L = len(lead)
    t = rho.reshape(lead + dims + dims)
    perm = list(range(L + 2 * n))
    for k in part:
        perm[L + k], perm[L + n + k] = perm[L + n + k], perm[L + k]
    t = jnp.transpose(t, perm).reshape(lead + (D, D))
    ev = _spectrum(t)
    # ||rho^T_A||_1 >= tr rho = 1: rounding must not make a separable state's value negative
    value = jnp.log(jnp.sum(jnp.abs(ev), axis=-1))
    return jnp.where(value < 0, 0.0, value)

