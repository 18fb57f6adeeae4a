"""Collisional charging through the one engine: the model is an AbstractBattery, qb.charge runs its collision map."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import qbjax as qb
from qbjax.collisional import collide, collisional_model, constant_schedule, greedy_schedule, stored_energy_and_grad

COHERENT = collisional_model("oscillator", 40, q=0.5, coherence=1.0)
THETAS = jnp.asarray(constant_schedule(0.05 * np.pi, 4.0))


@pytest.mark.parametrize("model", [
    COHERENT,
    collisional_model("oscillator", 40, q=0.5, coherence=1.0, loss=0.01),
    collisional_model("spin", 21, q=0.3, coherence=0.6, phase=0.4),
    collisional_model("oscillator", 40, q=0.0, coherence=0.0),  # incoherent: the populations path
], ids=["coherent", "lossy", "spin", "incoherent"])
def test_charge_agrees_with_collide(model):
    assert isinstance(model, qb.AbstractBattery)
    ref = collide(model, THETAS, record_populations=True)
    traj = qb.charge(model.with_schedule(THETAS))
    assert traj.method == "collisions" and traj.discrete
    assert traj.ts.shape == (THETAS.shape[0] + 1,) and float(traj.ts[0]) == 0.0 and float(traj.energy[0]) == 0.0
    np.testing.assert_allclose(traj.ts[1:], np.cumsum(THETAS), rtol=0, atol=1e-12)
    np.testing.assert_allclose(traj.energy[1:], ref.energy, rtol=0, atol=1e-10)
    # the fluctuation from the recorded populations, independently
    n = np.arange(model.battery.levels)
    p = np.asarray(ref.populations)
    np.testing.assert_allclose(traj.variance[1:], p @ n**2 - (p @ n) ** 2, rtol=0, atol=1e-9)


def test_shared_max_power_is_the_best_collision():
    traj = qb.charge(COHERENT.with_schedule(THETAS))
    mp = qb.max_power(traj, warn=False)
    power = np.asarray(traj.energy[1:]) / np.asarray(traj.ts[1:])
    i = int(np.argmax(power))
    assert float(mp.power) == pytest.approx(power[i], rel=1e-14) and float(mp.time) == pytest.approx(traj.ts[i + 1])


def test_gradients_and_optax_schedules_go_through_charge():
    def energy(thetas):
        return qb.charge(COHERENT.with_schedule(thetas)).energy[-1]

    e, g = jax.value_and_grad(energy)(THETAS)
    e_ref, g_ref = stored_energy_and_grad(COHERENT, THETAS)
    assert abs(float(e) - float(e_ref)) < 1e-12
    np.testing.assert_allclose(g, g_ref, rtol=0, atol=1e-10)
    # a finite difference on one angle
    k, h = 3, 1e-6
    fd = (energy(THETAS.at[k].add(h)) - energy(THETAS.at[k].add(-h))) / (2 * h)
    assert abs(float(fd) - float(g[k])) < 1e-6
    # optax on the schedule leaf directly
    opt = optax.adam(0.01)
    thetas, state = THETAS, opt.init(THETAS)
    step = jax.jit(lambda th, st: _adam_step(opt, energy, th, st))
    for _ in range(10):
        thetas, state = step(thetas, state)
    assert float(energy(thetas)) > float(e) + 1e-3


def _adam_step(opt, energy, thetas, state):
    grad = jax.grad(lambda th: -energy(th))(thetas)
    updates, state = opt.update(grad, state)
    return jnp.maximum(optax.apply_updates(thetas, updates), 0.0), state


def test_the_truncation_warning_is_the_shared_one():
    small = collisional_model("oscillator", 6, q=0.0, coherence=0.0)
    with pytest.warns(qb.TruncationWarning, match="highest kept Fock level"):
        traj = qb.charge(small.with_schedule(greedy_schedule(small, 20.0)))
    assert traj.top_population.shape == (1,) and float(traj.top_population[0]) > 1e-6


def test_collision_method_value_and_bad_calls():
    m = COHERENT.with_schedule(THETAS)
    a = qb.charge(m, method=qb.methods.Collisions(mode="density", checkpoint=None))
    np.testing.assert_array_equal(a.energy, qb.charge(m, method="collisions").energy)
    with pytest.raises(ValueError, match="method 'auto', 'collisions'"):
        qb.charge(m, method="spectral")
    with pytest.raises(ValueError, match="schedule"):
        qb.charge(COHERENT)
    with pytest.raises(ValueError, match="times are its schedule"):
        qb.charge(m, jnp.linspace(0, 1, 5))
    with pytest.raises(qb.models.ParameterError, match="thetas must be >= 0"):
        COHERENT.with_schedule(-THETAS)


def test_functions_that_would_evolve_the_wrong_dynamics_refuse():
    """battery_state/ergotropy evolve a Hamiltonian: a collisional battery has none, so they refuse rather than
    return the untouched ground state."""
    m = COHERENT.with_schedule(THETAS)
    with pytest.raises(ValueError, match="charged by its own solvers"):
        qb.battery_ergotropy(m, 1.0)
    traj = qb.charge(m)
    assert float(traj.energy[-1]) > 1.0


def test_sweep_of_a_collisional_model_and_a_loss_beyond_its_damping_series():
    """qb.sweep runs a collisional model on its own schedule (no time grid), point by point as qb.charge;
    a loss larger than the one its damping series was built for is refused, never silently cut."""
    from qbjax.analysis import replace_params
    from qbjax.status import SolverError

    thetas = np.full(12, 0.4)
    built = collisional_model("oscillator", 20, q=0.0, coherence=0.0, loss=0.1).with_schedule(thetas)
    res = qb.sweep(built, {"loss": [0.0, 0.01, 0.1]}, ["max_power", "final_energy"], progress=False)
    for i, loss in enumerate([0.0, 0.01, 0.1]):
        traj = qb.charge(replace_params(built, loss=loss))
        assert res.values("final_energy")[i] == pytest.approx(float(traj.energy[-1]), rel=1e-12)
        assert res.values("max_power")[i] == pytest.approx(float(qb.max_power(traj, warn=False).power), rel=1e-12)
    assert res.values("final_energy")[2] < res.values("final_energy")[0]  # the loss acts
    lossless = collisional_model("oscillator", 20, q=0.0, coherence=0.0).with_schedule(thetas)
    with pytest.raises(SolverError, match="too few binomial terms"):
        qb.charge(replace_params(lossless, loss=0.1))
    with pytest.raises(SolverError, match="too few binomial terms"):
        qb.sweep(lossless, {"loss": [0.0, 0.1]}, ["final_energy"], progress=False)
