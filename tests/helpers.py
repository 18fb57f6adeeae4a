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
