"""The seed-003 notebook runs top to bottom in quick mode (small live sizes, stored paper-size data)."""

import os
from pathlib import Path

import nbformat
from nbclient import NotebookClient

NOTEBOOKS = Path(__file__).resolve().parent.parent / "notebooks"


def test_seed003_notebook_runs(tmp_path):
    nb = nbformat.read(NOTEBOOKS / "003_collisional.ipynb", as_version=4)
    os.environ["QBJAX_NOTEBOOK_QUICK"] = "1"
    client = NotebookClient(nb, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}})
    client.execute()
    outputs = "".join(o.get("text", "") for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", []))
    assert "oscillator advantage R0^-2 = 1.9045" in outputs
    assert "spin advantage R0^-1 = 1.3801" in outputs
    # the live check of the collision scan against the dense computation and App. A
    line = next(s for s in outputs.splitlines() if s.startswith("max |rho_scan - rho_dense"))
    assert float(line.split("=")[-1]) < 1e-12
