"""Parameter sweeps: grids, chunking, static groups, sharding over devices, CLI contract."""

import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest
from scipy.optimize import brentq

from qbjax.cli import main
from qbjax.models import DickeBattery
from qbjax.sweep import SweepError, parse_range, product, sweep, zipped

#: sin^2(x)/x peaks where tan x = 2x (oscillator battery, seed 000 Eq. 10).
X_STAR = brentq(lambda x: np.tan(x) - 2 * x, 1.0, 1.4)
PEAK = np.sin(X_STAR) ** 2 / X_STAR


def test_grid_product_zip_and_ranges():
    g = product(n=[1, 2]) * zipped(g=[0.1, 0.2, 0.3], omega0=[1.0, 0.8, 1.2])
    assert g.shape == (2, 3) and g.size == 6 and g.names == ("n", "g", "omega0")
    pts = g.points()
    np.testing.assert_array_equal(pts["n"], [1, 1, 1, 2, 2, 2])
    np.testing.assert_array_equal(pts["omega0"], [1.0, 0.8, 1.2, 1.0, 0.8, 1.2])
    np.testing.assert_allclose(parse_range("0:1:5"), np.linspace(0, 1, 5))
    np.testing.assert_allclose(parse_range("1,2,5"), [1, 2, 5])
    for bad in ("0:1", "0:1:0", "0:1:2.5", "a:b:3", "1:2:3:4", "nan"):
        with pytest.raises(SweepError, match="start:stop:num"):
            parse_range(bad, "g")
    with pytest.raises(SweepError, match="same number"):
        zipped(g=[1, 2], omega0=[1, 2, 3])


@pytest.fixture(scope="module")
def oscillator_sweep():
    grid = product(n=[1, 2]) * zipped(g=[0.1, 0.2, 0.3], omega0=[1.0, 0.8, 1.2])
    # chunks of 2 points: the last chunk of each static group is padded
    return sweep("oscillator", grid, ["max_power", "optimal_time"], chunk_size=2, progress=False), grid


def test_sweep_matches_closed_form_with_static_groups_and_padding(oscillator_sweep):
    res, grid = oscillator_sweep
    pts = grid.points()
    n, g, w = pts["n"], pts["g"], pts["omega0"]
    # E_B = N w0 sin^2(g sqrt(N) t): Pbar = N w0 g sqrt(N) PEAK at taubar = X_STAR / (g sqrt(N))
    np.testing.assert_allclose(res.frame["max_power"], n * w * g * np.sqrt(n) * PEAK, rtol=1e-9)
    np.testing.assert_allclose(res.frame["optimal_time"], X_STAR / (g * np.sqrt(n)), rtol=1e-7)
    assert res.values("max_power").shape == (2, 3)
    info = res.info
    assert [gr["static"] for gr in info["groups"]] == [{"n": 1}, {"n": 2}]
    assert all(gr["chunk_size"] == 2 and gr["chunks"] == 2 for gr in info["groups"])
    assert list(res.frame.columns) == ["n", "g", "omega0", "max_power", "optimal_time"]


def test_memory_budget_sets_the_chunk_and_results_do_not_depend_on_it(oscillator_sweep, tmp_path):
    ref, _ = oscillator_sweep
    small = sweep("oscillator", zipped(g=[0.1, 0.2, 0.3], omega0=[1.0, 0.8, 1.2]), ["max_power", "optimal_time"],
                  n=2, memory_budget=1, progress=False)
    assert small.info["chunk_size"] == 1 and small.info["groups"][0]["chunks"] == 3
    np.testing.assert_allclose(small.frame["max_power"], ref.frame["max_power"][3:], rtol=0, atol=1e-13)
    ref.to_csv(tmp_path / "s.csv")
    back = np.genfromtxt(tmp_path / "s.csv", delimiter=",", names=True)
    np.testing.assert_array_equal(back["max_power"], ref.frame["max_power"])  # %.17g round-trips
    data = json.loads(ref.to_json(tmp_path / "s.json"))
    assert data["info"]["points"] == 6 and len(data["columns"]["g"]) == 6


