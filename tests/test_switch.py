"""Time-dependent switching lambda(t) (seed 000, Eq. 2) through the ODE propagators."""

import jax.numpy as jnp
import numpy as np

import qbjax as qb


def test_step_switch_freezes_battery_energy_after_tau():
    m = qb.DickeBattery(3, 0.4, 1.0)
    tau = 1.3
    ts = jnp.linspace(0.0, 2.5, 51)
    step = qb.PiecewiseConstant(jnp.array([0.0, tau]), jnp.array([1.0]))
    tr = qb.charge(m, ts, switch=step, method="dense-ode")
    ref = qb.charge(m, jnp.array([0.0, tau]), method="spectral").energy[-1]
    after = np.asarray(ts) > tau
    # H_A + H_B conserves H_B once the coupling is off: E_B stays at E_B(tau)
    np.testing.assert_allclose(tr.energy[after], ref, atol=1e-8)
    # matrix-free ODE path agrees
    tr2 = qb.charge(m, ts, switch=step, method="ode")
    np.testing.assert_allclose(tr2.energy, tr.energy, atol=1e-8)


def test_constant_switch_matches_spectral_and_classical_switch():
    m = qb.OscillatorBattery(4, 0.2, 1.0)
    ts = qb.time_grid(m, num_times=51)
    half = qb.PiecewiseConstant(jnp.array([0.0, 100.0]), jnp.array([0.5]))
    tr = qb.charge(m, ts, switch=half, method="dense-ode")
    exact = 4 * np.sin(0.5 * 0.2 * 2 * np.asarray(ts)) ** 2  # lambda = 1/2 halves g
    np.testing.assert_allclose(tr.energy, exact, atol=1e-8)
    trc = qb.charge(m, ts, switch=half, classical=True)
    np.testing.assert_allclose(trc.energy, exact, atol=1e-8)
