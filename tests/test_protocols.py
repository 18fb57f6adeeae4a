"""Piecewise-constant protocols: exact segment propagation against the spectral and ODE paths."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import qbjax as qb
from qbjax.analysis import replace_params
from qbjax.protocols import PiecewiseProtocol, optimize_protocol, protocol_energy, protocol_power

M = qb.DickeBattery(2, 0.4, 1.0, cutoff=12)


def test_step_protocol_equals_spectral_charging():
    tau = 1.7
    res = protocol_energy(M, PiecewiseProtocol.step(tau, 4))
    ref = qb.charge(M, res.times, method="spectral").energy
    np.testing.assert_allclose(res.energy, ref, atol=1e-11)


def test_piecewise_switch_against_the_adaptive_ode():
    prot = PiecewiseProtocol(jnp.array([0.4, 0.7, 0.3, 0.5]), jnp.array([1.0, -0.6, 0.2, 0.9]))
    exact = protocol_energy(M, prot)
    ode = qb.charge(M, exact.times, switch=prot.switch(), method="dense-ode")  # independent: Dopri8, jump_ts
    np.testing.assert_allclose(exact.energy, ode.energy, atol=1e-9)


def test_charger_control_at_one_changes_nothing():
    v = jnp.array([0.3, 1.0, -0.5])
    a = protocol_energy(M, PiecewiseProtocol.uniform(1.2, v))
    b = protocol_energy(M, PiecewiseProtocol.uniform(1.2, jnp.stack([v, jnp.ones(3)], 1), ("coupling", "charger")))
    np.testing.assert_allclose(a.energy, b.energy, atol=1e-12)
    with pytest.raises(ValueError, match="coupling-only"):
        PiecewiseProtocol.uniform(1.2, jnp.ones((3, 2)), ("coupling", "charger")).switch()


def test_power_gradient_against_finite_differences():
    v0 = jnp.array([0.8, -0.3, 0.5])

    @jax.jit
    def power(v, g):
        return protocol_power(replace_params(M, g=g), PiecewiseProtocol.uniform(1.5, v))

    gv, gg = jax.grad(power, argnums=(0, 1))(v0, 0.4)
    h = 1e-5
    fd = [(power(v0.at[i].add(h), 0.4) - power(v0.at[i].add(-h), 0.4)) / (2 * h) for i in range(3)]
    np.testing.assert_allclose(gv, fd, rtol=1e-6, atol=1e-9)
    np.testing.assert_allclose(gg, (power(v0, 0.4 + h) - power(v0, 0.4 - h)) / (2 * h), rtol=1e-6)


def _ode_power(model, prot):
    """Independent forward simulation: adaptive Dopri8 on H(t) = u_A(t) H_A + H_B + lambda(t) H_I."""
    from qbjax import representation as rep
    from qbjax.dynamics import ODEOptions, sesolve

    spec = model.spec()
    b = rep.basis(spec)
    HA, HB, HI = (rep.dense(spec.space, t, b) for t in (spec.charger, spec.battery, spec.coupling))
    times, vals = prot.times, prot.values

    def H(t, psi, args):
        k = jnp.clip(jnp.searchsorted(times, t, side="right") - 1, 0, vals.shape[0] - 1)
        return vals[k, 1] * (HA @ psi) + HB @ psi + vals[k, 0] * (HI @ psi)

    psi = sesolve(H, rep.initial_vector(spec, b), jnp.stack([0.0 * prot.tau, prot.tau]),
                  options=ODEOptions(rtol=1e-12, atol=1e-12), jump_ts=times[1:-1])[-1]
    return jnp.real(jnp.vdot(psi, HB @ psi)) / prot.tau


def test_optimised_protocol_beats_the_step_independently_checked():
    mp = qb.max_power(qb.charge(M))
    tau = float(mp.time)
    # lambda(t) and the charger frequency u_A(t) w0, both bounded by 1 in magnitude
    prot, res = optimize_protocol(M, 4, tau=tau, tau_bounds=(0.5 * tau, 1.5 * tau), bounds=(-1.0, 1.0),
                                  controls=("coupling", "charger"), restarts=2, steps=150, method="adam",
                                  learning_rate=0.1, progress=False)
    assert res.history.shape == (150, 2)
    assert np.all(np.abs(np.asarray(prot.values)) <= 1.0)
    assert float(res.value) > float(mp.power) * 1.02  # about +6% at convergence (the step is a feasible point)
    np.testing.assert_allclose(_ode_power(M, prot), res.value, rtol=1e-8)
