"""The reservoir battery through the one engine: qb.charge(ReservoirBattery) == charge_reservoirs, with derivatives."""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np
import pytest

import qbjax as qb
from qbjax import methods
from qbjax.models import ReservoirBattery
from qbjax.models.reservoirs import charge_reservoirs

MODEL = ReservoirBattery(6, 2, 2, gamma_up=0.5)
TS = jnp.linspace(0.0, 2.0, 201)


@pytest.mark.parametrize("alias, value, tol", [
    ("exact", methods.CollectiveExact(), 1e-12),
    ("meanfield", methods.MeanField(), 1e-12),
    ("lindblad", methods.Lindblad(), 1e-8),
])
def test_charge_agrees_with_charge_reservoirs(alias, value, tol):
    ref = charge_reservoirs(MODEL, TS, method=alias)
    per_battery = np.asarray(ref.batteries) * MODEL.n_battery  # omega0 = 1
    for traj in (qb.charge(MODEL, TS, method=alias), qb.charge(MODEL, TS, method=value)):
        assert traj.method == alias
        np.testing.assert_allclose(traj.energy, per_battery.sum(0), rtol=0, atol=tol)
        assert sorted(traj.expect) == ["battery_1", "battery_2", "charger"]
        np.testing.assert_allclose(traj.expect["battery_2"], per_battery[1], rtol=0, atol=tol)
        np.testing.assert_allclose(traj.expect["charger"], np.asarray(ref.charger) * MODEL.n_charger, rtol=0, atol=tol)


def test_exact_derivatives_and_variance():
    """dE/dt and d2E/dt2 from the generator against finite differences (they shrink as dt^2); the exact
    solver's variance against the dense Lindblad run's <H_B^2> - <H_B>^2."""
    errors = []
    for n in (401, 1601):
        ts = jnp.linspace(0.0, 2.0, n)
        tr = qb.charge(MODEL, ts, method="exact")
        fd = np.gradient(np.asarray(tr.energy), np.asarray(ts))
        errors.append(np.max(np.abs(fd[2:-2] - np.asarray(tr.d_energy)[2:-2])))
        fd2 = np.gradient(np.asarray(tr.d_energy), np.asarray(ts))
        assert np.max(np.abs(fd2[2:-2] - np.asarray(tr.d2_energy)[2:-2])) < 50 * (2.0 / n) ** 2 * 192
    assert errors[1] < errors[0] / 12  # second order: 16x for 4x the points
    dense = qb.charge(MODEL, TS, method="lindblad")
    exact = qb.charge(MODEL, TS, method="exact")
    np.testing.assert_allclose(exact.variance, dense.variance, rtol=0, atol=1e-8)
    mp = qb.max_power(exact, warn=False)
    assert float(mp.power) >= float(np.max(np.asarray(exact.power))) - 1e-12  # refined at or above the grid


def test_mean_field_moments_and_closure_value():
    mf = qb.charge(MODEL, TS, method=methods.MeanField(closure="factorized"))
    ref = charge_reservoirs(MODEL, TS, method="meanfield", closure="factorized")
    np.testing.assert_allclose(mf.energy, np.asarray(ref.batteries).sum(0) * MODEL.n_battery, rtol=0, atol=1e-12)
    assert np.all(np.asarray(mf.variance) >= 0)
    big = ReservoirBattery(10**6, 100, 3, gamma_up=0.5)  # auto: the mean field at any size
    tr = qb.charge(big, jnp.linspace(0.0, 2e-5, 21))
    assert tr.method == "meanfield" and np.all(np.isfinite(np.asarray(tr.energy)))


def test_reservoir_methods_are_checked():
    with pytest.raises(ValueError, match="reservoirs battery takes method 'auto', 'exact', 'meanfield', 'lindblad'"):
        qb.charge(MODEL, TS, method="spectral")
    with pytest.raises(ValueError, match="strictly increasing"):
        qb.charge(MODEL, jnp.array([0.0, 1.0, 0.5]))


def test_plateau_density_and_its_range():
    from qbjax.models.reservoirs import plateau_density

    assert plateau_density(3, 1.0) == pytest.approx(0.5, rel=1e-15)  # sin^2(pi/4): Fig. 2e's half charge
    assert plateau_density(1, 0.0) == pytest.approx(1.0, rel=1e-15)
    with pytest.raises(ValueError, match="pump_ratio must be <= batteries - 1"):
        plateau_density(3, 2.5)
