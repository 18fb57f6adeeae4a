"""The qbjax command: JSON contract and bad input."""

import json
import subprocess
import sys

import pytest


def run(*args):
    p = subprocess.run([sys.executable, "-m", "qbjax.cli", *args], capture_output=True, text=True, timeout=600)
    return p.returncode, p.stdout, p.stderr


def test_advantage_oscillator_16():
    code, out, err = run("advantage", "oscillator", "--n", "16", "--json")
    assert code == 0, err
    data = json.loads(out)
    assert abs(data["gamma_quantum"] - 4) < 1e-6 and abs(data["gamma_classical"] - 4) < 1e-6
    assert abs(data["ratio"] - 1) < 1e-6
    assert data["params"]["n"] == 16 and data["params"]["g"] == 0.2


def test_charge_keys_and_grad():
    code, out, err = run("charge", "spins", "--n", "3", "--classical", "--grad", "g", "--json")
    assert code == 0, err
    data = json.loads(out)
    for key in ("model", "dynamics", "params", "max_power", "optimal_time", "energy_at_max_power", "grad"):
        assert key in data
    assert data["dynamics"] == "classical" and data["params"]["tilt"] == 0.01
    assert set(data["grad"]) == {"g"}
    assert out.count("\n") == 1  # exactly one JSON object


@pytest.mark.parametrize("args,needle", [
    (("charge", "dicke", "--n", "-3"), "n must be an integer >= 1"),
    (("charge", "dicke", "--n", "2.5"), "--n must be an integer"),
    (("charge", "dicke", "--g", "nan"), "--g must be finite"),
    (("charge", "oscillator", "--g", "-1"), "g must be > 0"),
    (("charge", "battery"), "unknown model"),
    (("charge", "oscillator", "--cutoff", "5"), "unknown flag --cutoff"),
    (("charge", "dicke", "--n", "6", "--cutoff", "6"), "cutoff must be > n"),
    (("charge", "spins", "--grad", "n"), "--grad n"),
    (("frobnicate",), "unknown command"),
])
def test_bad_input(args, needle):
    code, out, err = run(*args, "--json")
    assert code == 2
    assert out == ""
    lines = err.strip().splitlines()
    assert len(lines) == 1 and needle in lines[0], err
