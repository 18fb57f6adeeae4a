"""Spin-chain battery benchmark (seed 002, Le et al.): exact dynamics, qbjax vs QuTiP vs dynamiqs.

    H   = H_g + V,  H_g = -sum_{i<j} g_ij [sz sz + alpha (sx sx + sy sy)],  V = omega sum sx
    H_0 = B sum sz + H_g,  W(t) = <H_0>_t - <H_0>_0,  start |down...down>
    power-law couplings g_ij = g / |i-j| (p = 1), g = B = 1, omega = 4,
    W at 201 times in [0, pi/omega]; N = 12, 16, 20; alpha = 0 and 0.5.

Tools (each case in its own subprocess, capped at --cap seconds wall, its
peak resident memory from resource.getrusage(RUSAGE_SELF).ru_maxrss):
  qbjax-cheb   qbjax.charge (method "auto" = matrix-free Chebyshev, exact to
               rounding); first call (compile + run) and the median of timed
               repeats; compile = first - run.  This is the reference curve.
  qbjax-ode    qbjax.charge(method="ode"), Dopri8 at rtol = atol = --tol.
  qutip        QuTiP 5 sesolve (default "adams"), atol = rtol = --tol, with
               the Hamiltonian as a scipy CSR matrix built by bit operations
               (construction not timed), e_ops = [H_0].
  qutip:TOL    the same at atol = rtol = TOL (for example qutip:1e-12): at
               --tol 1e-8 QuTiP's work curve is off by ~1e-3, so this row
               compares at the accuracy qbjax delivers (see max |dW|).
  dynamiqs     dq.sesolve, Dopri8 at rtol = atol = --tol, the Hamiltonian in
               dynamiqs' sparse DIA layout (built from scipy's DIA, not timed);
               skipped when its diagonals exceed --dia-gib.
Ratios t(tool)/t(qbjax-cheb run) > 1 mean qbjax is faster; "max |dW|" is the
largest difference of a tool's work curve from qbjax-cheb.  os.getloadavg()
is recorded before each run (this box is shared: 2 cores).

    python benchmarks/bench_spin_chain.py            # full
    python benchmarks/bench_spin_chain.py --quick    # N = 8, 10 smoke run
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
TOOLS = ("qbjax-cheb", "qbjax-ode", "qutip", "qutip:1e-12", "dynamiqs")


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true")
    p.add_argument("--ns", default=None, help="comma list of N (default 12,16,20; quick 8,10)")
    p.add_argument("--alphas", default="0,0.5")
    p.add_argument("--tools", default=",".join(TOOLS), help="comma list; qutip:TOL runs QuTiP at tolerance TOL")
    p.add_argument("--tol", type=float, default=1e-8)
    p.add_argument("--cap", type=float, default=300.0, help="wall seconds per (tool, case) subprocess")
    p.add_argument("--repeats", type=int, default=2, help="timed qbjax repeats after the first call")
    p.add_argument("--dia-gib", type=float, default=3.0, help="largest dynamiqs DIA storage (GiB)")
    p.add_argument("--out", default=os.path.join(HERE, "results", "spin_chain.json"))
    p.add_argument("--worker", nargs=4, metavar=("TOOL", "N", "ALPHA", "CURVE"), help=argparse.SUPPRESS)
    return p.parse_args(argv)


# --------------------------------------------------------------------------- the model, by bit operations


def couplings(n, g=1.0, p=1.0):
    import numpy as np

    d = np.abs(np.subtract.outer(np.arange(n), np.arange(n))).astype(float)
    return np.where(d > 0, g / np.where(d > 0, d, 1.0) ** p, 0.0)


def sparse_ops(n, alpha, omega=4.0, b=1.0):
    """CSR ``H = H_g + V`` and diagonal of ``H_0``; spin i is bit (n-1-i), bit 1 = down."""
    import numpy as np
    import scipy.sparse as sp

    dim = 2**n
    k = np.arange(dim, dtype=np.int64)
    bits = [(k >> (n - 1 - i)) & 1 for i in range(n)]
    z = [1 - 2 * bt for bt in bits]
    gm = couplings(n)
    hg = np.zeros(dim)
    for i in range(n):
        for j in range(i + 1, n):
            hg -= gm[i, j] * z[i] * z[j]
    hb = b * sum(z)
    rows, cols, vals = [k], [k], [hg.astype(complex)]
    for i in range(n):
        rows.append(k)
        cols.append(k ^ (1 << (n - 1 - i)))
        vals.append(np.full(dim, omega, complex))
    if alpha != 0:
        for i in range(n):
            for j in range(i + 1, n):
                sel = k[bits[i] != bits[j]]
                rows.append(sel)
                cols.append(sel ^ ((1 << (n - 1 - i)) | (1 << (n - 1 - j))))
                vals.append(np.full(sel.size, -2.0 * alpha * gm[i, j], complex))
    h = sp.csr_matrix((np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))), shape=(dim, dim))
    # H_0 = H_B + H_g = H - V + H_B
    v = sp.csr_matrix((np.concatenate(vals[1:n + 1]), (np.concatenate(rows[1:n + 1]), np.concatenate(cols[1:n + 1]))),
                      shape=(dim, dim))
    h0 = (h - v + sp.diags(hb.astype(complex))).tocsr()
    h0.eliminate_zeros()
    offset = n * b + gm.sum() / 2
    return h, h0, offset


def dia_count(n, alpha):
    """Diagonals of H plus those of H_0."""
    return 1 + 2 * n + 2 * (n * (n - 1) if alpha != 0 else 0) + 1


# --------------------------------------------------------------------------- workers (one case per process)


def rss_mib():
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def worker(tool, n, alpha, curve_path, args):
    import numpy as np

    omega = 4.0
    ts = np.linspace(0.0, math.pi / omega, 201)
    out = {"tool": tool, "n": n, "alpha": alpha, "loadavg_before": os.getloadavg()}
    if tool.startswith("qbjax"):
        import jax

        jax.config.update("jax_enable_x64", True)
        import qbjax as qb
        from qbjax.dynamics.options import ODEOptions
        from qbjax.models.spin_chain import SpinChainBattery

        m = SpinChainBattery(n, b=1.0, g=1.0, field=omega, alpha=alpha, couplings="power", power=1.0)
        kw = {} if tool == "qbjax-cheb" else {"method": "ode", "options": ODEOptions(rtol=args.tol, atol=args.tol)}

        def run():
            return np.asarray(jax.block_until_ready(qb.charge(m, ts, **kw).energy))

        t0 = time.perf_counter()
        w = run()
        first = time.perf_counter() - t0
        times = []
        for _ in range(args.repeats):
            t0 = time.perf_counter()
            w = run()
            times.append(time.perf_counter() - t0)
        t_run = float(np.median(times)) if times else first
        out.update(first_call_s=first, run_s=t_run, compile_s=max(first - t_run, 0.0), repeats=len(times))
    elif tool.split(":")[0] == "qutip":
        import qutip as qt

        tol = float(tool.split(":")[1]) if ":" in tool else args.tol

        h, h0, offset = sparse_ops(n, alpha, omega)
        dims = [[2] * n, [2] * n]
        H = qt.Qobj(h, dims=dims)
        H0 = qt.Qobj(h0, dims=dims)
        psi0 = qt.basis([2] * n, [1] * n)
        opts = {"atol": tol, "rtol": tol, "nsteps": 10**8, "progress_bar": False}
        t0 = time.perf_counter()
        r = qt.sesolve(H, psi0, ts, e_ops=[H0], options=opts)
        out["run_s"] = time.perf_counter() - t0
        w = np.real(np.asarray(r.expect[0])) + offset
        out["version"] = qt.__version__
    elif tool == "dynamiqs":
        import jax

        jax.config.update("jax_enable_x64", True)
        import dynamiqs as dq
        import jax.numpy as jnp
        import scipy.sparse as sp
        from dynamiqs.qarrays.materialized_qarray import MaterializedQArray
        from dynamiqs.qarrays.sparsedia_dataarray import SparseDIADataArray

        dq.set_precision("double")
        dq.set_device("cpu")
        dq.set_progress_meter(False)
        h, h0, offset = sparse_ops(n, alpha, omega)
        def dia(a):
            d = sp.dia_matrix(a)
            data = SparseDIADataArray(offsets=tuple(int(o) for o in d.offsets), diags=jnp.asarray(d.data))
            return MaterializedQArray(data=data, dims=(2,) * n, vectorized=False)

        H, H0 = dia(h), dia(h0)
        psi0 = dq.basis([2] * n, [1] * n)
        method = dq.method.Dopri8(rtol=args.tol, atol=args.tol, max_steps=10**8)

        def run():
            r = dq.sesolve(H, psi0, jnp.asarray(ts), exp_ops=[H0], method=method)
            return np.real(np.asarray(jax.block_until_ready(r.expects))[0]) + offset

        t0 = time.perf_counter()
        w = run()
        first = time.perf_counter() - t0
        t0 = time.perf_counter()
        w = run()
        t_run = time.perf_counter() - t0
        out.update(first_call_s=first, run_s=t_run, compile_s=max(first - t_run, 0.0), version=dq.__version__)
    else:
        raise ValueError(tool)
    out["peak_rss_mib"] = rss_mib()
    np.save(curve_path, w)
    print("RESULT " + json.dumps(out), flush=True)


# --------------------------------------------------------------------------- driver


def main(argv=None):
    args = parse_args(argv)
    if args.worker:
        tool, n, alpha, curve = args.worker
        return worker(tool, int(n), float(alpha), curve, args)
    import numpy as np

    ns = [int(x) for x in (args.ns or ("8,10" if args.quick else "12,16,20")).split(",")]
    alphas = [float(x) for x in args.alphas.split(",")]
    tools = [t for t in args.tools.split(",") if t]
    rows = []
    tmp = tempfile.mkdtemp(prefix="bench_spin_chain_")
    env = dict(os.environ, OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1", MKL_NUM_THREADS="1")
    for n in ns:
        for alpha in alphas:
            ref = None
            for tool in tools:
                row = {"tool": tool, "n": n, "alpha": alpha}
                if tool == "dynamiqs" and dia_count(n, alpha) * 16 * 2**n / 2**30 > args.dia_gib:
                    row["skipped"] = (f"DIA storage {dia_count(n, alpha)} diagonals x 2^{n} complex = "
                                      f"{dia_count(n, alpha) * 16 * 2**n / 2**30:.1f} GiB > --dia-gib {args.dia_gib}")
                    rows.append(row)
                    print(row, flush=True)
                    continue
                curve = os.path.join(tmp, f"{tool}_{n}_{alpha}.npy")
                cmd = [sys.executable, os.path.abspath(__file__), "--tol", str(args.tol), "--repeats",
                       str(args.repeats), "--worker", tool, str(n), str(alpha), curve]
                t0 = time.perf_counter()
                try:
                    p = subprocess.run(cmd, capture_output=True, text=True, timeout=args.cap, env=env)
                    res = [ln for ln in p.stdout.splitlines() if ln.startswith("RESULT ")]
                    if res:
                        row.update(json.loads(res[-1][7:]))
                    else:
                        row["failed"] = (p.stderr.strip().splitlines() or ["no output"])[-1][:300]
                except subprocess.TimeoutExpired:
                    row["skipped"] = f"over the cap of {args.cap:.0f} s wall (killed)"
                row["wall_s"] = time.perf_counter() - t0
                if "run_s" in row:
                    w = np.load(curve)
                    if tool == "qbjax-cheb":
                        ref = w
                    elif ref is not None:
                        row["max_abs_dw_vs_qbjax_cheb"] = float(np.max(np.abs(w - ref)))
                rows.append(row)
                print({k: (round(v, 4) if isinstance(v, float) else v) for k, v in row.items()}, flush=True)
            base = next((r for r in rows if r["n"] == n and r["alpha"] == alpha and r["tool"] == "qbjax-cheb"
                         and "run_s" in r), None)
            if base:
                for r in rows:
                    if r["n"] == n and r["alpha"] == alpha and "run_s" in r:
                        r["ratio_vs_qbjax_cheb"] = r["run_s"] / base["run_s"]
    print(f"\n{'N':>3} {'alpha':>5} {'tool':>11} {'run s':>9} {'compile s':>9} {'ratio':>7} {'peak MiB':>9} "
          f"{'max|dW|':>9} {'load1':>6}")
    for r in rows:
        if "run_s" not in r:
            print(f"{r['n']:>3} {r['alpha']:>5} {r['tool']:>11}  {r.get('skipped') or r.get('failed')}")
            continue
        print(f"{r['n']:>3} {r['alpha']:>5} {r['tool']:>11} {r['run_s']:9.3f} {r.get('compile_s', 0):9.2f} "
              f"{r.get('ratio_vs_qbjax_cheb', float('nan')):7.2f} {r['peak_rss_mib']:9.0f} "
              f"{r.get('max_abs_dw_vs_qbjax_cheb', 0.0):9.2e} {r['loadavg_before'][0]:6.2f}")
    import platform

    meta = {"tol": args.tol, "cap_s": args.cap, "ns": ns, "alphas": alphas, "cpu_count": os.cpu_count(),
            "python": platform.python_version(), "loadavg_end": os.getloadavg(),
            "note": "ratio = run_s / qbjax-cheb run_s (> 1: qbjax faster); memory = peak RSS of the tool's process"}
    if not args.quick or args.out != parse_args([]).out:
        os.makedirs(os.path.dirname(args.out), exist_ok=True)
        with open(args.out, "w") as f:
            json.dump({"meta": meta, "rows": rows}, f, indent=1)
        print("wrote", args.out)


if __name__ == "__main__":
    main()
