"""Never silently wrong (issue 20): each row of the bad-input table gives the right answer or a clear error."""

from __future__ import annotations

import dataclasses
import warnings

import jax.numpy as jnp
import numpy as np
import pytest
from helpers import cavity_qubit

import qbjax as qb
from qbjax.analysis import replace_params
from qbjax.optimize import Ball, Box, Sphere


def test_a_grid_too_coarse_for_the_oscillation_is_not_certified():
    m = qb.OscillatorBattery(4, 0.2)
    with pytest.warns(UserWarning, match="does not resolve"):
        coarse = qb.max_power(qb.charge(m, t_max=1e6))
    assert not bool(coarse.certified) and not bool(coarse.resolved)
    # a grid that resolves the beat: the closed form P = N sqrt(N) g w0 max sin^2(x)/x to 1e-6
    fine = qb.max_power(qb.charge(m))
    y = 0.7246113537767085  # max_x sin^2(x)/x at x = 1.1655611852072114
    assert bool(fine.certified) and bool(fine.resolved)
    assert abs(float(fine.power) - 4 * 2 * 0.2 * y) < 1e-6
    assert "power=1.15937" in repr(fine)  # a result prints its numbers


@pytest.mark.parametrize("ts, match", [
    ([0.0, 2.0, 1.0, 3.0], "strictly increasing"),
    (np.linspace(0, -5, 11), "strictly increasing"),
    ([0.0, 1.0, 1.0, 2.0], "strictly increasing"),
    ([0.0], "at least 2 times"),
    (np.linspace(0, 1, 6).reshape(3, 2), "1-D"),
    ([0.0, np.nan, 1.0], "finite"),
])
def test_bad_grids_are_refused(ts, match):
    with pytest.raises(ValueError, match=match):
        qb.charge(qb.OscillatorBattery(2, 0.2), ts)


def test_parameters_however_set_are_checked():
    with pytest.raises(ValueError, match="g"):
        qb.OscillatorBattery(2, -1.0)
    with pytest.raises(ValueError):
        qb.charge(replace_params(qb.OscillatorBattery(2, 0.2), g=-1.0))
    with pytest.raises(ValueError, match="t_max must be finite and > 0"):
        qb.time_grid(qb.OscillatorBattery(2, 0.2), t_max=-1)


def test_a_non_hermitian_hamiltonian_is_refused():
    sys = cavity_qubit(4, g=0.3)
    spec = sys.spec
    with pytest.raises(ValueError, match=r"H_I \(coupling\) is not Hermitian.*no conjugate"):
        dataclasses.replace(spec, coupling=(qb.term(0.3, "a.a", "b.sp"),))
    with pytest.raises(ValueError, match="conjugate is"):
        dataclasses.replace(spec, coupling=(qb.term(0.3j, "a.a", "b.sp"), qb.term(0.3j, "a.adag", "b.sm")))
    with pytest.raises(ValueError, match="H_A .* not Hermitian"):
        dataclasses.replace(spec, charger=(qb.term(1.0 + 0.1j, "a.n"),))
    # Hermitian through conjugate pairs, products on one dof, and complex conjugate coefficients: accepted
    dataclasses.replace(spec, coupling=(qb.term(0.3j, "a.a", "b.sp"), qb.term(-0.3j, "a.adag", "b.sm"),
                                        qb.term(0.2, "a.adag", "a.a"), qb.term(0.1, "a.x", "a.x")))


@pytest.mark.parametrize("make, match", [
    (lambda: qb.DickeBattery(n=10**6), "largest n here is"),
    (lambda: qb.DickeBattery(4, cutoff=10**8), "largest cutoff here is"),
    (lambda: qb.SpinBattery(10**5), "largest n here is"),
    (lambda: qb.OscillatorBattery(10**5), "largest n here is"),
    (lambda: qb.models.HeatEngineBattery(10**12), "largest n here is"),
])
def test_sizes_are_refused_before_work_with_the_largest_value(make, match):
    with pytest.raises(ValueError, match=match):
        make()


def test_optimiser_inputs():
    for c in (lambda: Sphere(-1.0), lambda: Ball(0.0), lambda: Sphere(float("nan")), lambda: Box(1.0, 0.5)):
        with pytest.raises(ValueError):
            c()
    with pytest.raises(FloatingPointError, match=r"starting point \{'a': 1.0\}"):
        qb.optimize(lambda x: jnp.nan * x["a"], {"a": 1.0}, steps=2, progress=False)
    with pytest.raises(ValueError, match="tau must be a finite time > 0"):
        qb.optimize_model(qb.DickeBattery(2, 0.2), {"g": Box(0.05, 1.0)}, "energy_at", tau=-1.0, steps=2)


def test_no_warning_on_a_resolved_default_grid():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        qb.max_power(qb.charge(qb.SpinBattery(4, 0.2)))


def test_an_accuracy_target_reaches_the_adaptive_methods():
    m = qb.DickeBattery(3, 0.5)
    ts = np.linspace(0.0, 2.0, 41)
    exact = np.asarray(qb.charge(m, ts, method="spectral").energy)
    loose = np.asarray(qb.charge(m, ts, method="ode", rtol=1e-5, atol=1e-5).energy)
    tight = np.asarray(qb.charge(m, ts, method="ode", rtol=1e-11).energy)
    err_loose, err_tight = np.max(np.abs(loose - exact)), np.max(np.abs(tight - exact))
    assert err_tight < 1e-8 < err_loose < 1e-2
    with pytest.raises(ValueError, match="rtol must be a number in"):
        qb.charge(m, ts, rtol=-1.0)
    with pytest.raises(ValueError, match="not both"):
        qb.charge(m, ts, rtol=1e-6, options=qb.ODEOptions())


def test_a_steady_metric_on_a_closed_model_is_refused_before_work():
    from qbjax.sweep import SweepError

    with pytest.raises(SweepError, match="needs an open"):
        qb.sweep(qb.DickeBattery, qb.product(g=[0.1, 0.2]), ["charging_time"], n=2, progress=False)
