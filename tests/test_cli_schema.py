"""Every command's JSON validates against its schema in docs/schemas (issue 20, item 6)."""

from __future__ import annotations

import contextlib
import io
import json
import pathlib

import jsonschema
import pytest

from qbjax.cli import COMMANDS, main

SCHEMAS = pathlib.Path(__file__).resolve().parents[1] / "docs" / "schemas"

RUNS = {
    "charge": ["charge", "dicke", "--n", "2", "--classical"],
    "advantage": ["advantage", "oscillator", "--n", "2"],
    "collide": ["collide", "--battery", "oscillator", "--levels", "4", "--protocol", "full-swap", "--time", "3"],
    "sweep": ["sweep", "oscillator", "--n", "2", "--g", "0.1,0.2", "--out", "{tmp}/s.csv", "--no-progress"],
    "reproduce": ["reproduce"],
    "demo": ["demo", "--quick", "--out", "{tmp}/report"],
}


def test_every_command_has_a_schema():
    assert set(COMMANDS) == set(RUNS) == {p.stem for p in SCHEMAS.glob("*.json")}


@pytest.mark.timeout(600)
@pytest.mark.parametrize("command", sorted(RUNS))
def test_json_validates(command, tmp_path):
    argv = [a.replace("{tmp}", str(tmp_path)) for a in RUNS[command]] + ["--json"]
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(argv)
    assert code == 0, err.getvalue()[-2000:]
    obj = json.loads(out.getvalue())
    jsonschema.validate(obj, json.loads((SCHEMAS / f"{command}.json").read_text()))
    assert obj["command"] == command
