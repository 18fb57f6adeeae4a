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
])
def test_bad_input_exits_2(capsys, args, needle):
    code, out, err = run(capsys, *args)
    assert code == 2 and out == ""
    assert needle in err and len(err.strip().splitlines()) == 1
