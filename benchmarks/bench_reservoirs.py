"""Reservoir battery benchmark (seed 004, Dias et al.): exact master equation, qbjax vs QuTiP vs dynamiqs.

Problem (Eq. 4, Fig. 2f scaled down): charger N_C = 32 spins, m = 3 batteries of
N_B = 2 spins, each in its own zero-temperature reservoir with the charger,
collective pump gamma_up = 2 gamma_down on the charger:

    d rho/dt = sum_k 2 gamma_down D[J_C^- + J_Bk^-] rho + 2 gamma_up D[J_C^+] rho

(paper's L = 2 D), gamma_down = 1, charger fully excited, batteries empty.
Collective-spin Hilbert space (N_C + 1)(N_B + 1)^3 = 891 states, a density
matrix of 891^2 = 793,881 complex entries.  Observables: the energy densities
E_mu / (N_mu omega0) = <J_mu^z>/N_mu + 1/2 at 21 times on [0, 1] (the burst and
the plateau: gamma_down N_C t up to 32).

Tools, all at the same tolerances (rtol = 1e-8, atol = 1e-10):
  qbjax    ``charge_reservoirs(method="exact")``: the U(1)-neutral sector tensor,
           (N_C + 1)(N_B + 1)^6 = 24,057 real entries, matrix-free ladder shifts, Tsit5.
  QuTiP    ``qutip.mesolve`` with ``jmat`` operators (CSR), default method (adams),
           on the full 891^2 density matrix.
  dynamiqs ``dynamiqs.mesolve``, operators in its sparse "dia" layout, Tsit5, on the full density matrix.
Accuracy: max |error| of the energy densities against qbjax at rtol = 1e-12, atol = 1e-14.

Mean field at the paper's size: N_C = 10^7, N_B = 100, m = 3, gamma_up = 2 gamma_down,
401 save times to t_max = (10 + 4 ln N_C) / (gamma_down N_C) (second-order cumulants, Dopri8).

Timing: each tool runs in its own subprocess (one thread; --cap seconds wall clock).
qbjax and dynamiqs: first call (compile + run) and the median of --repeats further calls.
QuTiP: the median of --repeats calls.  The machine is shared (2 cores, other jobs):
timings are noisy; os.getloadavg() is recorded.

    python benchmarks/bench_reservoirs.py              # writes benchmarks/results/reservoirs.json
    python benchmarks/bench_reservoirs.py --repeats 1 --cap 120
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time

NC, NB, M, PUMP, GD = 32, 2, 3, 2.0, 1.0
T_MAX, NT = 1.0, 21
RTOL, ATOL = 1e-8, 1e-10


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", default=os.path.join(os.path.dirname(os.path.abspath(__file__)), "results",
                                                 "reservoirs.json"))
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--cap", type=float, default=600.0, help="wall-clock cap of one tool's subprocess (s)")
    p.add_argument("--skip", default="", help="comma list: qutip,dynamiqs")
    p.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    return p.parse_args(argv)


def _threads():
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[var] = "1"
    os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") +
                               " --xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1").strip()


def _ts():
    import numpy as np

    return np.linspace(0.0, T_MAX, NT)


def worker_qbjax(repeats):
    import jax.numpy as jnp
    import numpy as np

    import qbjax  # noqa: F401
    from qbjax.dynamics import ODEOptions
    from qbjax.models.reservoirs import ReservoirBattery, charge_reservoirs

    model = ReservoirBattery(NC, NB, M, gamma_down=GD, gamma_up=PUMP)
    ts = jnp.asarray(_ts())

    def run(rtol, atol):
        tr = charge_reservoirs(model, ts, method="exact", options=ODEOptions(rtol=rtol, atol=atol, solver="tsit5",
                                                                              max_steps=10**6))
        return np.vstack([np.asarray(tr.charger)[None], np.asarray(tr.batteries)])

    t0 = time.perf_counter()
    out = run(RTOL, ATOL)
    first = time.perf_counter() - t0
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        run(RTOL, ATOL)
        times.append(time.perf_counter() - t0)
    ref = run(1e-12, 1e-14)
    # mean field at paper size
    mf_model = ReservoirBattery(10**7, 100, 3, gamma_down=GD, gamma_up=PUMP)
    mts = jnp.linspace(0.0, float(mf_model.default_t_max()), 401)
    t0 = time.perf_counter()
    tr = charge_reservoirs(mf_model, mts, method="meanfield")
    tr.batteries.block_until_ready()
    mf_first = time.perf_counter() - t0
    mf_times = []
    for _ in range(max(repeats, 3)):
        t0 = time.perf_counter()
        charge_reservoirs(mf_model, mts, method="meanfield").batteries.block_until_ready()
        mf_times.append(time.perf_counter() - t0)
    return {"energies": out.tolist(), "reference": ref.tolist(), "first_s": first,
            "median_s": statistics.median(times) if times else None, "state_entries": model.exact_entries(),
            "meanfield": {"n_charger": 10**7, "n_battery": 100, "batteries": 3, "gamma_up": PUMP,
                          "t_max": float(mts[-1]), "num_times": 401, "first_s": mf_first,
                          "median_s": statistics.median(mf_times),
                          "battery_energy_density": [float(x) for x in tr.batteries[:, -1]],
                          "charger_energy_density": float(tr.charger[-1])}}


def _operators(np):
    """J^- and J^z per ensemble on the product space, as numpy matrices (index = excitations, ascending)."""
    sizes = (NC,) + (NB,) * M

    def lower(N):
        n = np.arange(N + 1, dtype=float)
        return np.diag(np.sqrt(n[1:] * (N - n[1:] + 1)), 1)  # <n-1|J-|n>

    def jz(N):
        return np.diag(np.arange(N + 1) - N / 2)

    def embed(k, op):
        out = np.ones((1, 1))
        for i, N in enumerate(sizes):
            out = np.kron(out, op if i == k else np.eye(N + 1))
        return out

    jm = [embed(k, lower(N)) for k, N in enumerate(sizes)]
    jzs = [embed(k, jz(N)) for k, N in enumerate(sizes)]
    jumps = [np.sqrt(2 * GD) * (jm[0] + jm[k]) for k in range(1, M + 1)] + [np.sqrt(2 * PUMP) * jm[0].T]
    dim = jm[0].shape[0]
    psi = np.zeros(dim)
    idx = np.ravel_multi_index((NC,) + (0,) * M, tuple(N + 1 for N in sizes))
    psi[idx] = 1.0
    return sizes, jumps, jzs, np.outer(psi, psi)


def worker_qutip(repeats):
    import numpy as np
    import qutip
    import scipy.sparse as sp

    sizes, jumps, jzs, rho0 = _operators(np)
    dims = [[N + 1 for N in sizes]] * 2
    c_ops = [qutip.Qobj(sp.csr_matrix(L), dims=dims) for L in jumps]
    e_ops = [qutip.Qobj(sp.csr_matrix(z), dims=dims) for z in jzs]
    H = qutip.Qobj(sp.csr_matrix(jzs[0].shape), dims=dims)
    r0 = qutip.Qobj(rho0, dims=dims)
    times, out = [], None
    for _ in range(max(repeats, 1)):
        t0 = time.perf_counter()
        res = qutip.mesolve(H, r0, _ts(), c_ops=c_ops, e_ops=e_ops, options={"atol": ATOL, "rtol": RTOL,
                                                                             "nsteps": 10**7})
        times.append(time.perf_counter() - t0)
        out = [np.asarray(e) / N + 0.5 for e, N in zip(res.expect, sizes)]
    return {"energies": [list(map(float, x)) for x in out], "median_s": statistics.median(times),
            "first_s": times[0], "version": qutip.__version__}


def worker_dynamiqs(repeats):
    import dynamiqs as dq
    import jax
    import jax.numpy as jnp
    import numpy as np

    jax.config.update("jax_enable_x64", True)
    sizes, jumps, jzs, rho0 = _operators(np)
    dims = tuple(N + 1 for N in sizes)

    def dia(m):
        offsets = tuple(int(k) for k in sorted({j - i for i, j in zip(*np.nonzero(m))}))
        return dq.asqarray(jnp.asarray(m, jnp.complex128), dims=dims, layout=dq.dia, offsets=offsets)

    jump_ops = [dia(L) for L in jumps]
    exp_ops = [dia(z) for z in jzs]
    H = dia(np.diag(np.zeros(jzs[0].shape[0])) + 0 * jzs[0])
    r0 = dq.asqarray(jnp.asarray(rho0, jnp.complex128), dims=dims)
    method = dq.method.Tsit5(rtol=RTOL, atol=ATOL, max_steps=10**6)
    ts = jnp.asarray(_ts())

    def run():
        res = dq.mesolve(H, jump_ops, r0, ts, exp_ops=exp_ops, method=method, save_states=False,
                         progress_meter=False)
        return np.asarray(res.expects.real)

    t0 = time.perf_counter()
    ex = run()
    first = time.perf_counter() - t0
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        run()
        times.append(time.perf_counter() - t0)
    out = [ex[i] / N + 0.5 for i, N in enumerate(sizes)]
    return {"energies": [list(map(float, x)) for x in out], "first_s": first,
            "median_s": statistics.median(times) if times else None, "version": dq.__version__}


WORKERS = {"qbjax": worker_qbjax, "qutip": worker_qutip, "dynamiqs": worker_dynamiqs}


def _spawn(tool, args):
    cmd = [sys.executable, os.path.abspath(__file__), "--worker", tool, "--repeats", str(args.repeats)]
    t0 = time.perf_counter()
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=args.cap)
    except subprocess.TimeoutExpired:
        return {"status": f"did not finish within the {args.cap:.0f} s cap", "wall_s": args.cap}
    if proc.returncode != 0:
        return {"status": "failed: " + proc.stderr.strip().splitlines()[-1][:300]}
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    out.update(status="ok", wall_s=time.perf_counter() - t0, load=[round(x, 2) for x in os.getloadavg()])
    return out


def main(argv=None):
    args = parse_args(argv)
    if args.worker:
        _threads()
        print(json.dumps(WORKERS[args.worker](args.repeats)))
        return 0
    import numpy as np

    skip = {s.strip() for s in args.skip.split(",") if s.strip()}
    previous = {}
    if skip and os.path.exists(args.out):  # a skipped tool keeps its result from the previous run
        with open(args.out) as f:
            previous = json.load(f).get("raw", {})
    results = {}
    for tool in ("qbjax", "qutip", "dynamiqs"):
        if tool in skip:
            if tool in previous:
                results[tool] = {**previous[tool], "status": previous[tool]["status"] + " (previous run)"}
            continue
        print(f"running {tool} ...", file=sys.stderr, flush=True)
        results[tool] = _spawn(tool, args)
    ref = np.asarray(results["qbjax"]["reference"])
    rows = []
    base = results["qbjax"].get("median_s") or results["qbjax"].get("first_s")
    for tool, r in results.items():
        row = {"tool": tool, "status": r["status"]}
        if r["status"].startswith("ok"):
            row["error"] = float(np.max(np.abs(np.asarray(r["energies"]) - ref)))
            row["first_s"] = r["first_s"]
            row["median_s"] = r.get("median_s")
            t = r.get("median_s") or r["first_s"]
            row["time_vs_qbjax"] = t / base
            row["battery_energy_density_t_max"] = [float(x[-1]) for x in r["energies"][1:]]
        rows.append(row)
    print(f"\nExact: N_C = {NC}, N_B = {NB}, m = {M}, gamma_up = {PUMP} gamma_down, t in [0, {T_MAX}], "
          f"rtol = {RTOL}, atol = {ATOL}; shared 2-core machine, timings noisy (load {os.getloadavg()[0]:.2f})")
    print(f"{'tool':10s} {'status':10s} {'first (s)':>10s} {'median (s)':>11s} {'x qbjax':>8s} {'max error':>10s}")
    for row in rows:
        if not row["status"].startswith("ok"):
            print(f"{row['tool']:10s} {row['status']}")
            continue
        med = row["median_s"] if row["median_s"] is not None else float("nan")
        print(f"{row['tool']:10s} {'ok':10s} {row['first_s']:10.2f} {med:11.3f} {row['time_vs_qbjax']:8.1f} "
              f"{row['error']:10.2e}")
    mf = results["qbjax"]["meanfield"]
    print(f"\nMean field N_C = 1e7, N_B = 100, m = 3, pump 2: first call {mf['first_s']:.2f} s (compile + run), "
          f"then {mf['median_s'] * 1e3:.1f} ms to t_max = {mf['t_max']:.3e}; E_B(t_max) = "
          f"{mf['battery_energy_density'][0]:.6f}")
    payload = {"problem": {"n_charger": NC, "n_battery": NB, "batteries": M, "gamma_up": PUMP, "gamma_down": GD,
                           "t_max": T_MAX, "num_times": NT, "rtol": RTOL, "atol": ATOL,
                           "hilbert_dim": (NC + 1) * (NB + 1) ** M},
               "rows": rows, "meanfield": mf, "raw": {k: {kk: vv for kk, vv in v.items() if kk != "reference"}
                                                      for k, v in results.items()},
               "machine": {"platform": platform.platform(), "cpus": os.cpu_count(), "load": os.getloadavg(),
                           "note": "shared 2-core box; other jobs running; one thread per tool"}}
    os.makedirs(os.path.dirname(args.out), exist_ok=True)
    with open(args.out, "w") as f:
        json.dump(payload, f, indent=1)
    print(f"wrote {args.out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
