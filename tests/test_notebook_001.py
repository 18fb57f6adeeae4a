"""The seed-001 notebook runs top to bottom (small sizes) and reproduces the closed forms."""

import math
import os
import re
from pathlib import Path

import nbformat
from nbclient import NotebookClient

from qbjax.models.heat_engine import closed_form_steady

NOTEBOOKS = Path(__file__).resolve().parent.parent / "notebooks"


def test_seed001_notebook_runs(tmp_path):
    nb = nbformat.read(NOTEBOOKS / "001_heat_engines.ipynb", as_version=4)
    os.environ["QBJAX_NOTEBOOK_QUICK"] = "1"
    client = NotebookClient(nb, timeout=900, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}})
    client.execute()
    outputs = "".join(o.get("text", "") for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", []))
    line = next(x for x in outputs.splitlines() if x.startswith("SUMMARY"))
    num = r"([-+0-9.eE]+)"
    e10 = float(re.search(r"e_10 = " + num, line).group(1))
    assert abs(e10 - closed_form_steady(10, -0.8)["energy_density"]) < 1e-11
    assert float(re.search(r"max\|e-Eq14\| = " + num, line).group(1)) < 1e-10
    assert float(re.search(r"rates-vs-lindblad = " + num, line).group(1)) < 1e-8
    m = re.search(r"tau_1/tau_(\d+) = " + num, line)
    n, speedup = int(m.group(1)), float(m.group(2))
    assert 0.5 < speedup / (n / math.log(n)) < 2.0
    assert float(re.search(r"grad-scaling = " + num, line).group(1)) < 1e-6
