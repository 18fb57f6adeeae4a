"""Closed quantum dynamics: exact spectral evaluation and adaptive ODE.

Two ways to evolve ``i d psi/dt = H psi``:

* :func:`spectral_moments`, for a time-independent Hamiltonian small enough
  to diagonalise: ``H = V diag(w) V^+`` once, then every time is exact
  (no time stepping, no error growth).  The observable and its first two
  time derivatives come in closed form from the Heisenberg picture:
  ``dB/dt = i[H, B]`` has matrix elements ``i (w_j - w_k) B_jk`` in the
  eigenbasis.
* :func:`sesolve`, adaptive Runge-Kutta (diffrax) for anything else: time
  dependence and matrix-free operators too large to diagonalise.
"""

from __future__ import annotations

from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np

from ..linalg import eigh
from ..status import settle
from .options import ODEOptions


def spectral_moments(H, B, psi0, ts, masks=(), eig=None):
    """``<B>``, ``d<B>/dt``, ``d^2<B>/dt^2``, ``var B`` and diagonal weights at ``ts``.

    Arguments:
        H: Hermitian ``(d, d)`` Hamiltonian (time independent).
        B: Hermitian ``(d, d)`` observable (the battery energy), or its
            diagonal ``(d,)`` when it is diagonal in the basis (one matrix
            product cheaper).
        psi0: initial state ``(d,)``.
        ts: times ``(T,)``.
        masks: real ``(d,)`` vectors ``m``; returns ``sum_i m_i |psi_i(t)|^2``
            for each (populations of subspaces that are diagonal in the basis,
            for truncation checks).
        eig: ``(w, V)``, the eigendecomposition of ``H`` when the caller has
            it already (``H`` is then not used).

    Returns:
        ``(E, dE, d2E, var, weights)`` with shapes ``(T,)`` and ``(len(masks), T)``.

    Cost: one ``eigh`` and one ``d^3`` product, then ``O(T d^2)``.  With
    ``phi(t) = exp(-i w t) V^+ psi0`` and ``X = B phi`` (eigenbasis):
    ``E = <phi|X>``, ``dE/dt = -2 Im <w phi|X>``,
    ``d^2E/dt^2 = 2 <w phi|B|w phi> - 2 Re <w^2 phi|X>`` and
    ``var = |X|^2 - E^2``.
    """
    w, V = eigh(H) if eig is None else eig
    c = V.conj().T @ psi0.astype(jnp.result_type(V.dtype, psi0.dtype))
    if B.ndim == 1 and not jnp.iscomplexobj(V):
        B = jnp.real(B)
    Bt = (V.conj().T * B) @ V if B.ndim == 1 else V.conj().T @ B @ V
    phi = c[None, :] * jnp.exp(-1j * jnp.outer(ts, w))  # (T, d) in the eigenbasis
    wphi = phi * w
    if jnp.iscomplexobj(Bt):
        X = phi @ Bt.T
        Y = wphi @ Bt.T
    else:
        # real B in the eigenbasis (real H): one real (4T x d) x (d x d) product instead of
        # two complex ones (jnp would promote Bt to complex: twice the arithmetic)
        T = phi.shape[0]
        R = jnp.concatenate([phi.real, phi.imag, wphi.real, wphi.imag]) @ Bt.T
        X = R[:T] + 1j * R[T:2 * T]
        Y = R[2 * T:3 * T] + 1j * R[3 * T:]
    E = jnp.real(jnp.sum(phi.conj() * X, axis=-1))
    dE = -2 * jnp.imag(jnp.sum(wphi.conj() * X, axis=-1))
    d2E = 2 * jnp.real(jnp.sum(wphi.conj() * Y, axis=-1)) - 2 * jnp.real(jnp.sum((wphi * w).conj() * X, axis=-1))
    var = jnp.sum(jnp.abs(X) ** 2, axis=-1) - E**2
    if masks:
        weights = _mask_weights(phi, V, masks)
    else:
        weights = jnp.zeros((0, ts.shape[0]))
    return E, dE, d2E, var, weights


def sesolve(
    hamiltonian: Callable,
    psi0,
    ts,
    *,
    options: ODEOptions = ODEOptions(),
    args=None,
    jump_ts=None,
    status: bool = False,
):
    """Integrate ``d psi/dt = -i H(t) psi`` and return ``psi`` at ``ts``.

    Arguments:
        hamiltonian: ``(t, psi, args) -> H(t) psi`` (matrix free or dense).
        psi0: initial state, any shape (a tensor of shape ``dims`` for
            matrix-free operators).
        ts: save times, increasing; integration starts at ``ts[0]``.
        options: tolerances and solver.
        jump_ts: times where ``H(t)`` jumps (switching on/off), handed to
            the step-size controller so no step straddles them.
        status: return ``(psi, status)`` (a :mod:`qbjax.status` flag, no
            host callback) instead of checking the solve here.
    """

    def vf(t, psi, a):
        return -1j * hamiltonian(t, psi, a)

    out, flags = options.solve(vf, psi0, ts, args=args, jump_ts=jump_ts)
    return (out, flags) if status else settle(out, flags, "sesolve")


def _mask_weights(phi, V, masks):
    """``sum_i m_i |psi_i(t)|^2`` per mask, with ``psi(t) = V phi(t)``.

    Masks known at trace time (0/1 vectors of the top Fock levels) need only
    their nonzero rows of ``psi``: ``T x d x r`` instead of a full ``T x d x d``
    product (``r`` rows, a few percent of ``d``).
    """
    if not any(isinstance(m, jax.core.Tracer) for m in masks):
        ms = np.stack([np.asarray(m) for m in masks])
        rows = np.flatnonzero(np.any(ms != 0, axis=0))
        Vr = V[rows]
        psi_rows = (phi.real @ Vr.T + 1j * (phi.imag @ Vr.T)) if not jnp.iscomplexobj(Vr) else phi @ Vr.T
        return jnp.stack([jnp.abs(psi_rows) ** 2 @ jnp.asarray(m[rows]) for m in ms])
    psi = phi @ V.T
    return jnp.stack([jnp.abs(psi) ** 2 @ m for m in masks])


def moments_from_states(apply_H, apply_B, psis):
    """``<B>``, ``d<B>/dt``, ``d^2<B>/dt^2``, ``var B`` from saved states (time-independent H).

    With ``a = <H psi|B psi>``: ``d<B>/dt = <i[H, B]> = -2 Im a`` and
    ``d^2<B>/dt^2 = -<[H, [H, B]]> = 2 <H psi|B|H psi> - 2 Re <H^2 psi|B psi>``.
    """

    def one(psi):
        Hp, Bp = apply_H(psi), apply_B(psi)
        HHp, BHp = apply_H(Hp), apply_B(Hp)
        dot = lambda x, y: jnp.vdot(x.reshape(-1), y.reshape(-1))  # noqa: E731
        E = jnp.real(dot(psi, Bp))
        a = dot(Hp, Bp)
        dE = -2 * jnp.imag(a)
        d2E = 2 * jnp.real(dot(Hp, BHp)) - 2 * jnp.real(dot(HHp, Bp))
        var = jnp.real(dot(Bp, Bp)) - E**2
        return E, dE, d2E, var

    return jax.vmap(one)(psis)
