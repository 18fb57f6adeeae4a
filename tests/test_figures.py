"""Figure commands write PNG + JSON (small sizes)."""

import json

from qbjax.cli import main


def test_reproduce_list(capsys):
    assert main(["reproduce", "--json"]) == 0
    listing = json.loads(capsys.readouterr().out)
    assert set(listing["figures"]) >= {"oscillator", "fig2", "fig3"}


def test_demo_quick(tmp_path, capsys):
    assert main(["demo", "--quick", "--out", str(tmp_path / "report"), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    text = open(out["report"]).read()
    fig2 = json.load(open(tmp_path / "report" / "fig2.json"))
    assert all(abs(r["gamma_classical"] - r["n"]) < 1e-7 for r in fig2["rows"])
    assert (tmp_path / "report" / "fig3.png").stat().st_size > 10_000
    assert "| oscillator | 4 | 2.0000 | 2.0000 | 1.0000 |" in text
    assert len(out["figures"]) == 3
