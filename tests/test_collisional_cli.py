"""``qbjax collide``: the JSON contract and bad input (in-process, through ``qbjax.cli.main``)."""

import contextlib
import io
import json
import math

import pytest

from qbjax.cli import main
from qbjax.collisional import R0, oscillator_bound


def run(*args):
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(["collide", *args])
    return code, out.getvalue(), err.getvalue()


@pytest.mark.parametrize("args,needle", [
    (("--q", "1.5"), "--q must be in [0, 1], got 1.5"),
    (("--q", "-0.1"), "--q must be in [0, 1]"),
    (("--coherence", "2"), "--coherence must be in [0, 1]"),
    (("--theta", "-0.1"), "--theta must be > 0"),
    (("--theta", "-0.01pi"), "--theta must be > 0"),
    (("--theta", "0.1rad"), "--theta must be an angle in radians"),
    (("--loss", "1"), "--loss must be in [0, 1)"),
    (("--loss", "-0.5"), "--loss must be in [0, 1)"),
    (("--levels", "1"), "--levels must be an integer >= 2"),
    (("--levels", "-5"), "--levels must be an integer >= 2"),
    (("--levels", "2.5"), "--levels must be an integer"),
    (("--battery", "rotor"), "--battery must be one of oscillator, spin, ladder"),
    (("--protocol", "random"), "--protocol must be one of full-swap, greedy, constant, optimized"),
    (("--time", "0"), "--time must be > 0"),
    (("--time", "nan"), "--time must be finite"),
    (("--battery", "spin", "--loss", "0.01"), "--loss must be 0 for --battery spin"),
    (("--protocol", "greedy", "--theta", "0.1"), "--theta applies to --protocol constant or optimized"),
    (("--protocol", "constant", "--collisions", "10"), "--collisions applies to --protocol optimized"),
    (("--protocol", "full-swap", "--time", "1"), "--time must be >= 1.5708 for one full swap"),
    (("--frobnicate", "1"), "unrecognized arguments"),
])
def test_bad_input_exits_2_with_one_line(args, needle):
    code, out, err = run(*args, "--json")
    assert code == 2 and out == ""
    assert len(err.strip().splitlines()) == 1 and needle in err, err


def test_constant_protocol_json():
    code, out, err = run("--levels", "60", "--time", "10", "--theta", "0.01pi", "--json")
    assert code == 0, err
    assert out.count("\n") == 1
    data = json.loads(out)
    for key in ("energy", "ergotropy", "average_power", "collisions", "incoherent_bound_energy", "params"):
        assert key in data
    p = data["params"]
    assert p == {"battery": "oscillator", "levels": 60, "protocol": "constant", "theta": 0.01 * math.pi, "q": 0.5,
                 "coherence": 1.0, "phase": 0.0, "time": 10.0, "loss": 0.0}
    assert data["collisions"] == 318  # floor(10 / 0.01 pi)
    assert abs(data["time_used"] - 318 * 0.01 * math.pi) < 1e-12
    assert abs(data["average_power"] - data["energy"] / data["time_used"]) < 1e-12
    assert abs(data["incoherent_bound_energy"] - float(oscillator_bound(data["time_used"]))) < 1e-12
    # coherent charging near the driving limit beats the incoherent bound here (Fig. 3)
    assert data["energy"] > data["incoherent_bound_energy"] and data["ergotropy"] <= data["energy"]


def test_full_swap_defaults_to_excited_incoherent_units():
    code, out, err = run("--protocol", "full-swap", "--levels", "15", "--time", "10", "--json")
    assert code == 0, err
    data = json.loads(out)
    assert data["params"]["q"] == 0.0 and data["params"]["coherence"] == 0.0 and "theta" not in data["params"]
    assert abs(data["energy"] - 14) < 1e-12 and abs(data["ergotropy"] - 14) < 1e-12  # Eq. 17: 14 swaps fit
    assert data["collisions"] == 14 and len(data["schedule"]) == 14 and data["average_power"] > R0
    # the staircase reaches the top kept level: a warning on stderr and in the JSON, not an error
    assert "warning" in err and "increase levels" in err
    assert any("top kept Fock level" in w for w in data["warnings"])
