"""``qbjax charge heat-engine``: the JSON contract and bad input (exit 2, one line)."""

import json
import math

import pytest

from qbjax.cli import main
from qbjax.models.heat_engine import closed_form_steady


def run(capsys, *args):
    code = main(["charge", "heat-engine", *args, "--json"])
    out, err = capsys.readouterr()
    return code, out, err


def test_effective_model_json(capsys):
    code, out, _ = run(capsys, "--n", "6", "--grad", "rate")
    assert code == 0
    data = json.loads(out)
    for key in ("steady_energy_density", "steady_fluctuation", "steady_ergotropy", "charging_time", "params", "grad"):
        assert key in data
    cf = closed_form_steady(6, -0.8)
    assert abs(data["steady_energy_density"] - cf["energy_density"]) < 1e-12
    assert abs(data["steady_ergotropy"] - cf["ergotropy"]) < 1e-10  # the CLI prints Eq. 16 (any unitary)
    assert data["steady_ergotropy_symmetric"] < data["steady_ergotropy"]
    assert data["params"]["beta_omega"] == -0.8 and data["params"]["rate"] == 0.1 and data["params"]["eps"] == 1e-3
    assert abs(data["grad"]["rate"] + data["charging_time"] / 0.1) < 1e-5 * data["charging_time"] / 0.1


def test_individual_protocol(capsys):
    code, out, _ = run(capsys, "--n", "5", "--protocol", "individual", "--beta-omega", "-1.2", "--rate", "0.3")
    data = json.loads(out)
    x = math.exp(1.2)
    assert code == 0 and abs(data["steady_energy_density"] - x / (1 + x)) < 1e-13


def test_full_engine_model(capsys):
    code, out, _ = run(capsys, "--n", "1", "--g", "0.05")
    data = json.loads(out)
    assert code == 0 and data["params"]["model"] == "full" and data["method"] == "lindblad"
    assert abs(data["params"]["effective_beta_omega"] + 0.8) < 1e-12
    cf = closed_form_steady(1, -0.8)
    assert abs(data["steady_energy_density"] - cf["energy_density"]) < 1e-9


@pytest.mark.parametrize("args, needle", [
    (["--n", "0"], "--n"),
    (["--rate", "0"], "--rate"),
    (["--rate", "-1"], "--rate"),
    (["--eps", "1"], "--eps"),
    (["--eps", "0"], "--eps"),
    (["--protocol", "both"], "--protocol"),
    (["--gamma-h", "-1"], "--gamma-h"),
    (["--n", "6", "--g", "0.1"], "--n must be <= 3"),
    (["--grad", "n"], "--grad"),
    (["--effective"], "--effective"),
    # issue 18, item 4: the edges of the open models (each refused within seconds, before any work)
    (["--beta-omega=-1e6"], "--beta-omega must be in [-50, 50]"),
    (["--beta-omega", "-1e6"], "--beta-omega must be in [-50, 50]"),
    (["--env-beta-omega", "1e3"], "--env-beta-omega must be in [-50, 50]"),
    (["--n", "3000", "--method", "lindblad"], "--n must be <= 1023 with --method lindblad"),
    (["--n", "1e12"], "the largest n here is"),
    (["--n", "1e30"], "--n must be an integer in [1, 2^53"),
])
def test_bad_input_exits_2(capsys, args, needle):
    code, out, err = run(capsys, *args)
    assert code == 2 and out == ""
    assert needle in err and len(err.strip().splitlines()) == 1


@pytest.mark.parametrize("beta_omega", ["0.8", "0", "50"])
def test_a_positive_temperature_discharges_to_the_thermal_state(capsys, beta_omega):
    """beta omega0 >= 0 is computed, not refused (issue 18): the steady state is the thermal distribution
    p_m ~ e^{-beta omega0 m} of the closed forms (continued to beta >= 0 by summing the distribution),
    to 1e-9; the ergotropy is in [0, E]."""
    code, out, err = run(capsys, "--n", "10", "--beta-omega", beta_omega)
    assert code == 0, err
    data = json.loads(out)
    b = float(beta_omega)
    cf = closed_form_steady(10, b)
    assert abs(data["steady_energy_density"] - cf["energy_density"]) < 1e-9
    assert abs(data["closed_form"]["steady_energy_density"] - cf["energy_density"]) < 1e-15
    m = [k for k in range(11)]
    w = [math.exp(-b * k) for k in m]
    assert abs(cf["energy_density"] - sum(k * x for k, x in zip(m, w)) / sum(w) / 10) < 1e-14
    assert -1e-12 <= data["steady_ergotropy"] <= data["steady_energy"] + 1e-12
    assert data["charging_time"] > 0


def test_closed_forms_agree_with_the_sums_they_replace():
    """Above N = 10^6 the closed forms are used directly: at N = 10, 200 they equal the direct sums
    to 1e-12 for beta omega0 = +-0.8, +-3, and mirror at beta omega0 > 0."""
    import qbjax.models.heat_engine as he

    for n in (10, 200):
        for b in (-0.8, -3.0, 0.8, 3.0):
            direct = closed_form_steady(n, b)
            saved, he._DIRECT_SUMS = he._DIRECT_SUMS, 0
            try:
                formula = closed_form_steady(n, b)
            finally:
                he._DIRECT_SUMS = saved
            for key, value in direct.items():
                assert abs(value - formula[key]) < 1e-12 * max(1.0, abs(value)), (n, b, key)
