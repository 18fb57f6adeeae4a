"""Fuzzing (issue 20, item 4): generated specs, grids and parameters, valid and invalid.

Valid inputs give finite, in-range results that agree between two methods; invalid ones raise ValueError
naming the parameter.  The CI profile is small (under a minute on 2 cores: the generated specs share two
compiled shapes); ``QBJAX_FUZZ_PROFILE=local`` runs 300 examples per test.
"""

from __future__ import annotations

import dataclasses
import os

import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import qbjax as qb
from qbjax.operators import Boson, Qubit

settings.register_profile("ci", max_examples=50, deadline=None, suppress_health_check=[HealthCheck.too_slow],
                          derandomize=True)
settings.register_profile("local", max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.load_profile(os.environ.get("QBJAX_FUZZ_PROFILE", "ci"))

real = st.floats(-1.5, 1.5, allow_nan=False, allow_infinity=False)


def _spec(cut, w, drive, g, gx, kappa=0.0):
    """A qubit battery (H_B = (sz + 1)/2, in [0, 1]) charged by a driven cavity; fixed structure."""
    return qb.Spec(space=(("a", Boson(cut)), ("b", Qubit())),
                   charger=(qb.term(w, "a.n"), qb.term(drive, "a.x")),
                   battery=(qb.term(0.5, "b.sz"), qb.term(0.5)),
                   coupling=(qb.term(g, "a.adag", "b.sm"), qb.term(g, "a.a", "b.sp"), qb.term(gx, "a.x", "b.sx")),
                   battery_dofs=("b",), initial=(("a", 1),), classical_initial={},
                   dissipators=(qb.Dissipator(kappa, qb.term(1.0, "a.a")),) if kappa else ())


@given(cut=st.sampled_from([3, 4]), w=st.floats(0.1, 2.0), drive=real, g=real, gx=real,
       start=st.floats(0.0, 3.0), span=st.floats(0.2, 6.0))
@pytest.mark.timeout(600)
def test_valid_closed_specs_are_finite_in_range_and_agree(cut, w, drive, g, gx, start, span):
    spec = _spec(cut, w, drive, g, gx)
    ts = np.linspace(start, start + span, 21)
    exact = qb.charge(spec, ts, method="spectral", truncation_tol=1.0)
    ode = qb.charge(spec, ts, method="ode", truncation_tol=1.0)
    for traj in (exact, ode):
        assert np.all(np.isfinite(traj.energy)) and np.all(np.isfinite(traj.d_energy))
        assert np.all(traj.energy >= -1e-9) and np.all(traj.energy <= 1 + 1e-9)
    np.testing.assert_allclose(exact.energy, ode.energy, atol=1e-8)
    np.testing.assert_allclose(exact.energy[0], 0.0, atol=1e-12)  # ts[0] is the initial time


@given(cut=st.sampled_from([3, 4]), w=st.floats(0.1, 2.0), g=real, kappa=st.floats(0.01, 1.0), span=st.floats(0.2, 6.0))
@pytest.mark.timeout(600)
def test_valid_open_specs_keep_a_state(cut, w, g, kappa, span):
    spec = _spec(cut, w, 0.3, g, 0.0, kappa)
    ts = np.linspace(0.0, span, 21)
    traj = qb.charge(spec, ts, truncation_tol=1.0)
    assert np.all(np.isfinite(traj.energy))
    assert np.all(traj.energy >= -1e-9) and np.all(traj.energy <= 1 + 1e-9)
    rho = np.asarray(traj.final_state)
    assert abs(np.trace(rho) - 1) < 1e-9 and np.min(np.linalg.eigvalsh(rho)) > -1e-8


@given(kind=st.sampled_from(["rate", "hermitian", "grid", "populations", "state"]), x=st.floats(0.01, 3.0))
def test_invalid_inputs_raise_naming_the_parameter(kind, x):
    spec = _spec(3, 1.0, 0.0, 0.4, 0.0)
    ts = np.linspace(0.0, 2.0, 11)
    if kind == "rate":
        with pytest.raises(ValueError, match="rate"):
            qb.Dissipator(-x, qb.term(1.0, "a.a"))
    elif kind == "hermitian":
        with pytest.raises(ValueError, match="not Hermitian"):
            dataclasses.replace(spec, coupling=(qb.term(x, "a.adag", "b.sm"),))
    elif kind == "grid":
        with pytest.raises(ValueError, match="ts must be"):
            qb.charge(spec, ts[::-1] * x)
    elif kind == "populations":
        with pytest.raises(ValueError, match="initial_populations"):
            dataclasses.replace(spec, initial_populations={"b": jnp.array([1.0 + x, -x + 0.5])})
    else:
        with pytest.raises(ValueError, match="initial_state"):
            qb.charge(spec, ts, initial_state=np.full(6, x))
