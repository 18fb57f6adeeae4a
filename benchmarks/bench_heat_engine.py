"""Heat-engine battery benchmark: charging time tau_N, qbjax vs QuTiP vs dynamiqs (seed 001, Ito & Watanabe).

The effective master equation of the paper (Eq. 8) for N batteries in the
symmetric sector J = N/2 (N + 1 levels, Eq. 9-12):

    d rho/dt = -i[H_B, rho] + Gamma_e (D[J-] + e^{-beta_e omega0} D[J+]) rho,   H_B = omega0 (J_z + N/2),

beta_e omega0 = -0.8, Gamma_e = 0.1, omega0 = 1, rho(0) = |J, -J><J, -J|.
The figure of merit is the charging time tau_N of Eq. 17 (eps = 1e-3): the
first t with (E_ss - E(t)) / E_ss < eps.

Tools
  qbjax    ``qbjax.steady.open_charging`` with its defaults: the state stays
           diagonal, so a rate equation on N + 1 populations (ESDIRK, tridiagonal
           solves, total-variation tolerance rtol = 1e-8); steady state,
           trajectory and tau in one call.  Timed as the user calls it.
  QuTiP    ``qutip.mesolve`` on the full (N + 1)^2 density matrix, CSR
           operators from ``qutip.jmat`` (its default data layer: a dense
           (N + 1)^2 x (N + 1)^2 superoperator would need (N + 1)^4 * 16 B,
           1.7 GB at N = 100), default method "adams".
  dynamiqs ``dynamiqs.mesolve`` on the full density matrix, J+- in its
           sparse "dia" layout, Tsit5.
  Stiff (implicit) integrators of QuTiP / dynamiqs are not used: they form
  dense Jacobians of the (N + 1)^2-dimensional state, (N + 1)^4 entries.

Equal accuracy.  Every tool returns E, dE/dt and d^2E/dt^2 at the same 81
nodes on [0, T] (for QuTiP and dynamiqs as expectation values of the
diagonal operators H_B, L^+(H_B), L^+L^+(H_B), with L^+ the adjoint
Lindbladian), and tau is found by qbjax's ``charging_time`` on that dense
output, so the tools differ only in how accurately they integrate.  The
reference is qbjax at rtol = 1e-12 (checked against rtol = 1e-13).  The target
for QuTiP and dynamiqs is the relative tau error that qbjax's default run
reaches (at least 1e-9): each tool takes the loosest tolerance of
1e-6, 1e-8, 1e-10, 1e-12 (atol = rtol) that meets it at the smallest N, and
keeps it (tightened if needed) at larger N; their cost is set by stiffness
(rates up to Gamma_e e^{0.8} N^2 / 4) much more than by the tolerance.

Limits.  Each QuTiP / dynamiqs run is a subprocess with a wall-clock cap
(--cap, default 300 s).  A run is not started when its memory estimate
exceeds the machine's RAM, when a smaller N of the same tool already hit the
cap (the cost grows with N, so the cap is a lower bound there too), or,
with --attempt-factor F, when its extrapolated time (a power law through the
process CPU times of the two largest finished N of the same tool, printed
for every N) exceeds F caps.

Timing: qbjax: first call (compile + run), then --repeats timed calls
(median; compile = first - median).  dynamiqs: a compile call on a 1e-6-long
window with the same shapes, then one timed call.  QuTiP: one timed call.
The machine is shared: os.getloadavg() is recorded with every timing.

    python benchmarks/bench_heat_engine.py            # full
    python benchmarks/bench_heat_engine.py --quick    # N = 100 only, smoke run
    python benchmarks/bench_heat_engine.py --report benchmarks/results/heat_engine.json   # table again
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import statistics
import subprocess
import sys
import time


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true", help="N = 100 (and qbjax at 1000) only")
    p.add_argument("--out", default=os.path.join(os.path.dirname(os.path.abspath(__file__)), "results",
                                                 "heat_engine.json"))
    p.add_argument("--ns", default=None, help="comma list of N for qbjax (default 100,1000,10000,100000)")
    p.add_argument("--others-ns", default=None,
                   help="comma list of N for QuTiP / dynamiqs (default 100,200,400,1000,10000,100000)")
    p.add_argument("--repeats", type=int, default=3, help="timed qbjax calls after the first")
    p.add_argument("--cap", type=float, default=300.0, help="wall-clock cap of one QuTiP / dynamiqs run (s)")
    p.add_argument("--attempt-factor", type=float, default=None,
                   help="skip a run whose extrapolated time exceeds this many caps (default: attempt every N that "
                        "fits in memory until one hits the cap)")
    p.add_argument("--threads", type=int, default=1,
                   help="BLAS/XLA threads (default 1: shared box; 0 leaves the environment alone)")
    p.add_argument("--skip", default="", help="comma list to skip: qutip,dynamiqs")
    p.add_argument("--report", default=None, metavar="JSON",
                   help="recompute the table and the summary from a results file (no runs) and write --out")
    p.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    a = p.parse_args(argv)
    a.ns = [int(x) for x in a.ns.split(",")] if a.ns else ([100, 1000] if a.quick else [100, 1000, 10**4, 10**5])
    a.others_ns = ([int(x) for x in a.others_ns.split(",")] if a.others_ns else
                   ([100] if a.quick else [100, 200, 400, 1000, 10**4, 10**5]))
    a.skip = {s.strip() for s in a.skip.split(",") if s.strip()}
    return a


ARGS = parse_args()
if ARGS.threads > 0:  # must precede the numpy / jax imports
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[var] = str(ARGS.threads)
    if ARGS.threads == 1:
        os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") +
                                   " --xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1").strip()

import jax  # noqa: E402

jax.config.update("jax_enable_x64", True)
jax.config.update("jax_platforms", "cpu")

import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402

BETA_OMEGA, RATE, OMEGA0, EPS, NT = -0.8, 0.1, 1.0, 1e-3, 81
X = math.exp(-BETA_OMEGA)  # e^{-beta_e omega0}: up rate / down rate
TOLS = (1e-6, 1e-8, 1e-10, 1e-12)


def load():
    return [round(x, 2) for x in os.getloadavg()]


# --------------------------------------------------------------------------- shared physics


def adjoint_diagonals(n):
    """Diagonals (index m = number of excitations) of H_B, L^+(H_B), L^+L^+(H_B).

    For diagonal X, L^+(X)_m = Gamma (m (N - m + 1)) (x_{m-1} - x_m) + Gamma x ((m + 1)(N - m)) (x_{m+1} - x_m).
    """
    m = np.arange(n + 1, dtype=float)
    down = RATE * m * (n - m + 1)  # m -> m - 1 (J-)
    up = RATE * X * (m + 1) * (n - m)  # m -> m + 1 (J+)

    def adj(x):
        xm = np.concatenate([[0.0], x[:-1]])
        xp = np.concatenate([x[1:], [0.0]])
        return down * (xm - x) + up * (xp - x)

    h = OMEGA0 * m
    h1 = adj(h)
    return h, h1, adj(h1)


def tau_from(ts, e, de, d2e, e_ss):
    from types import SimpleNamespace

    from qbjax.steady import charging_time

    traj = SimpleNamespace(ts=jnp.asarray(ts), energy=jnp.asarray(e), d_energy=jnp.asarray(de),
                           d2_energy=jnp.asarray(d2e))
    return float(charging_time(traj, e_ss, EPS))


# --------------------------------------------------------------------------- workers (subprocesses)


def qutip_worker(n, tol, t_max):
    import qutip as qt

    j = n / 2
    # qutip.jmat: index 0 is m = +j, i.e. excitation number n; flip the diagonals accordingly
    jm, jp = qt.jmat(j, "-"), qt.jmat(j, "+")
    h, h1, h2 = (qt.Qobj(np.diag(x[::-1])).to("csr") for x in adjoint_diagonals(n))
    rho0 = qt.fock_dm(n + 1, n)
    ts = np.linspace(0.0, t_max, NT)
    c_ops = [math.sqrt(RATE) * jm, math.sqrt(RATE * X) * jp]
    opts = {"atol": tol, "rtol": tol, "nsteps": 10**9, "method": "adams", "progress_bar": False}
    l0 = load()
    c0, t0 = time.process_time(), time.perf_counter()
    r = qt.mesolve(h, rho0, ts, c_ops, e_ops=[h, h1, h2], options=opts)
    run, cpu = time.perf_counter() - t0, time.process_time() - c0
    e, de, d2e = (np.real(np.asarray(x)) for x in r.expect)
    return {"run_s": run, "cpu_s": cpu, "compile_s": None, "load_before": l0, "load_after": load(), "ts": ts,
            "energy": e, "d_energy": de, "d2_energy": d2e, "method": "mesolve adams (CSR)"}


def dynamiqs_worker(n, tol, t_max):
    import dynamiqs as dq

    dq.set_precision("double")
    dq.set_device("cpu")
    dq.set_progress_meter(False)
    k = np.arange(1, n + 1, dtype=float)
    jm = np.zeros((n + 1, n + 1), complex)
    jm[np.arange(n), np.arange(1, n + 1)] = np.sqrt(k * (n - k + 1))  # J- |k> = sqrt(k (N - k + 1)) |k - 1>
    Jm = dq.asqarray(jm, layout=dq.dia)
    Jp = Jm.dag()
    h, h1, h2 = (dq.asqarray(np.diag(x).astype(complex), layout=dq.dia) for x in adjoint_diagonals(n))
    rho0 = dq.fock_dm(n + 1, 0)
    jumps = [math.sqrt(RATE) * Jm, math.sqrt(RATE * X) * Jp]
    method = dq.method.Tsit5(rtol=tol, atol=tol, max_steps=10**9)
    ts = np.linspace(0.0, t_max, NT)

    def run(tsave):
        r = dq.mesolve(h, jumps, rho0, tsave, exp_ops=[h, h1, h2], method=method, save_states=False)
        return np.real(np.asarray(jax.block_until_ready(r.expects)))

    t0 = time.perf_counter()
    run(ts * 1e-6)  # same shapes, negligible window: compilation
    compile_s = time.perf_counter() - t0
    l0 = load()
    c0, t0 = time.process_time(), time.perf_counter()
    e, de, d2e = run(ts)
    return {"run_s": time.perf_counter() - t0, "cpu_s": time.process_time() - c0, "compile_s": compile_s,
            "load_before": l0, "load_after": load(), "ts": ts, "energy": e, "d_energy": de, "d2_energy": d2e,
            "method": "mesolve tsit5 (dia)"}


def worker_main(spec):
    job = json.loads(spec)
    fn = {"qutip": qutip_worker, "dynamiqs": dynamiqs_worker}[job["tool"]]
    out = fn(job["n"], job["tol"], job["t_max"])
    print("RESULT " + json.dumps({k: (v.tolist() if isinstance(v, np.ndarray) else v) for k, v in out.items()}),
          flush=True)


def run_worker(tool, n, tol, t_max, cap):
    job = json.dumps({"tool": tool, "n": n, "tol": tol, "t_max": t_max})
    cmd = [sys.executable, os.path.abspath(__file__), "--threads", str(ARGS.threads), "--worker", job]
    t0 = time.perf_counter()
    try:
        p = subprocess.run(cmd, capture_output=True, text=True, timeout=cap)
    except subprocess.TimeoutExpired:
        return {"status": f"timed out (> {cap:.0f} s wall)", "wall_s": time.perf_counter() - t0}
    wall = time.perf_counter() - t0
    line = next((x for x in p.stdout.splitlines() if x.startswith("RESULT ")), None)
    if p.returncode != 0 or line is None:
        tail = (p.stderr or p.stdout).strip().splitlines()[-3:]
        return {"status": f"failed (rc {p.returncode}): {' | '.join(tail)}", "wall_s": wall}
    return {"status": "ok", "wall_s": wall, **json.loads(line[len("RESULT "):])}


# --------------------------------------------------------------------------- qbjax


def qbjax_case(n, repeats):
    from qbjax import ODEOptions
    from qbjax.models.heat_engine import HeatEngineBattery
    from qbjax.steady import open_charging

    model = HeatEngineBattery(n, BETA_OMEGA, RATE, OMEGA0)

    def call():
        r = open_charging(model, eps=EPS)
        jax.block_until_ready(r.charging_time)
        return r

    l0 = load()
    t0 = time.perf_counter()
    res = call()
    first = time.perf_counter() - t0
    times, cpus = [], []
    for _ in range(repeats):
        c0, t0 = time.process_time(), time.perf_counter()
        res = call()
        times.append(time.perf_counter() - t0)
        cpus.append(time.process_time() - c0)
    med = statistics.median(times)
    l1 = load()
    t_max = float(res.trajectory.ts[-1])
    # the reference: the same call at rtol = 1e-12, checked against 1e-13 on the same window
    refs = {}
    for rtol in (1e-12, 1e-13):
        t0 = time.perf_counter()
        r = open_charging(model, eps=EPS, t_max=t_max, options=ODEOptions(rtol=rtol, atol=1e-16))
        refs[rtol] = (r, time.perf_counter() - t0)
    ref = refs[1e-12][0]
    ref_check = abs(float(refs[1e-13][0].charging_time) / float(ref.charging_time) - 1)
    tau_ref, e_ss = float(ref.charging_time), float(ref.steady.energy)
    row = {"n": n, "tool": "qbjax", "method": "open_charging (rates, rtol 1e-8)", "tol": 1e-8, "dim": n + 1,
           "compile_s": max(first - med, 0.0), "first_s": first, "run_s": med, "runs": len(times),
           "times_s": times, "cpu_s": statistics.median(cpus), "load_before": l0, "load_after": l1,
           "tau": float(res.charging_time),
           "rel_tau_err": abs(float(res.charging_time) / tau_ref - 1),
           "max_energy_err_per_n": float(jnp.max(jnp.abs(res.trajectory.energy - ref.trajectory.energy))) / n,
           "status": "ok"}
    case = {"n": n, "t_max": t_max, "tau_ref": tau_ref, "steady_energy": e_ss,
            "steady_energy_density": e_ss / (n * OMEGA0), "ref_rtol": 1e-12, "ref_check_rtol_1e-13": ref_check,
            "ref_time_s": refs[1e-12][1], "ref_energy": np.asarray(ref.trajectory.energy).tolist()}
    return row, case


# --------------------------------------------------------------------------- main


def memory_estimate(tool, n):
    """Bytes: the density matrix and the solver's stage vectors (+ the CSR superoperator for QuTiP)."""
    rho = 16.0 * (n + 1) ** 2
    if tool == "qutip":
        return rho * 16 + 5 * (n + 1) ** 2 * 16.0  # adams history vectors; ~5 (N+1)^2 nonzeros (value + index)
    return rho * 12  # tsit5 stages, error estimate, saved state


