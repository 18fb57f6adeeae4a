"""Appendix A: the master-equation form of sequential charging, an independent dense path.

Nothing here uses the block structure of :mod:`qbjax.dynamics.collisions`; everything is dense
``d x d`` (or ``2d x 2d``) linear algebra, ``O(d^3)`` per collision, so it serves
as a check of the fast scan (tests, notebook) and for the driving limit.

* :func:`lindblad_operators`: ``L_g, L_e, L_-, L_+`` of Eq. A9, as matrix
  functions of ``A^+ A`` and ``A A^+`` (eigendecomposition).
* :func:`generator`: ``L = c L_coh + (1 - c) L_inc`` (Eq. A10, A11), so that
  one collision is ``rho -> rho + L rho`` exactly (Eq. A1).
* :func:`expansion_generator`: the second-order expansion Eq. A12-A13.
* :func:`master_collide`: the schedule applied with either generator, and the
  damping channel of Eq. 21 from its Kraus operators ``K_n``.
* :func:`driving_limit`: ``theta -> 0`` at fixed ``Omega tau``: the coherent
  drive ``s (e^{-i alpha} A + h.c.)`` of Eq. A13 alone, exact on the
  truncated space (Eq. 19, 31).
"""

from __future__ import annotations

import math

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from ..linalg import eigh
from ._model import CollisionalModel, LadderBattery, QubitUnits

__all__ = [
    "dissipator",
    "lindblad_operators",
    "generator",
    "expansion_generator",
    "damping_kraus",
    "master_collide",
    "driving_limit",
]


def dissipator(m, rho):
    """``D[M] rho = M rho M^+ - {M^+ M, rho}/2``."""
    mdm = m.conj().T @ m
    return m @ rho @ m.conj().T - 0.5 * (mdm @ rho + rho @ mdm)


def _matrix_function(herm, f):
    w, v = eigh(herm)
    return (v * f(jnp.maximum(w, 0.0))[None, :]) @ v.conj().T


def lindblad_operators(battery: LadderBattery, theta):
    """Eq. A9: ``L_g = cos(sqrt(A^+A) theta)``, ``L_e = cos(sqrt(AA^+) theta)``,
    ``L_- = theta sinc(sqrt(AA^+) theta) A``, ``L_+ = L_-^+``."""
    return _lindblad_operators(jnp.asarray(battery.ladder_operator(), dtype=jnp.complex128), theta)


def _lindblad_operators(a, theta):
    ada, aad = a.conj().T @ a, a @ a.conj().T
    lg = _matrix_function(ada, lambda w: jnp.cos(jnp.sqrt(w) * theta))
    le = _matrix_function(aad, lambda w: jnp.cos(jnp.sqrt(w) * theta))
    # theta sinc(x theta) with sinc(x) = sin(x)/x
    lm = _matrix_function(aad, lambda w: theta * jnp.sinc(jnp.sqrt(w) * theta / jnp.pi)) @ a
    return lg, le, lm, lm.conj().T


def generator(battery: LadderBattery, units: QubitUnits, theta):
    """``rho -> L rho``, ``L = c L_coh + (1 - c) L_inc`` of Eq. A10-A11 (one collision: ``rho + L rho``)."""
    return _generator(jnp.asarray(battery.ladder_operator(), dtype=jnp.complex128), units, theta)


def _generator(a, units, theta):
    lg, le, lm, lp = _lindblad_operators(a, theta)
    q, c, al = units.q, units.coherence, units.phase
    coh1 = jnp.sqrt(q) * lm + 1j * jnp.sqrt(1 - q) * jnp.exp(1j * al) * le
    coh2 = jnp.sqrt(1 - q) * lp + 1j * jnp.sqrt(q) * jnp.exp(-1j * al) * lg

    def apply(rho):
        inc = q * (dissipator(lg, rho) + dissipator(lm, rho)) + (1 - q) * (dissipator(le, rho) + dissipator(lp, rho))
        coh = dissipator(coh1, rho) + dissipator(coh2, rho)
        return c * coh + (1 - c) * inc

    return apply


