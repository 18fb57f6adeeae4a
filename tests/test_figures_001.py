"""Seed 001 figures (quick sizes): PNG + JSON written, and the physics in the data."""

import json
import math

import pytest

from qbjax.figures.seed001 import FIGURES
from qbjax.models.heat_engine import closed_form_steady


@pytest.fixture(scope="module")
def figures(tmp_path_factory):
    out = tmp_path_factory.mktemp("seed001")
    # one process: the figures share compiled programs (one per N)
    results = {name: f(out=str(out), quick=True, verbose=False) for name, f in FIGURES.items()}
    data = {}
    for name, r in results.items():
        assert r["figure"] == name
        with open(r["data"]) as fh:
            data[name] = json.load(fh)
        assert (out / f"{name}.png").stat().st_size > 10_000
    return data


def test_fig2_energy_density_rises_to_one(figures):
    d = figures["heat-fig2"]
    e = [r["energy_density"] for r in d["rows"]]
    assert all(b > a for a, b in zip(e, e[1:])) and e[-1] < 1.0
    for r in d["rows"]:
        assert abs(r["energy_density"] - closed_form_steady(r["n"], -0.8)["energy_density"]) < 1e-10
        assert abs(r["fluctuation"] - closed_form_steady(r["n"], -0.8)["fluctuation"]) < 1e-9
        # individual: e_1 for every N, sigma ~ sqrt(N)
        assert abs(r["individual_energy_density"] - 1 / (1 + math.exp(-0.8))) < 1e-12
    c = d["curves"]
    # collective charges higher and faster than individual (Fig. 2a)
    assert c["collective"]["steady_energy"] > c["individual"]["steady_energy"]
    assert c["collective"]["charging_time"] < c["individual"]["charging_time"]
    col = c["collective"]
    assert abs(col["energy"][-1] - col["steady_energy"]) < 1e-3 * col["steady_energy"]


def test_fig3_ergotropy_ratios(figures):
    d = figures["heat-fig3"]
    assert abs(d["individual_ratio"] - (1 - math.exp(-0.8))) < 1e-12
    ratios = [r["ratio"] for r in d["rows"]]
    assert all(b > a for a, b in zip(ratios, ratios[1:]))
    for r in d["rows"]:
        assert abs(r["ratio"] - r["eq16_ratio"]) < 1e-10
        if r["n"] > 1:  # the symmetric sector locks more energy than any-unitary extraction
            assert r["ratio_symmetric"] < r["ratio"]


def test_fig4_fig5_speedup(figures):
    rows = figures["heat-fig4"]["rows"]
    sp = [r["speedup"] for r in rows]
    assert sp[0] == 1.0 and all(b > a for a, b in zip(sp, sp[1:]))
    big = rows[-1]
    assert big["n"] >= 1000 and 0.5 < big["speedup"] / big["n_over_log_n"] < 2.0
    # Eq. 20's cascade sum is an order-of-magnitude estimate of tau_N
    assert 0.5 < big["tau"] / big["eq20_tau"] < 2.0
    for r in figures["heat-fig5"]["rows"]:
        assert 0.3 < r["normalised"] < 2.0


def test_validity_deviation_shrinks_with_g(figures):
    rows = figures["heat-validity"]["rows"]
    one = sorted((r for r in rows if r["n"] == 1), key=lambda r: -r["g"])
    assert len(one) >= 2
    devs = [r["max_abs_dev_per_battery"] for r in one]
    assert all(b < 0.7 * a for a, b in zip(devs, devs[1:]))
    for r in rows:  # same steady state
        assert abs(r["final_full"] - r["final_effective"]) < 1e-3
        assert abs(r["effective_beta_omega"] + 0.8) < 1e-12