def extrapolate(rows, n):
    """Power law through the CPU times of the two largest finished N of a tool: (predicted s, exponent)."""
    last = {r["n"]: r for r in rows if r["status"] == "ok"}  # per N, its last (equal-accuracy) run
    if len(last) < 2:
        return None, None
    a, b = (last[m] for m in sorted(last)[-2:])
    k = math.log(b["cpu_s"] / a["cpu_s"]) / math.log(b["n"] / a["n"])
    return b["cpu_s"] * (n / b["n"]) ** k, k


def other_tool(tool, cases, args, target_of, notes):
    rows = []
    tol_idx = None
    ram = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    for n in args.others_ns:
        case = cases.get(n)
        if case is None:
            case = cases[n] = qbjax_reference_only(n)
        mem = memory_estimate(tool, n)
        pred, k = extrapolate(rows, n)
        base = {"n": n, "tool": tool, "dim": (n + 1) ** 2, "memory_estimate_gb": mem / 2**30,
                "predicted_s": pred, "fit_exponent": k}
        if mem > 0.8 * ram:
            msg = f"does not fit in memory: ~{mem / 2**30:.0f} GiB needed, {ram / 2**30:.0f} GiB RAM"
            rows.append({**base, "status": "skipped: " + msg})
            notes.append(f"{tool} N={n}: {msg}")
            print(f"  {tool:8s} N={n}: skipped ({msg})", flush=True)
            continue
        if pred is not None and args.attempt_factor is not None and pred > args.attempt_factor * args.cap:
            msg = (f"does not fit in time: extrapolated {pred:.3g} s (power law N^{k:.2f} from its smaller N) "
                   f"> {args.attempt_factor:g} x cap {args.cap:.0f} s")
            rows.append({**base, "status": "skipped: " + msg})
            notes.append(f"{tool} N={n}: {msg}")
            print(f"  {tool:8s} N={n}: skipped ({msg})", flush=True)
            continue
        if pred is not None:
            print(f"  {tool:8s} N={n}: extrapolated CPU time {pred:.3g} s (N^{k:.2f})", flush=True)
        target = target_of(n)
        ladder = range(len(TOLS)) if tol_idx is None else range(tol_idx, len(TOLS))
        for i in ladder:
            tol = TOLS[i]
            print(f"  {tool:8s} N={n} tol={tol:.0e} ...", flush=True)
            out = run_worker(tool, n, tol, case["t_max"], args.cap)
            row = {**base, "tol": tol, "status": out["status"], "wall_s": out["wall_s"], "target_rel_tau_err": target}
            if out["status"] != "ok":
                row.update({"run_s": None, "compile_s": None, "load_after": load()})
                rows.append(row)
                notes.append(f"{tool} N={n} tol={tol:.0e}: {out['status']}")
                print(f"  {tool:8s} N={n}: {out['status']}", flush=True)
                break
            tau = tau_from(out["ts"], out["energy"], out["d_energy"], out["d2_energy"], case["steady_energy"])
            row.update({"method": out["method"], "run_s": out["run_s"], "cpu_s": out["cpu_s"],
                        "compile_s": out["compile_s"],
                        "load_before": out["load_before"], "load_after": out["load_after"], "tau": tau,
                        "rel_tau_err": abs(tau / case["tau_ref"] - 1),
                        "max_energy_err_per_n": float(np.max(np.abs(np.asarray(out["energy"]) -
                                                                    np.asarray(case["ref_energy"])))) / n})
            row["equal_accuracy"] = row["rel_tau_err"] <= target
            rows.append(row)
            print(f"  {tool:8s} N={n} tol={tol:.0e}: run {out['run_s']:.2f} s, tau {tau:.10g}, rel err "
                  f"{row['rel_tau_err']:.1e} (target {target:.1e}), load {out['load_after']}", flush=True)
            if row["equal_accuracy"]:
                tol_idx = i
                break
        else:
            notes.append(f"{tool} N={n}: no tolerance down to {TOLS[-1]:.0e} reaches the target {target:.1e}")
        if rows[-1]["status"] != "ok":  # timed out or failed: larger N will not fit either
            why = rows[-1]["status"]
            for m in [m for m in args.others_ns if m > n]:
                mem = memory_estimate(tool, m)
                status = (f"skipped: does not fit in memory: ~{mem / 2**30:.0f} GiB needed" if mem > 0.8 * ram
                          else f"skipped: N={n} already {why}")
                rows.append({"n": m, "tool": tool, "dim": (m + 1) ** 2, "status": status,
                             "memory_estimate_gb": mem / 2**30, "smaller_n_capped": why.startswith("timed out")})
            break
    return rows


