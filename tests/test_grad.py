"""Gradients of the maximum power against central finite differences."""

import numpy as np
import pytest

import qbjax as qb
from qbjax.analysis import max_power_grad, replace_params
from qbjax.metrics import max_power


def fd(model, name, ts, h, **kw):
    v = float(getattr(model, name))
    up = max_power(qb.charge(replace_params(model, **{name: v + h}), ts, **kw)).power
    dn = max_power(qb.charge(replace_params(model, **{name: v - h}), ts, **kw)).power
    return float((up - dn) / (2 * h))


@pytest.mark.parametrize("model,kw", [
    (qb.OscillatorBattery(4, 0.2, 1.0), {}),
    (qb.SpinBattery(3, 0.3, 1.0), {}),
    (qb.DickeBattery(3, 0.5, 1.0), {}),
    (qb.DickeBattery(2, 0.5, 1.0), {"classical": True}),
], ids=["oscillator", "spins", "dicke", "dicke-classical"])
def test_grad_vs_finite_differences(model, kw):
    ts = qb.time_grid(model)
    params = ["g", "omega0"]
    _, grads = max_power_grad(model, params, **kw)
    for name in params:
        ref = fd(model, name, ts, 1e-5, **kw)
        np.testing.assert_allclose(float(grads[name]), ref, rtol=1e-5, atol=1e-9)


def test_oscillator_grad_closed_form():
    # Pbar = N sqrt(N) g w0 Y: dPbar/dg = Pbar / g
    m = qb.OscillatorBattery(4, 0.2, 1.0)
    p, grads = max_power_grad(m, ["g"])
    np.testing.assert_allclose(grads["g"], p / 0.2, rtol=1e-8)