def expansion_generator(battery: LadderBattery, units: QubitUnits, theta):
    """Eq. A12-A13 (second order in ``theta``)::

        L rho ~ theta^2 (q D[A] + (1-q) D[A^+]) rho - i s theta [e^{-i alpha} A + e^{i alpha} A^+, rho]
    """
    return _expansion_generator(jnp.asarray(battery.ladder_operator(), dtype=jnp.complex128), units, theta)


def _expansion_generator(a, units, theta):
    q, al = units.q, units.phase
    v = units.drive * theta * (jnp.exp(-1j * al) * a + jnp.exp(1j * al) * a.conj().T)

    def apply(rho):
        return theta**2 * (q * dissipator(a, rho) + (1 - q) * dissipator(a.conj().T, rho)) - 1j * (v @ rho - rho @ v)

    return apply


def damping_kraus(levels: int, gamma: float) -> np.ndarray:
    """Eq. 21: ``sqrt((e^{kappa t0} - 1)^n / n!) a^n exp(-kappa t0 a^+a/2)``, ``n = 0 .. d - 1``."""
    kt = -math.log1p(-gamma)
    a = np.diag(np.sqrt(np.arange(1, levels)), 1)
    base = np.diag(np.exp(-kt / 2 * np.arange(levels)))
    out, an = [], np.eye(levels)
    for n in range(levels):
        out.append(math.sqrt(math.expm1(kt) ** n / math.factorial(n)) * an @ base)
        an = an @ a
    return np.array(out)


def master_collide(model: CollisionalModel, thetas, *, expansion: bool = False):
    """Dense App. A path: ``rho <- rho + L(theta_k) rho``, then Eq. 21 if lossy.

    Arguments:
        expansion: use the second-order generator A12-A13 instead of the exact A10-A11.

    Returns:
        ``(energies (K,), rho (d, d) complex)`` with energies after each collision.
    """
    kraus = jnp.asarray(damping_kraus(model.battery.levels, float(model.loss))) if model.lossy else None
    a = jnp.asarray(model.battery.ladder_operator(), dtype=jnp.complex128)  # not the kind: one compile per size
    return _master_collide(a, model.units, jnp.asarray(thetas, dtype=jnp.float64), kraus, expansion)


@eqx.filter_jit
def _master_collide(a, units: QubitUnits, thetas, kraus, expansion: bool):
    d = a.shape[0]
    n = jnp.arange(d, dtype=jnp.float64)
    make = _expansion_generator if expansion else _generator

    def body(rho, theta):
        rho = rho + make(a, units, theta)(rho)
        if kraus is not None:
            rho = jnp.einsum("kij,jl,kml->im", kraus, rho, kraus.conj())
        return rho, jnp.real(jnp.dot(n, jnp.diagonal(rho)))

    rho0 = jnp.zeros((d, d), dtype=jnp.complex128).at[0, 0].set(1.0)
    rho, energies = jax.lax.scan(body, rho0, thetas)
    return energies, rho


@eqx.filter_jit
def driving_limit(battery: LadderBattery, times, drive=0.5, phase=0.0):
    """``theta -> 0`` at fixed ``Omega tau``: ``|psi(tau)> = exp(-i tau s (e^{-i alpha} A + h.c.))|0>`` (Eq. A13).

    Exact on the battery's ``d`` levels (one ``eigh``).  Returns ``E(tau)`` at ``times``
    (``s = c sqrt(q(1-q))``, ``1/2`` for ``q = 1/2, c = 1``).
    """
    a = jnp.asarray(battery.ladder_operator(), dtype=jnp.complex128)
    h = drive * (jnp.exp(-1j * phase) * a + jnp.exp(1j * phase) * a.conj().T)
    w, v = eigh(h)
    times = jnp.asarray(times, dtype=jnp.float64)
    amps = v @ (jnp.exp(-1j * w[None, :] * times[:, None]) * v[0].conj()[None, :]).T  # (d, T)
    n = jnp.arange(battery.levels, dtype=jnp.float64)
    return jnp.sum(n[:, None] * jnp.abs(amps) ** 2, axis=0)
