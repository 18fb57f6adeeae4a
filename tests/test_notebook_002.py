"""The seed-002 notebook (spin-chain battery) runs top to bottom in quick mode."""

import os
import re
from pathlib import Path

import nbformat
from nbclient import NotebookClient

NOTEBOOKS = Path(__file__).resolve().parent.parent / "notebooks"


def test_seed002_notebook_runs(tmp_path):
    nb = nbformat.read(NOTEBOOKS / "002_spin_chain.ipynb", as_version=4)
    os.environ["QBJAX_NOTEBOOK_QUICK"] = "1"
    client = NotebookClient(nb, timeout=900, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}})
    client.execute()
    outputs = "".join(o.get("text", "") for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", []))
    # Eq. 11: P^(1) = 1.4492 omega B at omega T = 1.1656 (tan x = 2x)
    assert "P1/(omega B) = 1.4492 at omega T = 1.1656" in outputs
    # Sec. III B: the three-spin effective coupling 3 w^3/(8 g^2) at g = 100, w = 3
    ratio = float(re.search(r"g =   100: .*N=3 J_eff/\(3 w\^3/\(8 g\^2\)\) = ([0-9.]+)", outputs).group(1))
    assert abs(ratio - 1) < (3 / 100) ** 2
    # gradients agree with finite differences
    diffs = [float(x) for x in re.findall(r"rel\. diff ([0-9.e+-]+)", outputs)]
    assert len(diffs) == 3 and max(diffs) < 1e-6
