"""Chebyshev propagation with dense output: exact closed dynamics for large spaces.

For a time-independent ``H`` with spectrum inside ``[c - r, c + r]``::

    exp(-i H tau) = exp(-i c tau) sum_k (2 - delta_k0) (-i)^k J_k(r tau) T_k(Ht),   Ht = (H - c)/r

The Chebyshev vectors ``phi_k = T_k(Ht) psi`` obey ``phi_{k+1} = 2 Ht phi_k - phi_{k-1}``
and do not depend on ``tau``: one chunk of ``K`` matrix-vector products serves
every save time inside it, each as a linear combination of the stored
``phi_k``.  ``J_k(z)`` decays faster than exponentially once ``k > z``, so
truncating where ``|J_k| < 1e-17`` makes the expansion exact to machine
precision (no step-size control, no error growth beyond rounding).

``H psi`` and ``H^2 psi`` at the save times come free: ``Ht phi_k = (phi_{k+1} +
phi_{k-1})/2`` shifts coefficients instead of costing products.

The bounds ``c, r`` are numbers (any valid enclosure works; the expansion is
exact for each), so gradients flow through ``H`` alone.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
import scipy.special as sps


def chebyshev_terms(z: float, tol: float = 1e-17) -> int:
    """Number of terms ``K`` with ``|J_k(z)| < tol`` for every ``k >= K``."""
    k = int(math.ceil(z)) + 1
    while abs(sps.jv(k, z)) > tol or abs(sps.jv(k + 1, z)) > tol:
        k += 1
    return k + 1


def chebyshev_coefficients(c: float, r: float, taus: np.ndarray, K: int):
    """Matrices ``A, A1, A2`` (``(len(taus), K + 3)``) giving ``psi, Ht psi, Ht^2 psi`` from ``phi_0..phi_{K+2}``."""
    k = np.arange(K + 3)
    a = np.where(k == 0, 1.0, 2.0) * (-1j) ** k * sps.jv(k[None, :], r * taus[:, None])
    a[:, K + 1 :] = 0.0
    a = a * np.exp(-1j * c * taus)[:, None]
    # Ht phi_0 = phi_1;  Ht phi_k = (phi_{k+1} + phi_{k-1}) / 2.
    M = np.zeros((K + 3, K + 3))
    M[1, 0] = 1.0
    for j in range(1, K + 2):
        M[j + 1, j] += 0.5
        M[j - 1, j] += 0.5
    a1 = a @ M.T
    a2 = a1 @ M.T
    return a, a1, a2


def chebyshev_moments(apply_H, apply_B, psi0, n_chunks: int, coeffs, c: float, r: float, masks=(),
                      apply_C=None):
    """``<B>``, ``d<B>/dt``, ``d^2<B>/dt^2``, ``var B`` on a uniform grid.

    Arguments:
        apply_H: ``psi -> H psi`` on state tensors.
        apply_B: ``psi -> B psi`` (any Hermitian ``B``; a diagonal is one multiply).
        psi0: initial state tensor (complex).
        n_chunks: chunks of ``S`` save intervals each (``S = coeffs[0].shape[0]``).
        coeffs: ``(A, A1, A2)`` from :func:`chebyshev_coefficients`.
        c, r: centre and half-width of the spectral enclosure.
        masks: real tensors; returns ``sum m |psi|^2`` per save time for each.
        apply_C: optional ``C = H - B``; then ``B psi = H psi - C psi`` and
            ``B H psi = H^2 psi - C H psi`` reuse the ``H psi, H^2 psi`` the
            expansion gives for free (cheaper when ``B`` has many more terms
            than ``C``, as for a spin chain's interactions).

    Returns:
        ``(E, dE, d2E, var, weights)`` at ``1 + n_chunks * S`` times (``t = 0`` first).
        With ``z = <H psi|B psi>``: ``dE = -2 Im z``, ``d2E = 2 <H psi|B|H psi> - 2 Re <H^2 psi|B psi>``.
    """
    S, K3 = coeffs[0].shape
    # one stacked product gives psi, Ht psi and Ht^2 psi at all save times of a chunk
    stacked = jnp.concatenate([jnp.asarray(x) for x in coeffs], axis=0)

    def ht(x):
        return (apply_H(x) - c * x) / r

    def moments(psi, hpsi, h2psi):
        if apply_C is None:
            Bp, BHp = apply_B(psi), apply_B(hpsi)
        else:
            Bp, BHp = hpsi - apply_C(psi), h2psi - apply_C(hpsi)
        dot = lambda x, y: jnp.sum(jnp.conj(x) * y)  # noqa: E731
        E = jnp.real(dot(psi, Bp))
        dE = -2 * jnp.imag(dot(hpsi, Bp))
        d2E = 2 * jnp.real(dot(hpsi, BHp)) - 2 * jnp.real(dot(h2psi, Bp))
        var = jnp.real(dot(Bp, Bp)) - E**2
        w = jnp.stack([jnp.sum(m * jnp.abs(psi) ** 2) for m in masks]) if masks else jnp.zeros(0)
        return E, dE, d2E, var, w

    def vectors(psi):
        def gen(carry, _):
            p0, p1 = carry
            p2 = 2 * ht(p1) - p0
            return (p1, p2), p2

        p1 = ht(psi)
        _, rest = jax.lax.scan(gen, (psi, p1), None, length=K3 - 2)
        return jnp.concatenate([psi[None], p1[None], rest]).reshape(K3, -1)

    def chunk(psi, _):
        combos = (stacked @ vectors(psi)).reshape((3, S) + psi.shape)
        psis, hts, ht2s = combos[0], combos[1], combos[2]
        hpsis = c * psis + r * hts
        h2psis = c * c * psis + 2 * c * r * hts + r * r * ht2s
        out = jax.vmap(moments)(psis, hpsis, h2psis)
        return psis[-1], out

    first = moments(psi0, apply_H(psi0), apply_H(apply_H(psi0)))
    _, outs = jax.lax.scan(chunk, psi0, None, length=n_chunks)
    return tuple(jnp.concatenate([f[None], o.reshape((o.shape[0] * o.shape[1],) + o.shape[2:])])
                 for f, o in zip(first, outs, strict=True))
