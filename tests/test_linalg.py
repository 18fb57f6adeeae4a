"""qbjax.linalg equals jax.numpy.linalg in value and derivative, under vmap, grad and jvp."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

import qbjax  # noqa: F401  (float64)
from qbjax import linalg

KEYS = jax.random.split(jax.random.PRNGKey(0), 4)
TOL = 1e-12


def _hermitian(shape, complex_=True):
    a = jax.random.normal(KEYS[0], shape)
    if complex_:
        a = a + 1j * jax.random.normal(KEYS[1], shape)
    return a + jnp.conj(jnp.swapaxes(a, -1, -2))


def test_eigh_values_and_gradients_match_jax():
    def mine(a):
        w, v = linalg.eigh(a)
        return w[1] + jnp.abs(v[0, 2]) ** 2 + w[0] * w[3]

    def ref(a):
        w, v = jnp.linalg.eigh(a)
        return w[1] + jnp.abs(v[0, 2]) ** 2 + w[0] * w[3]

    a = _hermitian((3, 5, 5))
    np.testing.assert_allclose(jax.vmap(mine)(a), jax.vmap(ref)(a), atol=TOL)
    ar = a.real
    np.testing.assert_allclose(jax.vmap(jax.grad(mine))(ar), jax.vmap(jax.grad(ref))(ar), atol=1e-10)
    np.testing.assert_allclose(jax.jacfwd(mine)(ar[0]), jax.jacfwd(ref)(ar[0]), atol=1e-10)
    np.testing.assert_allclose(linalg.eigvalsh(a[0]), jnp.linalg.eigvalsh(a[0]), atol=TOL)


def test_solve_values_and_gradients_match_jax():
    M = jax.random.normal(KEYS[2], (3, 6, 6)) + 6 * jnp.eye(6)
    b = jax.random.normal(KEYS[3], (3, 6))
    mine = lambda M, b: jnp.sum(linalg.solve(M, b) ** 2)  # noqa: E731
    ref = lambda M, b: jnp.sum(jnp.linalg.solve(M, b) ** 2)  # noqa: E731
    np.testing.assert_allclose(jax.vmap(mine)(M, b), jax.vmap(ref)(M, b), rtol=TOL)
    for arg in (0, 1):
        np.testing.assert_allclose(jax.vmap(jax.grad(mine, arg))(M, b), jax.vmap(jax.grad(ref, arg))(M, b),
                                   rtol=1e-10, atol=1e-12)
    B = jax.random.normal(KEYS[3], (6, 2))
    np.testing.assert_allclose(linalg.solve(M[0], B), jnp.linalg.solve(M[0], B), rtol=TOL)


def test_tridiagonal_solver_with_leading_axes_matches_jax():
    n = 7
    dl, du, b = (jax.random.normal(k, (3, 2, n)) for k in (KEYS[0], KEYS[2], KEYS[3]))
    d = 5 + jax.random.normal(KEYS[1], (3, 2, n))

    def mine(dl, d, du, b):
        return jnp.sum(linalg.tridiagonal_solver(dl, d, du)(b) ** 3)

    def ref(dl, d, du, b):
        return jnp.sum(jax.lax.linalg.tridiagonal_solve(dl, d, du, b[..., None])[..., 0] ** 3)

    np.testing.assert_allclose(jax.vmap(mine)(dl, d, du, b), jax.vmap(ref)(dl, d, du, b), rtol=TOL)
    for arg in range(4):
        np.testing.assert_allclose(jax.vmap(jax.grad(mine, arg))(dl, d, du, b),
                                   jax.vmap(jax.grad(ref, arg))(dl, d, du, b), rtol=1e-9, atol=1e-11)