def test_heat_engine_charging_time_with_window_doubling():
    from qbjax.models import HeatEngineBattery
    from qbjax.steady import open_charging

    T = float(HeatEngineBattery(4, rate=0.1).default_t_max())
    kw = dict(metrics=["charging_time", "steady_energy_density"], n=4, progress=False)
    short = sweep("heat-engine", {"rate": [0.1, 0.3]}, t_max=0.1 * T, **kw)  # 10x too short: retried
    assert short.info["groups"][0]["retried_points"] >= 2
    long = sweep("heat-engine", {"rate": [0.1, 0.3]}, t_max=3 * T, **kw)  # same program, no retry
    assert long.info["groups"][0]["retried_points"] == 0
    np.testing.assert_allclose(short.frame["charging_time"], long.frame["charging_time"], rtol=1e-6)
    ref = open_charging(HeatEngineBattery(4, rate=0.1))
    np.testing.assert_allclose(short.frame["charging_time"][0], ref.charging_time, rtol=1e-6)
    np.testing.assert_allclose(short.frame["steady_energy_density"][0], ref.steady_energy_density, rtol=1e-10)


def test_bad_requests_fail_before_any_work():
    with pytest.raises(SweepError, match="unknown parameter 'gg'.*allowed: n, g, omega0"):
        sweep("oscillator", {"gg": [1.0]})
    with pytest.raises(SweepError, match="unknown metric 'power'"):
        sweep("oscillator", {"g": [1.0]}, "power")
    with pytest.raises(SweepError, match="unknown model 'dickey'"):
        sweep("dickey", {"g": [1.0]})
    from qbjax.models import ParameterError

    with pytest.raises(ParameterError, match="g must be > 0"):
        sweep("dicke", {"g": [0.1, -0.2]})


