"""Shared reference systems (independent QuTiP constructions) and tree comparison for the tests."""

from __future__ import annotations

from types import SimpleNamespace

import jax
import numpy as np


def qutip_dicke(n: int, g: float, w: float, cutoff: int) -> SimpleNamespace:
    """The Dicke battery of seed 000 built independently in QuTiP.

    ``H = w a^+ a + w (J_z + N/2) + 2 g (a + a^+) J_x`` on ``cutoff`` Fock
    levels times the spin-``N/2`` multiplet, starting in ``|N> (x) |m = -N/2>``.
    QuTiP orders the multiplet ``m = +j .. -j``.  Returns ``H, HB, psi0, a,
    jx, jz, jm`` (``HB = w (J_z + N/2)``).
    """
    import qutip

    j = n / 2
    a = qutip.tensor(qutip.destroy(cutoff), qutip.qeye(n + 1))
    jx, jz, jm = (qutip.tensor(qutip.qeye(cutoff), qutip.jmat(j, k)) for k in ("x", "z", "-"))
    H = w * a.dag() * a + w * (jz + n / 2) + 2 * g * (a + a.dag()) * jx
    psi0 = qutip.tensor(qutip.basis(cutoff, n), qutip.basis(n + 1, n))
    return SimpleNamespace(H=H, HB=w * (jz + n / 2), psi0=psi0, a=a, jx=jx, jz=jz, jm=jm)


def assert_tree_allclose(actual, desired, *, rtol: float = 0.0, atol: float = 0.0):
    """Every leaf of two pytrees of the same structure agrees within ``atol + rtol |desired|``."""
    a_leaves, a_def = jax.tree.flatten(actual)
    d_leaves, d_def = jax.tree.flatten(desired)
    assert a_def == d_def, f"tree structures differ: {a_def} vs {d_def}"
    for x, y in zip(a_leaves, d_leaves):
        np.testing.assert_allclose(np.asarray(x), np.asarray(y), rtol=rtol, atol=atol)


def cavity_qubit(cutoff: int = 8, g: float = 0.4, kappa: float = 0.0, detuning: float = 0.0):
    """A Jaynes-Cummings battery, as a qbjax Spec and independently in QuTiP (same level order).

    ``H = (1 + detuning) a^+ a + (sigma_z + 1)/2 + g (a^+ sigma^- + a sigma^+)``,
    the battery is the qubit (``H_B = (sigma_z + 1)/2``, zero in its ground
    state ``|0>``), optional cavity loss ``kappa D[a]``; ``g = 0`` leaves out the coupling terms (a
    diagonal ``H``).  qbjax orders the
    qubit ground first, so ``sigma^- = |0><1|`` is built by hand for QuTiP.
    Returns ``spec, H, HB, a, sm, sz, c_ops``.
    """
    import qutip

    import qbjax as qb
    from qbjax.operators import Boson, Qubit

    space = (("a", Boson(cutoff)), ("b", Qubit()))
    spec = qb.Spec(space=space, charger=(qb.term(1.0 + detuning, "a.n"),),
                   battery=(qb.term(0.5, "b.sz"), qb.term(0.5)),
                   coupling=(qb.term(g, "a.adag", "b.sm"), qb.term(g, "a.a", "b.sp")) if g else (),
                   battery_dofs=("b",), initial=(), classical_initial={},
                   dissipators=(qb.Dissipator(kappa, qb.term(1.0, "a.a")),) if kappa else ())
    a = qutip.tensor(qutip.destroy(cutoff), qutip.qeye(2))
    sm = qutip.tensor(qutip.qeye(cutoff), qutip.Qobj(np.array([[0.0, 1.0], [0.0, 0.0]])))
    sz = qutip.tensor(qutip.qeye(cutoff), qutip.Qobj(np.diag([-1.0, 1.0])))
    H = (1.0 + detuning) * a.dag() * a + 0.5 * sz + 0.5 + g * (a.dag() * sm + a * sm.dag())
    c_ops = [np.sqrt(kappa) * a] if kappa else []
    return SimpleNamespace(spec=spec, H=H, HB=0.5 * sz + 0.5, a=a, sm=sm, sz=sz, c_ops=c_ops)


def exact_kets(H: np.ndarray, psi0: np.ndarray, ts) -> np.ndarray:
    """``exp(-i H (t - ts[0])) psi0`` at every ``t`` by dense diagonalisation in numpy (an exact reference)."""
    w, V = np.linalg.eigh(H)
    c = V.conj().T @ psi0
    tau = np.asarray(ts) - ts[0]
    return (c[None, :] * np.exp(-1j * np.outer(tau, w))) @ V.T
