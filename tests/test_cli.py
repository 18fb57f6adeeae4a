"""The qbjax command: JSON contract and bad input."""

import json
import subprocess
import sys

import pytest

from qbjax.cli import main


def run(*args):
    """In-process (shares compiled code across tests); see test_entry_point for the real command."""
    import contextlib
    import io

    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(list(args))
    return code, out.getvalue(), err.getvalue()


def test_entry_point():
    p = subprocess.run([sys.executable, "-m", "qbjax.cli", "charge", "dicke", "--n", "-1", "--json"],
                       capture_output=True, text=True, timeout=300)
    assert p.returncode == 2 and p.stdout == "" and len(p.stderr.strip().splitlines()) == 1


def test_advantage_oscillator_16():
    code, out, err = run("advantage", "oscillator", "--n", "16", "--json")
    assert code == 0, err
    data = json.loads(out)
    assert abs(data["gamma_quantum"] - 4) < 1e-6 and abs(data["gamma_classical"] - 4) < 1e-6
    assert abs(data["ratio"] - 1) < 1e-6
    assert data["params"]["n"] == 16 and data["params"]["g"] == 0.2


def test_charge_keys_and_grad():
    code, out, err = run("charge", "spins", "--n", "3", "--grad", "g", "--grad", "omega0", "--json")
    assert code == 0, err
    data = json.loads(out)
    for key in ("model", "dynamics", "params", "max_power", "optimal_time", "energy_at_max_power", "grad"):
        assert key in data
    assert data["dynamics"] == "quantum" and set(data["grad"]) == {"g", "omega0"}
    assert out.count("\n") == 1  # exactly one JSON object
    code, out, err = run("charge", "spins", "--n", "3", "--classical", "--json")
    data = json.loads(out)
    assert data["dynamics"] == "classical" and data["params"]["tilt"] == 0.01


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


@pytest.mark.parametrize("args, needle", [
    (["sweep", "dicke", "--n", "4", "--g", "0.1,0.2", "--out", "/proc/nope/x.csv"], "--out /proc/nope/x.csv"),
    (["reproduce", "oscillator", "--out", "/proc/forbidden"], "--out /proc/forbidden"),
    (["sweep", "dicke", "--n", "4", "--g", "0.1:0.5:10000000", "--out", "unused.csv"], "--g"),
    (["collide", "--levels", "1000000", "--time", "1"], "--levels 1000000"),
    (["collide", "--protocol", "optimized", "--levels", "50", "--time", "5", "--collisions", "100000000"],
     "--collisions 100000000"),
    (["collide", "--time", "1e9"], "--time"),
    (["charge", "dicke", "--n", "1000000"], "--n 1000000"),
])
def test_outputs_and_sizes_are_checked_before_any_work(args, needle, tmp_path, monkeypatch):
    """Unwritable outputs and runs that cannot fit or finish here: exit 2, one line naming the parameter, at once."""
    import time

    monkeypatch.chdir(tmp_path)
    start = time.perf_counter()
    code, out, err = run(*args, "--json")
    assert code == 2 and out == "", err
    assert len(err.strip().splitlines()) == 1 and needle in err, err
    assert time.perf_counter() - start < 20
    assert not (tmp_path / "unused.csv").exists()


def test_long_runs_report_elapsed_time_on_stderr(monkeypatch, capsys):
    # a compiled run cannot report progress without a host callback: a host thread reports elapsed time
    import time

    from qbjax.cli.common import Working

    monkeypatch.setenv("QBJAX_PROGRESS", "1")
    with Working("qbjax charge", 30.0, every=0.2):
        time.sleep(0.5)
    with Working("quick", 1.0, every=5.0):
        pass
    err = capsys.readouterr().err.splitlines()
    assert len(err) >= 2 and all(line.startswith("qbjax charge: working, ") for line in err)
    assert "estimated at most 30 s" in err[0]


def _exit_code(*args):
    """``main`` returns a code, or argparse's help exits: either way the code (output left to capsys)."""
    try:
        return main(list(args))
    except SystemExit as e:
        return e.code


def test_the_command_line_explains_itself(capsys):
    import qbjax

    code, out, _ = run("--version")
    assert code == 0 and out.strip() == f"qbjax {qbjax.__version__}"
    code, out, _ = run("--help")
    assert code == 0 and "sweep" in out and "reservoirs" in out and "spin-chain" in out
    code = _exit_code("sweep", "--help")
    assert code == 0 and "--metric" in capsys.readouterr().out
    code = _exit_code("charge", "dicke", "--help")
    text = capsys.readouterr().out
    assert code == 0 and "--cutoff" in text and "integer > n" in text and "(default 0.5)" in text


@pytest.mark.parametrize("args, needle", [
    (["charge", "dicke", "--n", "4", "--n", "5"], "--n given more than once"),
    (["charge", "dicke", "--t-max", "1", "--t-max", "2"], "--t-max given more than once"),
    (["advantage", "spin-chain"], "allowed: oscillator, spins, dicke"),
])
def test_repeated_flags_and_refusals_list_only_what_is_allowed(args, needle):
    code, out, err = run(*args, "--json")
    assert code == 2 and out == "" and needle in err, err
    if "allowed" in needle:
        assert "spin-chain" not in err.split("allowed:")[1]


def test_negative_numbers_in_any_notation_are_values():
    code, out, err = run("charge", "heat-engine", "--n", "3", "--beta-omega", "-8e-1", "--json")
    assert code == 0, err
    assert json.loads(out)["params"]["beta_omega"] == -0.8


def test_model_help_lists_defaults(capsys):
    code = _exit_code("charge", "heat-engine", "--help")
    text = capsys.readouterr().out
    assert code == 0 and "--beta-omega" in text and "(default: -0.8)" in text
