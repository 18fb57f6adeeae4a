"""The README's optimize_model example as one script, for timing in fresh processes (issue 14's "done when" line).

    farm-bench -n 5 --warmup 0 --timeout 200 -- python benchmarks/readme_optimize.py
"""

import time

t0 = time.perf_counter()
import qbjax as qb  # noqa: E402
from qbjax.optimize import Box, optimize_model  # noqa: E402

best, r = optimize_model(qb.DickeBattery(4, 0.2), {"g": Box(0.05, 1.0)}, "energy_at", tau=3.0,
                         optimizer="lbfgs", restarts=4, steps=50, progress=False)
print(f"{time.perf_counter() - t0:.2f} s, g* = {float(best.g):.10f}, E_B(3) = {float(r.value):.12f}, "
      f"steps {r.steps_run}")
