"""Methods are values: every qbjax.methods class runs through charge and agrees with its string alias."""

from __future__ import annotations

import contextlib
import io
import json

import numpy as np
import pytest
from helpers import assert_tree_allclose

import qbjax as qb
from qbjax import methods
from qbjax.cli import main
from qbjax.models import HeatEngineBattery, HeatEngineFull
from qbjax.status import SolverError

DICKE = qb.DickeBattery(2, 0.4)
TS = qb.time_grid(DICKE, num_times=33)


@pytest.mark.parametrize("alias", methods.CLOSED_NAMES)
def test_closed_method_values_agree_with_their_aliases(alias):
    by_name = qb.charge(DICKE, TS, method=alias)
    value = methods.ALIASES[alias]
    by_value = qb.charge(DICKE, TS, method=value)
    assert_tree_allclose(by_value, by_name)  # same structure (method names included), same numbers
    # and every method agrees with the exact spectral answer (ODE saves via the interpolant: 1e-8)
    exact = qb.charge(DICKE, TS, method=methods.Spectral())
    np.testing.assert_allclose(by_value.energy, exact.energy, rtol=0, atol=1e-8)


def test_open_and_classical_method_values():
    full = HeatEngineFull(n=1, g=0.04)
    ts = qb.time_grid(full, num_times=9)
    np.testing.assert_array_equal(qb.charge(full, ts, method=methods.Lindblad()).energy,
                                  qb.charge(full, ts, method="lindblad").energy)
    eff = HeatEngineBattery(n=6, beta_omega=-0.8, rate=0.1)
    te = qb.time_grid(eff, num_times=9)
    assert qb.charge(eff, te, method=methods.Rates()).method == "rates"
    np.testing.assert_array_equal(qb.charge(eff, te, method=methods.Rates()).energy,
                                  qb.charge(eff, te, method="rates").energy)
    np.testing.assert_array_equal(qb.charge(DICKE, TS, method=methods.Hamilton()).energy,
                                  qb.charge(DICKE, TS, classical=True).energy)


def test_a_method_value_carries_its_options():
    starved = methods.ODE(options=qb.ODEOptions(max_steps=3))
    with pytest.raises(SolverError, match="max_steps"):
        qb.charge(DICKE, TS, method=starved)
    loose = qb.charge(DICKE, TS, method=methods.ODE(options=qb.ODEOptions(rtol=1e-4, atol=1e-4)))
    tight = qb.charge(DICKE, TS, method=methods.ODE())
    assert 1e-9 < float(np.max(np.abs(loose.energy - tight.energy))) < 1e-2


def test_unknown_methods_are_refused_naming_the_table():
    with pytest.raises(ValueError, match="'chebyshev'.*'dense-ode'"):
        qb.charge(DICKE, TS, method="magic")
    with pytest.raises(ValueError, match="dissipative spec takes method 'auto', 'rates', 'lindblad'"):
        qb.charge(HeatEngineFull(n=1, g=0.04), method=methods.Spectral())


def test_cli_method_choices_come_from_the_table():
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        code = main(["charge", "dicke", "--n", "2", "--g", "0.4", "--method", "krylov", "--json"])
    assert code == 0
    assert json.loads(out.getvalue())["max_power"] > 0


def test_ts0_is_the_initial_time_for_every_method():
    """ts[0] is the initial time (issue 17, item 5): a grid from 0.5 gives the run from 0, shifted, for every
    method (spectral 0.2237 against 0.1559 before); max_power counts tau from ts[0]."""
    import warnings

    from qbjax.model import Dissipator

    m = qb.DickeBattery(2, 0.4, cutoff=12)
    ts0 = np.linspace(0.0, 3.0, 61)
    ref = qb.charge(m, ts0, method="spectral")
    mp0 = qb.max_power(ref, warn=False)
    for method in ("auto", "spectral", "chebyshev", "krylov", "ode", "dense-ode"):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            traj = qb.charge(m, ts0 + 0.5, method=method)
        np.testing.assert_allclose(traj.energy, ref.energy, atol=1e-8, err_msg=method)
        np.testing.assert_allclose(np.asarray(traj.ts), ts0 + 0.5)
        mp = qb.max_power(traj, warn=False)
        assert float(mp.power) == pytest.approx(float(mp0.power), rel=1e-8), method
        assert float(mp.time) == pytest.approx(float(mp0.time) + 0.5, rel=1e-8), method
    import dataclasses

    from qbjax.model import term

    lossy = dataclasses.replace(m.spec(), dissipators=(Dissipator(0.05, (term(1.0, "a.a"),)),))
    a = qb.charge(lossy, ts0[:21], method="lindblad")
    b = qb.charge(lossy, ts0[:21] + 0.5, method="lindblad")
    np.testing.assert_allclose(b.energy, a.energy, atol=1e-9)