def qbjax_reference_only(n):
    from qbjax import ODEOptions
    from qbjax.models.heat_engine import HeatEngineBattery
    from qbjax.steady import open_charging

    model = HeatEngineBattery(n, BETA_OMEGA, RATE, OMEGA0)
    t_max = float(open_charging(model, eps=EPS).trajectory.ts[-1])
    r = open_charging(model, eps=EPS, t_max=t_max, options=ODEOptions(rtol=1e-12, atol=1e-16))
    return {"n": n, "t_max": t_max, "tau_ref": float(r.charging_time), "steady_energy": float(r.steady.energy),
            "ref_rtol": 1e-12, "ref_energy": np.asarray(r.trajectory.energy).tolist(), "reference_only": True}


def fmt(x, spec):
    return "—" if x is None else format(x, spec)


def table(rows, qb_run, qb_cpu):
    head = ("| N | tool | method | tol | dim | compile s | run s (wall) | run s (CPU) | tau | rel tau err | max dE/N "
            "| wall / qbjax | CPU / qbjax | load (1, 5, 15 min) | status |")
    lines = [head, "|" + "|".join(["---"] * 15) + "|"]
    for r in rows:
        ratio = r["run_s"] / qb_run[r["n"]] if r.get("run_s") and r["n"] in qb_run else None
        cratio = r["cpu_s"] / qb_cpu[r["n"]] if r.get("cpu_s") and r["n"] in qb_cpu else None
        lines.append(
            f"| {r['n']} | {r['tool']} | {r.get('method', '—')} | {fmt(r.get('tol'), '.0e')} | {r['dim']} "
            f"| {fmt(r.get('compile_s'), '.2f')} | {fmt(r.get('run_s'), '.3g')} | {fmt(r.get('cpu_s'), '.3g')} "
            f"| {fmt(r.get('tau'), '.10g')} | {fmt(r.get('rel_tau_err'), '.1e')} "
            f"| {fmt(r.get('max_energy_err_per_n'), '.1e')} | {fmt(ratio, '.3g')} | {fmt(cratio, '.3g')} "
            f"| {r.get('load_after', '—')} | {r['status']} |")
    return "\n".join(lines)


