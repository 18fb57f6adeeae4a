"""The sweep and optimisation paths, twice, each in a fresh process: they complete.

The README's sweep and L-BFGS examples used to deadlock inside compiled
programs in most runs (jaxlib 0.10's batched CPU LAPACK kernels wait on
XLA's own thread pool; see ``qbjax.linalg``).  A hang here fails after the
per-run timeout instead of eating the CI budget.
"""

from __future__ import annotations

import pathlib
import subprocess
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]

SCRIPT = """
import numpy as np, qbjax as qb
from qbjax.optimize import Box, optimize_model
res = qb.sweep(qb.DickeBattery, qb.product(g=np.linspace(0.1, 0.5, 12), omega0=[0.9, 1.1]),
               ["max_power", "ergotropy"], n=3, progress=False)
assert np.all(np.isfinite(res.values("max_power")))
best, r = optimize_model(qb.DickeBattery(3, 0.2), {"g": Box(0.05, 1.0)}, "energy_at", tau=2.0,
                         optimizer="lbfgs", restarts=4, steps=8, progress=False)
assert np.isfinite(float(r.value))
print("completed")
"""


@pytest.mark.timeout(400)
@pytest.mark.parametrize("run", range(2))
def test_sweep_and_lbfgs_complete_in_fresh_processes(run):
    proc = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0 and "completed" in proc.stdout, proc.stderr[-3000:]


@pytest.mark.timeout(300)
def test_concurrent_batched_diagonalisations_complete():
    """The reproducer of the deadlock, through qbjax.linalg: four concurrent vmapped eighs, 20 times."""
    proc = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "lapack_deadlock.py"), "--qbjax"],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0 and "completed" in proc.stdout, proc.stderr[-3000:]
