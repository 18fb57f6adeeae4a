"""The README's sweep example as one script, for timing in fresh processes (issue 14's "done when" line).

    farm-bench -n 10 --warmup 0 --timeout 120 -- python benchmarks/readme_sweep.py
    QBJAX_COMPILATION_CACHE=/tmp/empty-$RANDOM python benchmarks/readme_sweep.py   # an empty compilation cache

Prints the wall time of the call, each group's closed-dynamics method (``chebyshev`` with traced bounds, or
``None``: dense ``eigh``), compile and run seconds, and a checksum of the results.
"""

import time

t0 = time.perf_counter()
import numpy as np  # noqa: E402

import qbjax as qb  # noqa: E402
from qbjax.sweep import product  # noqa: E402

t1 = time.perf_counter()
res = qb.sweep(qb.DickeBattery, product(g=np.linspace(0.05, 0.5, 200), omega0=[0.9, 1.0, 1.1]),
               ["max_power", "optimal_time", "ergotropy"], n=6, progress=False)
t2 = time.perf_counter()
print(f"import {t1 - t0:.2f} s, sweep {t2 - t1:.2f} s")
for g in res.info["groups"]:
    print(f"  cutoff {g['static']['cutoff']}: {g['points']} points, {g['closed_method'] or 'eigh'}, "
          f"compile {g['compile_s']:.2f} s, run {g['run_s']:.2f} s")
print("checksum", float(np.sum(res.values("max_power"))), float(np.sum(res.values("ergotropy"))))
