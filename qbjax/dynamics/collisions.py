"""The collision map of seed 003: one collision (Eq. 3) and one damping period (Eq. 21) on the battery state.

A propagator like the others in :mod:`qbjax.dynamics`: it works on arrays
(the state, the ladder couplings ``g_n``, the angle and the units' numbers);
:mod:`qbjax.collisional` builds those from a collisional model.

Structure of the collision (Eq. 2, A6-A9).  ``H = A (x) |e><g| + A^+ (x) |g><e|``
couples only ``|n, e>`` and ``|n+1, g>``, with amplitude ``g_n``; ``|0, g>``
and ``|d-1, e>`` are untouched.  So ``U = exp(-i theta H)`` is a direct sum
of 2x2 rotations by the angles ``theta g_n``, and its qubit blocks are

    U_gg = diag(cos(theta g_{n-1})) =: C_g,   U_ee = diag(cos(theta g_n)) =: C_e,
    U_ge = -i R,   U_eg = -i R^T,   R = sum_n sin(theta g_n) |n+1><n|.

Tracing out the qubit in the state of Eq. 1 (``s = c sqrt(q(1-q))``) gives

    rho' = q C_g rho C_g + (1-q) C_e rho C_e + (1-q) R rho R^T + q R^T rho R
           + X + X^+,     X = i s e^{-i alpha} (C_g rho R^T - R^T rho C_e),

every term a diagonal scaling or a one-step shift: ``O(d^2)`` per collision,
``O(d)`` on populations (the incoherent case, Eq. 9).

Rotating frame.  With ``P = diag(phi^n)``, ``phi = -i e^{i alpha}``, the
state ``rho~ = P^+ rho P`` obeys the same map with ``X~ = s (C_g rho~ R^T -
R^T rho~ C_e)``: every coefficient is real, so starting from ``|0><0|`` the
state stays real symmetric.  ``P`` commutes with ``H_B`` and with the damping
channel, so energies, populations and spectra (ergotropy) are the same in both
frames; only the returned density matrix is rotated back.  The phase ``alpha``
thus never changes the charging from the ground state (as Sec. IV C notes).

Energy gain of one collision, from the diagonal ``p`` and the first
off-diagonal ``o_n = rho~_{n, n+1}`` alone (``O(d)``; used by the greedy
protocol)::

    Delta E(theta) = sum_n [((1-q) p_n - q p_{n+1}) sin^2(theta g_n) + s o_n sin(2 theta g_n)]

Damping (Eq. 21).  From ``|m>`` the channel removes ``k ~ Binomial(m,
gamma)`` quanta; on matrix elements
``rho'_{mn} = sum_k b_k(m) b_k(n) rho_{m+k, n+k}`` with
``b_k(m)^2 = C(m+k, k) gamma^k (1-gamma)^m``, exact on the truncated Fock space
(``<n>`` drops by exactly ``(1 - gamma)``).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jax.scipy.special import gammaln

__all__ = [
    "collide_populations",
    "collide_density",
    "energy_gain",
    "damping_coefficients",
    "damp_populations",
    "damp_density",
    "phase_factors",
]


def _pad(x, before, after):
    return jnp.pad(x, [(before, after)] + [(0, 0)] * (x.ndim - 1))


def collide_populations(p, coupling, theta, q):
    """Eq. 9: ``p'_n = p_n - J_n + J_{n-1}``, net upward flow ``J_n = ((1-q) p_n - q p_{n+1}) sin^2(theta g_n)``."""
    s2 = jnp.sin(theta * coupling) ** 2
    flow = ((1 - q) * p[:-1] - q * p[1:]) * s2
    return p - _pad(flow, 0, 1) + _pad(flow, 1, 0)


def _vectors(coupling, theta):
    x = theta * coupling
    sn, cs = jnp.sin(x), jnp.cos(x)
    lo, hi = _pad(sn, 1, 0), _pad(sn, 0, 1)  # sin(theta g_{n-1}), sin(theta g_n); zero off the ladder
    cg = jnp.pad(cs, (1, 0), constant_values=1.0)  # cos(theta g_{n-1}); level 0 untouched by A
    ce = jnp.pad(cs, (0, 1), constant_values=1.0)  # cos(theta g_n); the top untouched by A^+
    return sn, cs, lo, hi, cg, ce


def _shifts(r):
    """``r`` moved by one level along each axis: [i-1, j-1], [i+1, j+1], [i, j-1], [i+1, j], [i-1, j], [i, j+1]."""
    return (jnp.pad(r[:-1, :-1], ((1, 0), (1, 0))), jnp.pad(r[1:, 1:], ((0, 1), (0, 1))),
            jnp.pad(r[:, :-1], ((0, 0), (1, 0))), jnp.pad(r[1:, :], ((0, 1), (0, 0))),
            jnp.pad(r[:-1, :], ((1, 0), (0, 0))), jnp.pad(r[:, 1:], ((0, 0), (0, 1))))


def _outer(u, v):
    return u[:, None] * v[None, :]