def fit(rows, tool):
    """Power law through the CPU times of a tool's two largest finished N: (N_ref, cpu_ref, exponent) or None."""
    last = {r["n"]: r for r in rows if r["tool"] == tool and r.get("equal_accuracy")}
    if len(last) < 2:
        return None
    a, b = (last[m] for m in sorted(last)[-2:])
    return b["n"], b["cpu_s"], math.log(b["cpu_s"] / a["cpu_s"]) / math.log(b["n"] / a["n"])


def summarize(rows, cap):
    """Per N: qbjax's times and each tool's time ratio at equal accuracy (measured, a lower bound when a run hit
    the cap, and a power-law extrapolation of the CPU ratio where the tool did not finish)."""
    qb_run = {r["n"]: r["run_s"] for r in rows if r["tool"] == "qbjax"}
    qb_cpu = {r["n"]: r["cpu_s"] for r in rows if r["tool"] == "qbjax"}
    summary = []
    for n in sorted(qb_run):
        line = {"n": n, "qbjax_run_s": qb_run[n], "qbjax_cpu_s": qb_cpu[n], "qbjax_compile_s": next(
            r["compile_s"] for r in rows if r["tool"] == "qbjax" and r["n"] == n)}
        for tool in ("qutip", "dynamiqs"):
            mine = [r for r in rows if r["tool"] == tool and r["n"] == n]
            eq = [r for r in mine if r.get("equal_accuracy")]
            if eq:
                line[f"{tool}_over_qbjax"] = eq[0]["run_s"] / qb_run[n]
                line[f"{tool}_cpu_over_qbjax_cpu"] = eq[0]["cpu_s"] / qb_cpu[n]
                line[f"{tool}_run_s"] = eq[0]["run_s"]
                continue
            if not mine:
                continue
            status = mine[-1]["status"]
            if "memory" in status:
                line[f"{tool}_over_qbjax"] = status
                continue
            if status.startswith("timed out") or mine[-1].get("smaller_n_capped"):
                where = "" if status.startswith("timed out") else ", reached at a smaller N"
                line[f"{tool}_over_qbjax"] = f"> {cap / qb_run[n]:.3g} (capped at {cap:.0f} s wall{where})"
            else:
                line[f"{tool}_over_qbjax"] = status
            f = fit(rows, tool)
            if f is not None:
                n0, c0, k = f
                line[f"{tool}_cpu_over_qbjax_cpu_extrapolated"] = (
                    f"~{c0 * (n / n0) ** k / qb_cpu[n]:.3g} (CPU ~ N^{k:.2f} from N = {n0} and below)")
        summary.append(line)
    return summary


