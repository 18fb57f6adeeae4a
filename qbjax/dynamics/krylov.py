"""Lanczos (Krylov) propagation with dense output for time-independent Hamiltonians.

A Chebyshev expansion must resolve the whole spectrum of ``H`` (its cost is
``~ r t`` products, ``r`` the spectral half-width), however little of it the
state occupies.  A Krylov step adapts to the state instead: ``m`` Lanczos
steps from ``psi`` give an orthonormal basis ``V`` and a tridiagonal ``T``
with ``H V_m = V_{m+1} T~`` and::

    psi(tau) ~ V_m u(tau),   u(tau) = exp(-i T_m tau) e_0.

Its residual is ``r(s) = -beta_m u_{m-1}(s) v_m``, so the error is bounded
rigorously (in exact arithmetic) by::

    |psi(tau) - V_m u(tau)| <= beta_m int_0^tau |u_{m-1}(s)| ds.

The bound depends on ``T`` alone, and ``T`` depends only on the spectral
measure of ``psi`` (the moments ``<psi|H^k|psi>``), which ``exp(-iHt)``
conserves: every step of a trajectory has the same ``T`` as the first.  So a
pilot Lanczos run from ``psi_0`` fixes the step length and basis size for
the whole trajectory before anything is compiled, and the bound is checked
again inside each step.  For a Dicke battery whose truncated cavity spans
``r ~ 10^3`` while the state's energy spread is ``~ g N``, that is tens of
products where Chebyshev needs thousands.

Dense output comes from the same moment matrices as in
:mod:`qbjax.dynamics.chebyshev`: in the basis ``V_{m+2}`` the state, ``H psi``
and ``H^2 psi`` have coefficient vectors ``a = u``, ``h = T~ u``,
``h2 = T~ T~ u`` (exact by the Lanczos relation), and ``<B>``, ``var B`` and
the derivatives are quadratic forms in them.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from ..linalg import eigh
from .chebyshev import quadratic_moments


def lanczos_basis(apply_H, v0, steps: int):
    """``steps`` Lanczos steps from the unit vector ``v0`` with one full reorthogonalisation pass.

    Returns ``(V, alpha, beta)``: ``V`` is ``(steps + 1, size)`` (rows ``v_0 .. v_steps``),
    ``alpha`` the diagonal and ``beta`` the off-diagonal of ``T`` (``beta[j]``
    couples ``v_j`` and ``v_{j+1}``).  An invariant subspace (``beta = 0``)
    leaves zero rows, which contribute nothing.
    """
    shape = v0.shape
    V = jnp.zeros((steps + 1, v0.size), v0.dtype).at[0].set(v0.reshape(-1))

    def body(j, carry):
        V, a, b = carry
        v = V[j]
        w = apply_H(v.reshape(shape)).reshape(-1)
        alpha = jnp.real(jnp.vdot(v, w))
        w = w - alpha * v - jnp.where(j > 0, b[j - 1], 0.0) * V[j - 1]
        # full reorthogonalisation (rows beyond j are still zero)
        w = w - V.T @ (jnp.conj(V) @ w)
        beta = jnp.sqrt(jnp.sum(jnp.abs(w) ** 2))
        V = V.at[j + 1].set(jnp.where(beta > 0, w / jnp.where(beta > 0, beta, 1.0), 0.0))
        return V, a.at[j].set(alpha), b.at[j].set(beta)

    zeros = jnp.zeros(steps)
    return jax.lax.fori_loop(0, steps, body, (V, zeros, zeros))


def tridiagonal(alpha, beta, m: int, rows: int | None = None):
    """The ``rows x m`` Lanczos matrix ``T~`` (numpy or jax); ``rows = m`` gives ``T_m``."""
    xp = jnp if isinstance(alpha, jax.Array) else np
    rows = m if rows is None else rows
    T = xp.zeros((rows, m))
    i = xp.arange(m)
    T = T.at[i, i].set(alpha[:m]) if xp is jnp else _set(T, (i, i), alpha[:m])
    j = xp.arange(min(m, rows - 1))
    T = T.at[j + 1, j].set(beta[: j.shape[0]]) if xp is jnp else _set(T, (j + 1, j), beta[: len(j)])
    j = xp.arange(m - 1)
    T = T.at[j, j + 1].set(beta[: m - 1]) if xp is jnp else _set(T, (j, j + 1), beta[: m - 1])
    return T


def _set(T, idx, v):
    T[idx] = v
    return T


def error_bound(alpha, beta, m: int, taus: np.ndarray, refine: int = 16) -> np.ndarray:
    """``beta_{m-1} int_0^tau |u_{m-1}(s)| ds`` at each ``tau`` (host, numpy; trapezoid on a refined grid).

    ``refine`` sub-intervals per grid step keep the quadrature error far
    below the bound itself (``u`` varies on the scale ``1 / |T|``).
    """
    a, b = np.asarray(alpha, float), np.asarray(beta, float)
    lam, Q = np.linalg.eigh(tridiagonal(a, b, m))
    taus = np.asarray(taus, float)
    s = np.linspace(0.0, taus[-1], refine * (len(taus) - 1) + 1) if len(taus) > 1 else taus
    last = np.abs((Q[m - 1] * Q[0]) @ np.exp(-1j * np.outer(lam, s)))
    cum = np.concatenate([[0.0], np.cumsum(0.5 * (last[1:] + last[:-1]) * np.diff(s))])
    return b[m - 1] * np.interp(taus, s, cum)


def krylov_moments(apply_H, apply_B, psi0, n_steps: int, taus, m: int, masks=(), apply_C=None, first_basis=None):
    """``<B>``, ``d<B>/dt``, ``d^2<B>/dt^2``, ``var B``, mask weights at ``1 + n_steps * len(taus)`` times.

    Each step builds ``V_{m+2}`` (``m + 1`` Lanczos steps) from the current
    state and evaluates the step's save times ``taus`` (relative to the step
    start) as quadratic forms; the next step starts from ``V_m u(taus[-1])``.

    Arguments:
        apply_H, apply_B, apply_C, masks: as in :func:`qbjax.dynamics.chebyshev.chebyshev_moments`.
        psi0: unit initial state (real when ``H`` is real: the first step then
            runs in real arithmetic).
        n_steps, taus, m: the static plan (see :func:`error_bound`).
        first_basis: optional ``(V, alpha, beta)`` of the first step, from the pilot run.

    Returns:
        ``(E, dE, d2E, var, weights, bound)``: the series and the largest
        per-step error bound met (host check against the plan).
    """
    shape = psi0.shape
    taus = jnp.asarray(taus)
    dot = lambda x, y: jnp.sum(jnp.conj(x) * y)  # noqa: E731

    def batched(op, X):
        # a few vectors at a time: vmapped over all of them, XLA's temporaries for
        # a 20-spin chain's 40 flip groups reached 8 GB
        out = jax.lax.map(op, X.reshape((X.shape[0],) + shape), batch_size=min(4, X.shape[0]))
        return out.reshape(X.shape[0], -1)

    def step(psi, basis=None):
        V, a, b = lanczos_basis(apply_H, psi, m + 1) if basis is None else basis
        V, a, b = V[: m + 2], a[: m + 1], b[: m + 1]
        lam, Q = eigh(tridiagonal(a, b, m))
        # u(tau) = Q exp(-i lam tau) Q^T e_0 on the step's save times, padded to m + 2 entries
        u = (jnp.exp(-1j * jnp.outer(taus, lam)) * Q[0]) @ Q.T
        A = jnp.pad(u, ((0, 0), (0, 2)))
        hA = jnp.pad(u @ tridiagonal(a, b, m, m + 1).T, ((0, 0), (0, 1)))
        h2A = hA[:, : m + 1] @ tridiagonal(a, b, m + 1, m + 2).T
        if apply_C is None:
            BV = batched(apply_B, V)
        else:
            # H v_k from the Lanczos relation: H V_{m+1} = V_{m+2} T~, and H v_{m+1} directly
            HV = jnp.concatenate([tridiagonal(a, b, m + 1, m + 2).T @ V, batched(apply_H, V[m + 1 :])])
            BV = HV - batched(apply_C, V)
        E, dE, d2E, var, w = quadratic_moments(A, hA, h2A, V, BV, masks)
        # the step's error bound from its own T (the same T as the pilot's, up to rounding)
        last = jnp.abs(jnp.exp(-1j * jnp.outer(taus, lam)) @ (Q[m - 1] * Q[0]))
        bound = b[m - 1] * jnp.sum(0.5 * (last[1:] + last[:-1]) * jnp.diff(taus)) + b[m - 1] * taus[0] * last[0]
        psi_next = (A[-1] @ V).reshape(shape)
        return psi_next, (E, dE, d2E, var, w, jnp.broadcast_to(bound, taus.shape))

    hpsi = apply_H(psi0)
    h2psi = apply_H(hpsi)
    if apply_C is None:
        Bp, BHp = apply_B(psi0), apply_B(hpsi)
    else:
        Bp, BHp = hpsi - apply_C(psi0), h2psi - apply_C(hpsi)
    E0 = jnp.real(dot(psi0, Bp))
    first = (E0, -2 * jnp.imag(dot(hpsi, Bp)), 2 * jnp.real(dot(hpsi, BHp)) - 2 * jnp.real(dot(h2psi, Bp)),
             jnp.real(dot(Bp, Bp)) - E0**2,
             jnp.stack([jnp.sum(mk * jnp.abs(psi0) ** 2) for mk in masks]) if masks else jnp.zeros(0),
             jnp.zeros(()))
    psi, out0 = step(psi0, first_basis)
    outs = jax.tree.map(lambda o: o[None], out0)
    if n_steps > 1:
        psi = psi.astype(jnp.result_type(psi0.dtype, jnp.complex64))
        _, more = jax.lax.scan(lambda p, _: step(p), psi, None, length=n_steps - 1)
        outs = jax.tree.map(lambda o, mo: jnp.concatenate([o, mo]), outs, more)
    *series, bound = (jnp.concatenate([f[None], o.reshape((o.shape[0] * o.shape[1],) + o.shape[2:])])
                      for f, o in zip(first, outs, strict=True))
    return (*series, jnp.max(bound))


def lanczos_coefficients(apply_H, v0, steps: int):
    """``(alpha, beta)`` of plain Lanczos from ``v0`` (no reorthogonalisation: for the extreme Ritz values)."""

    def step(carry, _):
        v_prev, v, beta = carry
        w = apply_H(v) - beta * v_prev
        alpha = jnp.real(jnp.sum(jnp.conj(v) * w))
        w = w - alpha * v
        beta_new = jnp.sqrt(jnp.sum(jnp.abs(w) ** 2))
        v_next = w / jnp.where(beta_new > 0, beta_new, 1.0)
        return (v, v_next, beta_new), (alpha, beta_new)

    _, (a, b) = jax.lax.scan(step, (jnp.zeros_like(v0), v0, jnp.zeros(())), None, length=steps)
    return a, b


def ritz_enclosure(a, b, margin: float) -> tuple[float, float]:
    """``[lo, hi]`` from Lanczos coefficients: the extreme Ritz values widened by their residuals and
    ``margin`` times the Ritz width (``|H y - theta y| = b_m |s_m|`` for the Ritz pair ``(theta, y)``)."""
    a, b = np.asarray(a), np.asarray(b)
    m = len(a)
    T = np.diag(a) + np.diag(b[: m - 1], 1) + np.diag(b[: m - 1], -1)
    theta, S = np.linalg.eigh(T)
    res = abs(b[m - 1]) * np.abs(S[m - 1])
    pad = margin * (theta[-1] - theta[0])
    return float(theta[0] - res[0] - pad), float(theta[-1] + res[-1] + pad)


def step_plan(a, b, n: int, dt: float, sizes, h_ops: int, eval_ops: int, tol: float):
    """The cheapest Krylov stepping ``(m, s, n_steps, cost)`` for a pilot's ``(a, b)``, or ``None``.

    For each basis size ``m`` in ``sizes``, :func:`error_bound` gives the
    longest step (``s`` save intervals of ``dt``, a power of two) whose bound
    stays below ``tol``; the plan minimises the estimated work over ``n``
    intervals (``h_ops`` products per ``H``, ``eval_ops`` per observable).
    """
    best = None
    grid = dt * np.arange(n + 1)
    for m in sizes:
        bound = error_bound(np.asarray(a), np.asarray(b), m, grid)
        ok = np.nonzero(bound[1:] > tol)[0]
        s = n if ok.size == 0 else int(ok[0])  # bound[1 .. s] <= tol
        if s < 1:
            continue
        s = 1 << (s.bit_length() - 1)  # powers of two: few compiled shapes across parameters
        n_steps = -(-n // s)
        k = m + 2
        cost = n_steps * (3 * k * h_ops + 2 * k * k + 2 * k * k / 3 + 3 * k * eval_ops + 3 * s * k)
        if best is None or cost < best[-1]:
            best = (m, s, n_steps, cost)
    return best
