"""The seed-004 notebook runs top to bottom in quick mode (committed paper-size data + one live paper-size point)."""

import os
import re
from pathlib import Path

import nbformat
from nbclient import NotebookClient

NOTEBOOKS = Path(__file__).resolve().parent.parent / "notebooks"


def test_seed004_notebook_runs(tmp_path):
    nb = nbformat.read(NOTEBOOKS / "004_reservoirs.ipynb", as_version=4)
    os.environ["QBJAX_NOTEBOOK_QUICK"] = "1"
    client = NotebookClient(nb, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}})
    client.execute()
    outputs = "".join(o.get("text", "") for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", []))
    line = next(x for x in outputs.splitlines() if x.startswith("SUMMARY"))
    num = r"([-+0-9.eE]+)"
    value = lambda key: float(re.search(key + r" = " + num, line).group(1))  # noqa: E731
    assert value("live_f") > 0.999  # Fig. 2f live: gamma_up = 2 gamma_down charges all three batteries
    assert value(r"\| a") > 0.999 and abs(value(r"\| b") - 0.5) < 1e-3 and abs(value(r"\| d") - 0.25) < 1e-3
    assert abs(value(r"\| e") - 0.5) < 2e-3 and value(r"\| f") > 0.999 and value("inset") < 1e-4
    assert "claims = True" in line
