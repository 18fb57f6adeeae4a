"""Local operators: algebra, Hermiticity, classical symbols."""

from fractions import Fraction

import jax.numpy as jnp
import numpy as np
import pytest

from qbjax.operators import Boson, Levels, Qubit, Spin


@pytest.mark.parametrize("j", [Fraction(1, 2), 1, Fraction(5, 2), 7])
def test_spin_algebra(j):
    s = Spin(j)
    jx, jy, jz = (s.matrix(k) for k in ("jx", "jy", "jz"))
    np.testing.assert_allclose(jx @ jy - jy @ jx, 1j * jz, atol=1e-13)
    np.testing.assert_allclose(jx @ jx + jy @ jy + jz @ jz, float(j) * (float(j) + 1) * np.eye(s.dim), atol=1e-12)
    np.testing.assert_allclose(s.matrix("jp"), jx + 1j * jy, atol=1e-13)
    for m in (jx, jy, jz):
        np.testing.assert_allclose(m, m.conj().T)


def test_boson_algebra_and_truncation():
    b = Boson(6)
    a, ad = b.matrix("a"), b.matrix("adag")
    comm = a @ ad - ad @ a
    np.testing.assert_allclose(np.diag(comm)[:-1], 1.0)  # exact below the cutoff
    np.testing.assert_allclose(b.matrix("n"), ad @ a)
    np.testing.assert_allclose(b.matrix("x"), (a + ad) / np.sqrt(2))


def test_qubit_paulis():
    q = Qubit()
    sx, sy, sz = (q.matrix(k) for k in ("sx", "sy", "sz"))
    np.testing.assert_allclose(sx @ sy, 1j * sz, atol=1e-14)
    np.testing.assert_allclose(q.matrix("sp"), np.array([[0, 0], [1, 0]]))  # |1><0|, index 0 = ground
    np.testing.assert_allclose(sz, np.diag([-1.0, 1.0]))


def test_classical_symbols():
    x = jnp.array([0.3, -1.2])
    b = Boson(3)
    assert np.isclose(b.symbol("n", x), (0.3**2 + 1.2**2) / 2)
    assert np.isclose(b.symbol("a", x) * b.symbol("adag", x), b.symbol("n", x))
    s = Spin(2)
    v = jnp.array([0.1, 0.2, 0.3])
    assert np.isclose(s.symbol("jp", v), 0.1 + 0.2j)


@pytest.mark.parametrize("bad", [lambda: Boson(0), lambda: Spin(0.3), lambda: Spin(-1), lambda: Levels(0)])
def test_bad_sizes(bad):
    with pytest.raises(ValueError):
        bad()


def test_levels_has_no_classical_analog():
    with pytest.raises(ValueError, match="no classical analog"):
        Levels(3).symbol("0,1", jnp.zeros(0))