def collide_density_autodiff(r, coupling, theta, q, s):
    # Shift the state, never a product: XLA would otherwise fuse the pad with
    # the outer product and re-evaluate sin/cos per matrix element.
    _, _, lo, hi, cg, ce = _vectors(coupling, theta)
    r_dn, r_up, r_rt, r_bl, r_tp, r_lf = _shifts(r)
    out = (q * _outer(cg, cg) + (1 - q) * _outer(ce, ce)) * r
    # (1-q) R r R^T moves the state up one level, q R^T r R moves it down.
    out = out + ((1 - q) * _outer(lo, lo) * r_dn + q * _outer(hi, hi) * r_up)
    # X + X^T, X = s (C_g r R^T - R^T r C_e); r_tp and r_lf are the transposes of r_rt and
    # r_bl (r symmetric), so that the whole update is one fused elementwise pass.
    x_plus = _outer(cg, lo) * r_rt + _outer(lo, cg) * r_tp
    x_minus = _outer(hi, ce) * r_bl + _outer(ce, hi) * r_lf
    return out + s * (x_plus - x_minus)


@jax.custom_vjp
def collide_density(r, coupling, theta, q, s):
    """One collision on the real symmetric state ``rho~`` of the rotating frame (module docstring).

    Reverse mode is written out (:func:`_collide_density_bwd`): the adjoint map
    has the same shift structure, and the derivatives with respect to ``theta``,
    ``q``, ``s`` and the ladder amplitudes reduce to matrix-vector products.
    (Autodiff's own rule reduces broadcast outer products and runs ~5x slower.)
    """
    return collide_density_autodiff(r, coupling, theta, q, s)


def _collide_density_fwd(r, coupling, theta, q, s):
    return collide_density_autodiff(r, coupling, theta, q, s), (r, coupling, theta, q, s)


def _collide_density_bwd(res, lam):
    r, coupling, theta, q, s = res
    sn, cs, lo, hi, cg, ce = _vectors(coupling, theta)
    # The adjoint (Heisenberg-picture) map: each term's shift moved onto lam.
    l_dn, l_up, l_rt, l_bl, l_tp, l_lf = _shifts(lam)
    r_bar = (q * _outer(cg, cg) + (1 - q) * _outer(ce, ce)) * lam
    r_bar = r_bar + ((1 - q) * _outer(hi, hi) * l_up + q * _outer(lo, lo) * l_dn)
    x_plus = _outer(cg, hi) * l_lf + _outer(hi, cg) * l_bl
    x_minus = _outer(lo, ce) * l_tp + _outer(ce, lo) * l_rt
    r_bar = r_bar + s * (x_plus - x_minus)
    # Each term is (u v^T) o M with M = lam o shift(r): d/du = M v, d/dv = M^T u.
    r_dn, r_up, r_rt, r_bl, r_tp, r_lf = _shifts(r)
    m0, m_dn, m_up = lam * r, lam * r_dn, lam * r_up
    m_rt, m_tp, m_bl, m_lf = lam * r_rt, lam * r_tp, lam * r_bl, lam * r_lf
    m0_cg, m0_ce = m0 @ cg + cg @ m0, m0 @ ce + ce @ m0
    dn_lo, up_hi = m_dn @ lo + lo @ m_dn, m_up @ hi + hi @ m_up
    rt_lo, rt_cg, tp_cg, tp_lo = m_rt @ lo, cg @ m_rt, m_tp @ cg, lo @ m_tp
    bl_ce, bl_hi, lf_hi, lf_ce = m_bl @ ce, hi @ m_bl, m_lf @ hi, ce @ m_lf
    u_cg = q * m0_cg + s * (rt_lo + tp_lo)
    u_ce = (1 - q) * m0_ce - s * (bl_hi + lf_hi)
    u_lo = (1 - q) * dn_lo + s * (rt_cg + tp_cg)
    u_hi = q * up_hi - s * (bl_ce + lf_ce)
    # cg[n+1] = ce[n] = cos(x_n), lo[n+1] = hi[n] = sin(x_n), x_n = theta g_n
    x_bar = -(u_cg[1:] + u_ce[:-1]) * sn + (u_lo[1:] + u_hi[:-1]) * cs
    q_bar = 0.5 * (jnp.dot(cg, m0_cg) - jnp.dot(ce, m0_ce) - jnp.dot(lo, dn_lo) + jnp.dot(hi, up_hi))
    s_bar = jnp.dot(cg, rt_lo) + jnp.dot(lo, tp_cg) - jnp.dot(hi, bl_ce) - jnp.dot(ce, lf_hi)

    def like(x, ref):
        return jnp.reshape(x, jnp.shape(ref)).astype(jnp.result_type(ref))

    return (r_bar, like(x_bar * theta, coupling), like(jnp.dot(x_bar, coupling), theta), like(q_bar, q),
            like(s_bar, s))


collide_density.defvjp(_collide_density_fwd, _collide_density_bwd)


