"""The GPU benchmark script runs end to end on CPU in its dry mode (issue 16, item 8)."""

import os
import pathlib
import subprocess


def test_gpu_script_dry_run_writes_its_table(tmp_path):
    root = pathlib.Path(__file__).resolve().parent.parent
    env = {**os.environ, "QBJAX_GPU_OUT": str(tmp_path)}
    run = subprocess.run(["bash", str(root / "benchmarks" / "gpu.sh"), "--dry"], cwd=root, env=env,
                         capture_output=True, text=True, timeout=400)
    assert run.returncode == 0, run.stderr[-2000:]
    table = (tmp_path / "table.md").read_text()
    rows = [line for line in table.splitlines() if line.startswith("| single") or line.startswith("| 64-point")]
    assert len(rows) == 4 and "error" not in table.lower() and "missing" not in table
    assert (tmp_path / "sweep.json").exists() and "failed" not in run.stderr