def report(out, path):
    rows, cap = out["rows"], out["cap_s"]
    qb_run = {r["n"]: r["run_s"] for r in rows if r["tool"] == "qbjax"}
    qb_cpu = {r["n"]: r["cpu_s"] for r in rows if r["tool"] == "qbjax"}
    out["summary"] = summarize(rows, cap)
    print("\n" + table(rows, qb_run, qb_cpu))
    print("\nwall (CPU) / qbjax: this row's wall (process CPU) run time over qbjax's at the same N (> 1: qbjax is "
          "faster); all single-threaded, so on a loaded box CPU time ~ the unloaded wall time. "
          f"qbjax times include its steady state and tau; compile separate. Total wall time "
          f"{out['total_wall_s']:.0f} s; load at end {out['machine']['load_at_end']}.")
    print("ratios at equal accuracy (rel tau error <= qbjax's own, >= 1e-9):")
    for s in out["summary"]:
        print("  " + ", ".join(f"{k} = {fmt(v, '.3g') if isinstance(v, float) else v}" for k, v in s.items()))
    if out["notes"]:
        print("notes:\n" + "\n".join(f"  - {x}" for x in out["notes"]))
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with open(path, "w") as f:
        json.dump(out, f, indent=1)
    print(f"results written to {path}")


def main(args):
    import dynamiqs as dq
    import qutip as qt

    import qbjax as qb

    t_start = time.perf_counter()
    notes: list[str] = []
    rows, cases = [], {}
    print(f"load at start {load()} on {os.cpu_count()} cpus", flush=True)
    for n in args.ns:
        print(f"  qbjax    N={n} ...", flush=True)
        row, case = qbjax_case(n, args.repeats)
        rows.append(row)
        cases[n] = case
        print(f"  qbjax    N={n}: compile {row['compile_s']:.2f} s, run {row['run_s']:.3f} s (median of "
              f"{row['runs']}), tau {row['tau']:.10g} (ref {case['tau_ref']:.10g}, rel err {row['rel_tau_err']:.1e};"
              f" ref vs rtol 1e-13: {case['ref_check_rtol_1e-13']:.1e}), load {row['load_after']}", flush=True)
    qb_err = {r["n"]: r["rel_tau_err"] for r in rows}

    def target_of(n):
        return max(qb_err.get(n, min(qb_err.values())), 1e-9)

    for tool in ("qutip", "dynamiqs"):
        if tool in args.skip:
            continue
        rows += other_tool(tool, cases, args, target_of, notes)
    for c in cases.values():
        c.pop("ref_energy", None)
    out = {"benchmark": "heat_engine", "argv": sys.argv[1:], "quick": args.quick, "cap_s": args.cap,
           "threads": args.threads, "repeats": args.repeats, "total_wall_s": time.perf_counter() - t_start,
           "params": {"beta_omega": BETA_OMEGA, "rate": RATE, "omega0": OMEGA0, "eps": EPS, "num_times": NT},
           "versions": {"qbjax": qb.__version__, "jax": jax.__version__, "qutip": qt.__version__,
                        "dynamiqs": dq.__version__, "numpy": np.__version__, "python": platform.python_version()},
           "machine": {"cpus": os.cpu_count(), "platform": platform.platform(), "load_at_end": load()},
           "cases": list(cases.values()), "rows": rows, "notes": notes}
    report(out, args.out)


if __name__ == "__main__":
    if ARGS.worker:
        worker_main(ARGS.worker)
    elif ARGS.report:
        with open(ARGS.report) as fh:
            report(json.load(fh), ARGS.out)
    else:
        main(ARGS)