def energy_gain(theta, p, o, coupling, q, s):
    """Energy gained in one collision at angle ``theta`` (``p``: populations, ``o``: first off-diagonal)."""
    x = theta * coupling
    return jnp.sum(((1 - q) * p[:-1] - q * p[1:]) * jnp.sin(x) ** 2 + s * o * jnp.sin(2 * x))


def damping_coefficients(gamma, levels: int, terms: int):
    """``b_k(m)``, ``k = 0 .. terms``, ``m = 0 .. d - 1`` (zero where ``m + k >= d``)."""
    k = jnp.arange(terms + 1, dtype=jnp.float64)[:, None]
    m = jnp.arange(levels, dtype=jnp.float64)[None, :]
    g = jnp.asarray(gamma, dtype=jnp.float64)
    # k log(gamma) with k = 0 -> 0 also at gamma = 0
    klog = jnp.where(k > 0, k * jnp.log(jnp.where(g > 0, g, 1.0)), 0.0)
    klog = jnp.where((k > 0) & (g <= 0), -jnp.inf, klog)
    log_b2 = gammaln(m + k + 1) - gammaln(m + 1) - gammaln(k + 1) + klog + m * jnp.log1p(-g)
    b = jnp.exp(0.5 * log_b2)
    return jnp.where(m + k < levels, b, 0.0)


def damping_tail(gamma, levels: int, terms: int):
    """``P[Binomial(d - 1, gamma) > terms]``: the probability the top level's damping loses to the cut series
    (traceable; ``terms = 0`` with ``gamma > 0`` means the channel is off: the whole decay probability)."""
    n = levels - 1
    k = jnp.arange(min(terms, n) + 1, dtype=jnp.float64)
    g = jnp.clip(jnp.asarray(gamma, jnp.float64), 0.0, 1.0 - 1e-300)
    logp = (gammaln(n + 1.0) - gammaln(k + 1) - gammaln(n - k + 1)
            + jnp.where(k > 0, k * jnp.log(jnp.where(g > 0, g, 1.0)), 0.0) + (n - k) * jnp.log1p(-g))
    if terms == 0:  # the channel is not applied at all: any loss is missed
        return jnp.where(g > 0, 1.0, 0.0)
    kept = jnp.sum(jnp.where((k > 0) & (g <= 0), 0.0, jnp.exp(logp)))
    return jnp.maximum(1.0 - kept, 0.0)


#: Up to this many binomial terms the damping sum is unrolled (one fused pass); beyond, a scan.
UNROLL_TERMS = 40


def damp_populations(p, b):
    """Eq. 21 on populations: ``p'_m = sum_k b_k(m)^2 p_{m+k}``."""
    if b.shape[0] <= UNROLL_TERMS:
        return sum(b[k] * b[k] * _pad(p[k:], 0, k) for k in range(b.shape[0]))

    def body(carry, bk):
        acc, shifted = carry
        return (acc + bk * bk * shifted, _pad(shifted[1:], 0, 1)), None

    (acc, _), _ = jax.lax.scan(body, (jnp.zeros_like(p), p), b)
    return acc


def damp_density(r, b):
    """Eq. 21 on a density matrix: ``rho'_{mn} = sum_k b_k(m) b_k(n) rho_{m+k, n+k}``."""
    if b.shape[0] <= UNROLL_TERMS:
        return sum(b[k][:, None] * jnp.pad(r[k:, k:], ((0, k), (0, k))) * b[k][None, :] for k in range(b.shape[0]))

    def body(carry, bk):
        acc, shifted = carry
        return (acc + bk[:, None] * bk[None, :] * shifted, jnp.pad(shifted[1:, 1:], ((0, 1), (0, 1)))), None

    (acc, _), _ = jax.lax.scan(body, (jnp.zeros_like(r), r), b)
    return acc


def phase_factors(levels: int, phase):
    """Diagonal of ``P = diag(phi^n)``, ``phi = -i e^{i alpha}``: ``rho = P rho~ P^+``."""
    n = jnp.arange(levels, dtype=jnp.float64)
    return jnp.exp(1j * n * (phase - jnp.pi / 2))


def nested_scan(f, carry, xs, chunk: int | None):
    """``lax.scan(f, carry, xs)``, as an outer scan over checkpointed chunks of length ``chunk``."""
    k = xs.shape[0]
    if chunk is None or chunk <= 0 or chunk >= k:
        return jax.lax.scan(f, carry, xs)
    head = k % chunk
    ys = []
    if head:
        carry, y0 = jax.lax.scan(f, carry, xs[:head])
        ys.append(y0)
    inner = jax.checkpoint(lambda c, x: jax.lax.scan(f, c, x))
    carry, y1 = jax.lax.scan(inner, carry, xs[head:].reshape(-1, chunk, *xs.shape[1:]))
    ys.append(jax.tree.map(lambda a: a.reshape(-1, *a.shape[2:]), y1))
    return carry, jax.tree.map(lambda *a: jnp.concatenate(a), *ys)
