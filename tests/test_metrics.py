"""Figures of merit: interpolation, max power, ergotropy."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import qbjax as qb
from qbjax.metrics import hermite5


def test_hermite5_exact_for_quintics():
    c = np.array([0.3, -1.0, 2.0, 0.5, -0.7, 0.2])
    f = lambda t: sum(ci * t**i for i, ci in enumerate(c))  # noqa: E731
    d1, d2 = jax.grad(f), jax.grad(jax.grad(f))
    t0, t1 = 0.4, 1.3
    for t in np.linspace(t0, t1, 7):
        v = hermite5(t, t0, t1, (f(t0), d1(t0), d2(t0)), (f(t1), d1(t1), d2(t1)))
        np.testing.assert_allclose(v, f(t), rtol=1e-12)


def test_ergotropy_pure_and_passive():
    h = jnp.diag(jnp.array([0.0, 1.0, 2.5]))
    psi = jnp.array([0.0, 0.6, 0.8])
    rho = jnp.outer(psi, psi)
    np.testing.assert_allclose(qb.ergotropy(rho, h), 0.36 + 0.64 * 2.5, rtol=1e-12)  # pure: all of the energy
    passive = jnp.diag(jnp.array([0.5, 0.3, 0.2]))
    np.testing.assert_allclose(qb.ergotropy(passive, h), 0.0, atol=1e-14)


def test_ergotropy_with_degenerate_physical_spectrum():
    # two qubits, symmetric sector |1,-1>,|1,0>,|1,1> with energies 0,1,2; the physical
    # space has levels 0 (x1), 1 (x2), 2 (x1): the passive state may use both level-1 states.
    h = jnp.diag(jnp.array([0.0, 1.0, 2.0]))
    rho = jnp.diag(jnp.array([0.2, 0.3, 0.5]))
    sector = qb.ergotropy(rho, h)
    full = qb.ergotropy(rho, h, levels=jnp.array([0.0, 1.0, 2.0]), degeneracies=(1, 2, 1))
    np.testing.assert_allclose(sector, 1.3 - (0.5 * 0 + 0.3 * 1 + 0.2 * 2), rtol=1e-12)
    np.testing.assert_allclose(full, 1.3 - (0.5 * 0 + 0.3 * 1 + 0.2 * 1), rtol=1e-12)
    assert full > sector


def test_variance_of_fock_exchange():
    # oscillators: the battery is in a binomial mixture-like state; variance >= 0 and zero at t = 0
    tr = qb.charge(qb.OscillatorBattery(6, 0.2, 1.0))
    assert abs(float(tr.variance[0])) < 1e-12
    assert float(jnp.min(tr.variance)) > -1e-10


def test_max_power_refuses_a_grid_without_a_charging_time():
    """Issue 20: qb.charge(m, [0.0]) then max_power returned -inf; a zero-span grid likewise."""
    import qbjax as qb

    m = qb.DickeBattery(2, 0.4, cutoff=12)
    with pytest.raises(ValueError, match="at least 2 times"):
        qb.max_power(qb.charge(m, np.array([0.0])))
    with pytest.raises(ValueError, match="strictly increasing|spans a time > 0"):
        qb.max_power(qb.charge(m, np.array([1.0, 1.0, 1.0])))
