"""The seed-000 notebook runs top to bottom (small sizes)."""

import os
from pathlib import Path

import nbformat
from nbclient import NotebookClient

NOTEBOOKS = Path(__file__).resolve().parent.parent / "notebooks"


def test_seed000_notebook_runs(tmp_path):
    nb = nbformat.read(NOTEBOOKS / "000_quantum_vs_classical.ipynb", as_version=4)
    os.environ["QBJAX_NOTEBOOK_QUICK"] = "1"
    client = NotebookClient(nb, timeout=900, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}})
    client.execute()
    outputs = "".join(o.get("text", "") for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", []))
    assert "Gamma_qu = 4.0" in outputs or "Gamma_qu = 3.99999" in outputs
