"""Closed Dicke battery on one device: single trajectories and 64-point sweeps, timed cold and warm.

    python benchmarks/gpu_closed.py --dtype complex128 --out benchmarks/results/gpu_closed_c128.json
    python benchmarks/gpu_closed.py --dtype complex64 --dry          # tiny sizes (a CPU smoke run)

Workloads (the speed issue's table): ``H = a^+a + J_z + N/2 + 2g(a + a^+)J_x``, cutoff ``3N + 10``, E_B at
201 times in ``[0, 3/(g sqrt N)]``; ``N = 20, 40`` (``--dry``: ``N = 4``).

* ``single``: ``qb.charge(model)`` with no method named (Auto's choice is recorded), first call (compile
  included) and the median of 5 warm calls;
* ``sweep64``: ``qb.sweep(DickeBattery, {"g": linspace(0.05, 2, 64)}, ["max_power"], n=N, ...)``, first call
  and a warm repeat, in seconds per trajectory (``--dry``: 8 points).

``complex64`` switches JAX's 64-bit mode off for the process (qbjax computes in float64 by default); its
deviation from the float64 answer is recorded.  A workload that fails is recorded with its error, not
dropped.
"""

from __future__ import annotations

import argparse
import json
import sys
import time


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--dtype", choices=["complex128", "complex64"], default="complex128")
    p.add_argument("--dry", action="store_true", help="tiny sizes: checks the script, not the device")
    p.add_argument("--out", default=None)
    args = p.parse_args(argv)
    import jax

    if args.dtype == "complex64":
        jax.config.update("jax_enable_x64", False)
    import numpy as np

    import qbjax as qb

    if args.dtype == "complex64":  # qbjax switches 64-bit mode on at import: off again for this run
        jax.config.update("jax_enable_x64", False)
    ns = [4] if args.dry else [20, 40]
    points = 8 if args.dry else 64
    rows = []
    for n in ns:
        g = 0.5
        m = qb.DickeBattery(n, g, cutoff=3 * n + 10)
        ts = np.linspace(0.0, 3 / (g * np.sqrt(n)), 201)
        row = {"n": n, "cutoff": 3 * n + 10, "dtype": args.dtype}
        try:
            t0 = time.perf_counter()
            traj = qb.charge(m, ts)
            e = np.asarray(traj.energy)
            row["single_first_s"] = time.perf_counter() - t0
            warm = []
            for _ in range(5):
                t0 = time.perf_counter()
                np.asarray(qb.charge(m, ts).energy)
                warm.append(time.perf_counter() - t0)
            row["single_warm_s"] = float(np.median(warm))
            row["single_method"] = traj.method
            row["max_power"] = float(qb.max_power(traj, warn=False).power)
            row["energy_end"] = float(e[-1])
        except Exception as exc:  # noqa: BLE001 (recorded, not dropped)
            row["single_error"] = f"{type(exc).__name__}: {str(exc)[:300]}"
        try:
            grid = {"g": np.linspace(0.05, 2.0, points)}
            kw = dict(n=n, cutoff=3 * n + 10, num_times=201, progress=False)
            t0 = time.perf_counter()
            res = qb.sweep(qb.DickeBattery, grid, ["max_power"], **kw)
            row["sweep_first_s_per_traj"] = (time.perf_counter() - t0) / points
            t0 = time.perf_counter()
            res = qb.sweep(qb.DickeBattery, grid, ["max_power"], **kw)
            row["sweep_warm_s_per_traj"] = (time.perf_counter() - t0) / points
            row["sweep_closed_method"] = [gr.get("closed_method") for gr in res.info["groups"]]
            row["sweep_max_power_sum"] = float(np.sum(res.values("max_power")))
        except Exception as exc:  # noqa: BLE001
            row["sweep_error"] = f"{type(exc).__name__}: {str(exc)[:300]}"
        rows.append(row)
        print(json.dumps(row), flush=True)
    out = {"device": str(jax.devices()[0]), "device_kind": jax.devices()[0].device_kind,
           "platform": jax.devices()[0].platform, "x64": bool(jax.config.jax_enable_x64), "rows": rows}
    if args.out:
        with open(args.out, "w") as f:
            json.dump(out, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
