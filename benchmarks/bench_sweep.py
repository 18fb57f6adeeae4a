"""Sweep throughput: Dicke R(g), heat-engine charging times, and the Lindblad right-hand side roofline.

Three measurements, each in complex128 (float64) and complex64 (float32):

1. ``dicke``: the quantum/classical ratio R(g) = Gamma_qu / Gamma_cl of the
   Dicke battery (seed 000, Eq. 5) over a grid of couplings, with
   :func:`qbjax.sweep` (four sweeps: N and 1 units, quantum and classical).
   Reports trajectories per second (quantum, N units) and the chunk/memory
   the sweep chose.
2. ``heat-engine``: seed 001's charging time tau_N for N up to ``--he-max-n``
   (one static group, i.e. one compiled program, per N), rate equations.
3. ``lindblad``: the dense Lindblad right-hand side
   ``-i (H_eff rho - rho H_eff^+) + sum_k gamma_k L_k rho L_k^+`` of
   :func:`qbjax.dynamics.lindblad.lindblad_rhs` for the collective heat-engine
   battery (``d = N + 1``), vmapped over a batch of density matrices as a sweep
   runs it.  Reports the achieved FLOP/s and bytes/s and the fraction of the
   roofline ``min(peak FLOP/s, intensity x peak bandwidth)``; the peaks are
   ``--peak-bandwidth`` / ``--peak-flops`` (defaults: a table for H100/H200,
   a measured copy bandwidth on CPU).

complex64 runs switch JAX's 64-bit mode off for the whole process (qbjax
itself computes in float64 by default); their deviation from the complex128
numbers is reported.

CPU (default: small sizes, a minute or two)::

    python benchmarks/bench_sweep.py

GPU (the issue's sizes; one H100/H200)::

    python benchmarks/bench_sweep.py --dicke-n 50 --dicke-points 256 --he-max-n 1000000 \\
        --lindblad-n 64,256,1024 --lindblad-batch 256 --out benchmarks/results/sweep_gpu.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time

import numpy as np

PEAKS = {  # (bytes/s, FLOP/s fp64, FLOP/s fp32) from the vendors' data sheets (SXM parts)
    "H100": (3.35e12, 67e12, 67e12),
    "H200": (4.8e12, 67e12, 67e12),
    "A100": (2.0e12, 19.5e12, 19.5e12),
}


def _peak(device, args, dtype):
    if args.peak_bandwidth and args.peak_flops:
        return args.peak_bandwidth, args.peak_flops
    for key, (bw, f64, f32) in PEAKS.items():
        if key in device.device_kind:
            return bw, (f64 if dtype == "complex128" else f32)
    return _copy_bandwidth(), None


def _copy_bandwidth():
    """Measured host copy bandwidth (bytes read + written per second) as the CPU's peak."""
    a = np.ones(2**26 // 8)
    b = np.empty_like(a)
    best = 0.0
    for _ in range(5):
        t = time.perf_counter()
        np.copyto(b, a)
        best = max(best, 2 * a.nbytes / (time.perf_counter() - t))
    return best


def _peak_rss_mib():
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def bench_dicke(args, dtype):
    import jax

    import qbjax as qb

    gs = np.linspace(args.dicke_gmin, args.dicke_gmax, args.dicke_points)
    out = {}
    t_quantum = None
    for label, n, classical in (("qu_n", args.dicke_n, False), ("qu_1", 1, False), ("cl_n", args.dicke_n, True),
                                ("cl_1", 1, True)):
        t = time.perf_counter()
        # float32 cannot meet the float64 default tolerances of the adaptive (classical) flow
        options = qb.ODEOptions(rtol=1e-6, atol=1e-6) if dtype == "complex64" else None
        res = qb.sweep(qb.DickeBattery, {"g": gs}, "max_power", n=n, classical=classical, options=options,
                       progress=not args.quiet, memory_budget=args.memory_budget)
        wall = time.perf_counter() - t
        out[label] = np.asarray(res.frame["max_power"], dtype=float)
        if label == "qu_n":
            t_quantum = wall - res.info["compile_s"]
            info = res.info
    R = (out["qu_n"] / (args.dicke_n * out["qu_1"])) / (out["cl_n"] / (args.dicke_n * out["cl_1"]))
    g0 = info["groups"][0]
    return {
        "n": args.dicke_n, "points": len(gs), "g": gs.tolist(), "R": R.tolist(),
        "trajectories_per_s": len(gs) / t_quantum, "run_s": t_quantum, "compile_s": info["compile_s"],
        "chunk_size": g0["chunk_size"], "bytes_per_device": g0["bytes_per_device"], "num_times": g0["num_times"],
        "devices": info["devices"], "device_kind": info["device_kind"], "dtype": dtype,
        "peak_rss_mib": _peak_rss_mib(), "jax_backend": jax.default_backend(),
    }


def bench_heat_engine(args, dtype):
    import qbjax as qb

    ns = np.unique(np.round(np.logspace(0, np.log10(args.he_max_n), args.he_points)).astype(int))
    t = time.perf_counter()
    options = qb.ODEOptions(rtol=1e-5, atol=1e-7) if dtype == "complex64" else None
    res = qb.sweep("heat-engine", {"n": ns}, ["charging_time", "steady_energy_density"], progress=not args.quiet,
                   num_times=81, options=options)
    wall = time.perf_counter() - t
    return {"n": ns.tolist(), "charging_time": res.frame["charging_time"].tolist(),
            "steady_energy_density": res.frame["steady_energy_density"].tolist(), "wall_s": wall,
            "compile_s": res.info["compile_s"], "groups": len(res.info["groups"]), "dtype": dtype}


def bench_lindblad(args, dtype):
    import jax
    import jax.numpy as jnp

    from qbjax import representation as rep
    from qbjax.dynamics.lindblad import lindblad_rhs
    from qbjax.models import HeatEngineBattery
    from qbjax.representation.open import initial_density_matrix

    cdt = jnp.complex128 if dtype == "complex128" else jnp.complex64
    rows = []
    device = jax.devices()[0]
    for n in args.lindblad_n:
        spec = HeatEngineBattery(n).spec()
        b = rep.basis(spec)
        H = rep.dense(spec.space, spec.charger + spec.battery + spec.coupling, b).astype(cdt)
        jumps = [(jnp.asarray(d.rate, cdt), rep.dense(spec.space, d.operator, b).astype(cdt))
                 for d in spec.dissipators]
        rho0 = initial_density_matrix(spec, b).astype(cdt)
        d, k, B = b.dim, len(jumps), args.lindblad_batch
        rhs = lindblad_rhs(H, jumps)
        key = jax.random.PRNGKey(0)
        rhos = (rho0[None] + 1e-3 * jax.random.normal(key, (B, d, d)).astype(cdt))
        f = jax.jit(jax.vmap(rhs))
        f(rhos).block_until_ready()
        reps = max(3, int(args.lindblad_seconds / max(_time(f, rhos), 1e-6)))
        t = min(_time(f, rhos) for _ in range(3)) if reps < 3 else _time(f, rhos, reps)
        item = np.dtype(np.complex128 if dtype == "complex128" else np.complex64).itemsize
        # per matrix: H_eff rho, rho H_eff^+, and L rho L^+ (two products) per jump: complex d^3 MACs = 8 d^3 FLOP
        flops = B * (2 + 2 * k) * 8 * d**3
        # minimum traffic: read rho and the (shared) operators, write d rho/dt
        bytes_moved = (2 * B + 1 + k) * d * d * item
        bw, peak_flops = _peak(device, args, dtype)
        intensity = flops / bytes_moved
        roof = bw * intensity if peak_flops is None else min(peak_flops, bw * intensity)
        rows.append({"n": n, "d": d, "batch": B, "seconds": t, "gflops": flops / t / 1e9,
                     "gbytes_per_s": bytes_moved / t / 1e9, "intensity_flop_per_byte": intensity,
                     "peak_bandwidth_gbs": bw / 1e9, "peak_gflops": None if peak_flops is None else peak_flops / 1e9,
                     "roofline_fraction": (flops / t) / roof})
    return rows


def _time(f, x, reps=1):
    t = time.perf_counter()
    for _ in range(reps):
        y = f(x)
    y.block_until_ready()
    return (time.perf_counter() - t) / reps


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--dicke-n", type=int, default=4)
    p.add_argument("--dicke-points", type=int, default=16)
    p.add_argument("--dicke-gmin", type=float, default=0.1)
    p.add_argument("--dicke-gmax", type=float, default=1.0)
    p.add_argument("--he-max-n", type=int, default=1000)
    p.add_argument("--he-points", type=int, default=4)
    p.add_argument("--lindblad-n", type=lambda s: [int(x) for x in s.split(",")], default=[16, 64])
    p.add_argument("--lindblad-batch", type=int, default=16)
    p.add_argument("--lindblad-seconds", type=float, default=1.0)
    p.add_argument("--peak-bandwidth", type=float, default=None, help="bytes/s (default: table or measured)")
    p.add_argument("--peak-flops", type=float, default=None, help="FLOP/s (default: table)")
    p.add_argument("--memory-budget", type=int, default=None, help="bytes per device per chunk")
    p.add_argument("--dtype", choices=["both", "complex128", "complex64"], default="both")
    p.add_argument("--only", choices=["dicke", "heat-engine", "lindblad"], action="append", default=None)
    p.add_argument("--quiet", action="store_true")
    p.add_argument("--out", default=None, help="write the JSON here")
    args = p.parse_args(argv)
    if args.dtype == "both":  # each precision in its own process (64-bit mode is process-wide)
        results = {}
        for dt in ("complex128", "complex64"):
            cmd = [sys.executable, __file__, *(argv if argv is not None else sys.argv[1:]), "--dtype", dt]
            cmd = [c for i, c in enumerate(cmd) if not (c == "--out" or (i > 0 and cmd[i - 1] == "--out"))]
            proc = subprocess.run(cmd, capture_output=True, text=True)
            sys.stderr.write(proc.stderr[-4000:])
            if proc.returncode != 0:
                raise SystemExit(proc.returncode)
            results[dt] = json.loads(proc.stdout.strip().splitlines()[-1])
        results["complex64_vs_complex128"] = _compare(results["complex128"], results["complex64"])
        text = json.dumps(results, indent=1)
        if args.out:
            with open(args.out, "w") as f:
                f.write(text)
        print(text)
        return
    import jax

    import qbjax  # noqa: F401  (switches 64-bit mode on)

    if args.dtype == "complex64":
        jax.config.update("jax_enable_x64", False)
    only = args.only or ["dicke", "heat-engine", "lindblad"]
    out = {"dtype": args.dtype, "device": str(jax.devices()[0].device_kind), "devices": len(jax.devices()),
           "host": platform.node(), "cpu_count": os.cpu_count()}
    if "dicke" in only:
        out["dicke"] = bench_dicke(args, args.dtype)
    if "heat-engine" in only:
        out["heat_engine"] = bench_heat_engine(args, args.dtype)
    if "lindblad" in only:
        out["lindblad"] = bench_lindblad(args, args.dtype)
    out["peak_rss_mib"] = _peak_rss_mib()
    text = json.dumps(out)
    if args.out:
        with open(args.out, "w") as f:
            f.write(text)
    print(text)


def _compare(a, b):
    out = {}
    if "dicke" in a and "dicke" in b:
        ra, rb = np.array(a["dicke"]["R"]), np.array(b["dicke"]["R"])
        out["dicke_R_max_rel_diff"] = float(np.max(np.abs(rb - ra) / np.abs(ra)))
        out["dicke_speedup"] = b["dicke"]["trajectories_per_s"] / a["dicke"]["trajectories_per_s"]
    if "heat_engine" in a and "heat_engine" in b:
        ta, tb = np.array(a["heat_engine"]["charging_time"]), np.array(b["heat_engine"]["charging_time"])
        out["charging_time_max_rel_diff"] = float(np.nanmax(np.abs(tb - ta) / np.abs(ta)))
    return out


if __name__ == "__main__":
    main()