@pytest.mark.parametrize("argv, needle", [
    (["sweep", "dicke", "--gg", "0:1:3"], "unknown parameter --gg for model 'dicke'; allowed: --n, --g"),
    (["sweep", "dicke", "--g", "0.1:1"], "--g takes start:stop:num"),
    (["sweep", "dicke", "--g", "0.1:1:0"], "num must be an integer >= 1"),
    (["sweep", "dicke", "--g", "0.1:1:3", "--metric", "power"], "--metric power: unknown metric; allowed: max_power"),
    (["sweep", "dickey", "--g", "0.1:1:3"], "unknown model 'dickey'; allowed: oscillator"),
    (["sweep", "dicke", "--g", "-1:1:3"], "g must be > 0"),
    (["sweep", "dicke", "--n", "3"], "at least one swept parameter"),
    (["sweep", "dicke", "--g", "0.1:1:3", "--out", "x.txt"], "--out must end in .csv or .json"),
])
def test_cli_bad_input_exits_2_with_one_line(argv, needle, capsys):
    assert main([*argv, "--json"]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1 and needle in lines[0], captured.err


def test_cli_writes_csv_and_one_json_object(tmp_path, capsys):
    out = tmp_path / "osc.csv"
    # chunks of 2 points (as in the fixture: the compiled program is reused)
    argv = ["sweep", "oscillator", "--n", "2", "--g", "0.1:0.3:3", "--omega0", "1,2", "--metric",
            "max_power,optimal_time", "--out", str(out), "--chunk-size", "2", "--no-progress", "--json"]
    assert main(argv) == 0
    obj = json.loads(capsys.readouterr().out)
    for key in ("out", "points", "devices", "chunk_size", "wall_s", "params", "best"):
        assert key in obj
    assert obj["points"] == 6 and obj["grid_shape"] == [3, 2]
    assert obj["params"]["g"] == {"start": 0.1, "stop": 0.3, "num": 3} and obj["params"]["n"] == 2
    header = out.read_text().splitlines()[0]
    assert header == "g,omega0,max_power,optimal_time"
    rows = np.genfromtxt(out, delimiter=",", names=True)
    np.testing.assert_allclose(rows["max_power"], 2 * rows["omega0"] * rows["g"] * np.sqrt(2) * PEAK, rtol=1e-9)
    assert obj["best"]["g"] == 0.3 and obj["best"]["omega0"] == 2.0


_SHARDED = textwrap.dedent("""
    import os, json
    os.environ["XLA_FLAGS"] = "--xla_force_host_platform_device_count=8"
    import jax, numpy as np
    import qbjax as qb
    from qbjax.sweep import sweep, product
    assert len(jax.devices()) == 8
    def final_power(model, traj):  # a user figure of merit
        return traj.energy[-1] / traj.ts[-1]
    grid = product(g=np.linspace(0.2, 0.4, 13))   # 13 points: not a multiple of 8, the chunk is padded
    kw = dict(metrics=["max_power", "ergotropy", final_power], progress=False)
    m = qb.DickeBattery(2, 0.4, 1.0, cutoff=14)
    eight = sweep(m, grid, **kw)
    one = sweep(m, grid, devices=jax.devices()[:1], **kw)
    cols = ["max_power", "ergotropy", "final_power"]
    diff = max(float(np.max(np.abs(eight.frame[c] - one.frame[c]))) for c in cols)
    # the ergotropy metric against the plain call at the sweep's own max-power time
    mi = qb.DickeBattery(2, 0.2, 1.0, cutoff=14)
    tr = qb.charge(mi, qb.time_grid(mi, num_times=m.default_num_times()))
    mp = qb.max_power(tr, warn=False)
    direct = abs(float(eight.frame["ergotropy"][0]) - float(qb.battery_ergotropy(mi, mp.time)))
    direct = max(direct, abs(float(eight.frame["max_power"][0]) - float(mp.power)))
    print(json.dumps({"diff": diff, "direct": direct, "devices": eight.info["devices"],
                      "one": one.info["devices"], "chunk": eight.info["chunk_size"]}))
""")


def test_sharded_over_eight_virtual_devices_equals_one_device():
    env = dict(os.environ)
    env["XLA_FLAGS"] = "--xla_force_host_platform_device_count=8"
    env.pop("JAX_PLATFORMS", None)
    proc = subprocess.run([sys.executable, "-c", _SHARDED], capture_output=True, text=True, env=env, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert out["devices"] == 8 and out["one"] == 1 and out["chunk"] == 2  # 13 points -> 2 per device
    assert out["diff"] <= 1e-12, out
    assert out["direct"] <= 1e-9, out


def test_sweep_windows_are_checked_before_any_work():
    with pytest.raises(SweepError, match="t_max must be finite and > 0"):
        sweep(DickeBattery, {"g": [0.1, 0.2]}, "max_power", n=2, t_max=-1.0, progress=False)
    with pytest.raises(SweepError, match="num_times must be an integer >= 2"):
        sweep(DickeBattery, {"g": [0.1, 0.2]}, "max_power", n=2, num_times=1, progress=False)


def test_chebyshev_sweep_with_traced_bounds_matches_the_dense_path():
    # one static plan for the group, each point with its own enclosure and window (issue 16, item 5)
    grid = zipped(g=[0.15, 0.4, 0.6], omega0=[1.0, 0.8, 1.2])
    metrics = ["max_power", "optimal_time", "ergotropy", "fluctuation_at_max_power"]
    dense = sweep(DickeBattery, grid, metrics, n=3, cutoff=40, method="spectral", progress=False)
    cheb = sweep(DickeBattery, grid, metrics, n=3, cutoff=40, method="chebyshev", progress=False)
    assert cheb.info["groups"][0]["closed_method"] == "chebyshev"
    assert dense.info["groups"][0]["closed_method"] is None
    for name in metrics:
        np.testing.assert_allclose(cheb.values(name), dense.values(name), rtol=1e-9, atol=1e-12, err_msg=name)
