"""Collisional charging benchmark: qbjax vs QuTiP (seed 003, Salvia et al.).

The same collisions in both tools: an oscillator battery cut at 250 levels,
qubit units in the state of Eq. 1, the exchange interaction of Eq. 2 with swap
angle theta per collision, K = 10^4 collisions.

qbjax   ``qbjax.collisional.collide``: one ``lax.scan``; the collision unitary
        is a direct sum of 2x2 rotations, so a collision costs O(d^2) on the
        density matrix (coherent units) and O(d) on the populations
        (incoherent units).
QuTiP   the textbook loop: ``U = expm(-i theta H)`` on battery x qubit
        (500 x 500, once), then per collision
        ``rho_B <- ptrace(U (rho_B x rho_Q) U^+, battery)``.  Timed on
        ``--qutip-collisions`` collisions (the loop costs the same at every
        step) and reported per collision; its state after those collisions is
        compared with qbjax's (max abs difference of rho_B).

Cases
  coherent     q = 1/2, c = 1 (|+> units), theta = 0.0025 (Omega tau = 25)
  incoherent   q = 0, c = 0 (excited units), theta = 0.0025
  lossy        coherent, damping gamma = 1e-3 after each collision (qbjax only:
               QuTiP has no cheap form of the channel Eq. 21 at d = 250)
  optimise     an optax optimisation of K = 1000 angles (coherent units,
               80 levels, Omega tau = 10) run to convergence; QuTiP has no
               gradients: its finite-difference gradient would cost K + 1
               forward runs, which is extrapolated from its per-collision time.

Timing: a first call (compile + run), then ``--repeats`` timed calls (median).

    python benchmarks/bench_collisional.py            # full
    python benchmarks/bench_collisional.py --quick    # smoke run
"""

from __future__ import annotations

import argparse
import os
import sys


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true", help="K = 2000, 30 QuTiP collisions, a short optimisation")
    p.add_argument("--out", default=os.path.join(os.path.dirname(os.path.abspath(__file__)), "results",
                                                 "collisional.json"))
    p.add_argument("--levels", type=int, default=250)
    p.add_argument("--collisions", type=int, default=None, help="K (default 10000; quick 2000)")
    p.add_argument("--theta", type=float, default=0.0025)
    p.add_argument("--qutip-collisions", type=int, default=None, help="collisions timed in QuTiP (default 200)")
    p.add_argument("--repeats", type=int, default=None, help="timed repeats (default 5; quick 2)")
    p.add_argument("--opt-collisions", type=int, default=None, help="angles optimised (default 1000; quick 100)")
    p.add_argument("--opt-steps", type=int, default=None, help="at most this many Adam steps (default 3000)")
    p.add_argument("--threads", type=int, default=1,
                   help="BLAS/XLA threads (default 1: a shared box; 0 leaves the environment alone)")
    p.add_argument("--device", choices=["cpu", "default"], default="cpu",
                   help="qbjax on the CPU (default) or on JAX's default device (a GPU if present)")
    a = p.parse_args(argv)
    q = a.quick
    a.collisions = a.collisions or (2000 if q else 10000)
    a.qutip_collisions = a.qutip_collisions or (30 if q else 200)
    a.repeats = a.repeats or (2 if q else 5)
    a.opt_collisions = a.opt_collisions or (100 if q else 1000)
    a.opt_steps = a.opt_steps or (200 if q else 3000)
    return a


ARGS = parse_args()
if ARGS.threads > 0:  # must precede the numpy / jax imports
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[var] = str(ARGS.threads)
    if ARGS.threads == 1:
        os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") +
                                   " --xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1").strip()

import json  # noqa: E402
import platform  # noqa: E402
import statistics  # noqa: E402
import time  # noqa: E402

import jax  # noqa: E402

jax.config.update("jax_enable_x64", True)
if ARGS.device == "cpu":
    jax.config.update("jax_platforms", "cpu")

import numpy as np  # noqa: E402
import qutip as qt  # noqa: E402

import qbjax  # noqa: E402
from qbjax.collisional import (  # noqa: E402
    CollisionalModel,
    LadderBattery,
    QubitUnits,
    collide,
    optimize_schedule,
    stored_energy,
    stored_energy_and_grad,
)


def timed(fn, repeats):
    """(first call incl. compilation, median of ``repeats`` further calls, result)."""
    t = time.perf_counter()
    out = jax.block_until_ready(fn())
    first = time.perf_counter() - t
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        out = jax.block_until_ready(fn())
        times.append(time.perf_counter() - t)
    return first, statistics.median(times), out


def qutip_loop(levels, units, theta, collisions):
    """The general-purpose way: dense U on battery x qubit, partial trace each collision (QuTiP 5)."""
    a = qt.destroy(levels)
    sigma = qt.basis(2, 1) * qt.basis(2, 0).dag()  # |e><g|, basis (g, e) as in qbjax
    h = qt.tensor(a, sigma) + qt.tensor(a.dag(), sigma.dag())
    t = time.perf_counter()
    u = (-1j * theta * h).expm()
    setup = time.perf_counter() - t
    rq = qt.Qobj(np.asarray(units.density_matrix()))
    rho = qt.fock_dm(levels, 0)
    t = time.perf_counter()
    for _ in range(collisions):
        rho = (u * qt.tensor(rho, rq) * u.dag()).ptrace(0)
    loop = time.perf_counter() - t
    return setup, loop / collisions, rho.full()


def bench_case(name, units, loss, with_qutip):
    battery = LadderBattery("oscillator", ARGS.levels)
    model = CollisionalModel(battery, units, loss)
    thetas = np.full(ARGS.collisions, ARGS.theta)
    first, run, traj = timed(lambda: collide(model, thetas, warn=False), ARGS.repeats)
    row = {"case": name, "levels": ARGS.levels, "collisions": ARGS.collisions, "theta": ARGS.theta, "loss": loss,
           "mode": traj.mode, "qbjax_first_s": first, "qbjax_s": run, "qbjax_per_collision_s": run / ARGS.collisions,
           "final_energy": float(traj.energy[-1]), "top_population": float(traj.top_population)}
    if with_qutip:
        setup, per, rho_qt = qutip_loop(ARGS.levels, units, ARGS.theta, ARGS.qutip_collisions)
        ref = collide(model, np.full(ARGS.qutip_collisions, ARGS.theta), warn=False)
        diff = float(np.max(np.abs(np.asarray(ref.density_matrix()) - rho_qt)))
        row.update({"qutip_collisions_timed": ARGS.qutip_collisions, "qutip_expm_s": setup,
                    "qutip_per_collision_s": per, "qutip_extrapolated_s": per * ARGS.collisions,
                    "ratio_per_collision": per / row["qbjax_per_collision_s"],
                    "max_abs_difference_rho": diff})
    return row


def bench_optimise(qutip_per_collision):
    battery = LadderBattery("oscillator", 80)
    model = CollisionalModel(battery, QubitUnits(0.5, 1.0))
    k, t = ARGS.opt_collisions, 10.0
    const = float(stored_energy(model, np.full(k, t / k)))
    first, grad_s, _ = timed(lambda: stored_energy_and_grad(model, np.full(k, t / k)), ARGS.repeats)
    start = time.perf_counter()
    res = optimize_schedule(model, t, k, steps=ARGS.opt_steps, learning_rate=0.02, tol=1e-10, patience=50,
                            verbose=sys.stderr.isatty())
    total = time.perf_counter() - start
    # QuTiP: a finite-difference gradient = K + 1 forward runs of K collisions (d = 80 here: scale its d = 250
    # per-collision time by (80/250)^3, the cost of its dense 2d x 2d products; an estimate, labelled as such).
    qutip_fd = (k + 1) * k * qutip_per_collision * (80 / ARGS.levels) ** 3 if qutip_per_collision else None
    return {"case": "optimise", "levels": 80, "collisions": k, "time": t, "constant_energy": const,
            "optimized_energy": float(res.energy), "driving_limit": t**2 / 4, "steps": res.steps,
            "converged": res.converged, "optimise_total_s": total, "per_step_s": total / res.steps,
            "gradient_first_s": first, "gradient_s": grad_s,
            "qutip_fd_gradient_estimate_s": qutip_fd,
            "ratio_gradient_vs_qutip_fd_estimate": qutip_fd / grad_s if qutip_fd else None}


def git_describe():
    import subprocess

    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    try:
        head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True, check=True)
        diff = subprocess.run(["git", "diff", "--quiet", "HEAD", "--", "qbjax"], cwd=root, capture_output=True)
    except (OSError, subprocess.CalledProcessError):
        return None
    return {"commit": head.stdout.strip(), "qbjax_modified": diff.returncode != 0}


def table(rows):
    lines = ["| case | mode | K | qbjax total (s) | qbjax / collision (us) | QuTiP / collision (us) | ratio | "
             "max abs diff |", "|---|---|---|---|---|---|---|---|"]
    for r in rows[:-1]:
        q = r.get("qutip_per_collision_s")
        qutip = "-" if q is None else f"{1e6 * q:.0f}"
        ratio = "-" if q is None else f"{r['ratio_per_collision']:.0f}x"
        diff = "-" if q is None else f"{r['max_abs_difference_rho']:.1e}"
        lines.append(f"| {r['case']} | {r['mode']} | {r['collisions']} | {r['qbjax_s']:.3f} | "
                     f"{1e6 * r['qbjax_per_collision_s']:.2f} | {qutip} | {ratio} | {diff} |")
    o = rows[-1]
    est = o["ratio_gradient_vs_qutip_fd_estimate"]
    lines.append("")
    lines.append(f"optimise K = {o['collisions']} angles (80 levels, Omega tau = 10): {o['steps']} Adam steps, "
                 f"converged = {o['converged']}, {o['optimise_total_s']:.1f} s ({1e3 * o['per_step_s']:.1f} ms/step); "
                 f"E: constant {o['constant_energy']:.4f} -> optimised {o['optimized_energy']:.4f} "
                 f"(driving limit {o['driving_limit']:.2f}); one gradient {1e3 * o['gradient_s']:.1f} ms"
                 + ("" if est is None else f" vs QuTiP finite differences ~{o['qutip_fd_gradient_estimate_s']:.0f} s "
                    f"(estimate, {est:.0f}x)"))
    return "\n".join(lines)


def main():
    start = time.perf_counter()
    git = git_describe()
    rows = [bench_case("coherent", QubitUnits(0.5, 1.0), 0.0, True),
            bench_case("incoherent", QubitUnits(0.0, 0.0), 0.0, True),
            bench_case("lossy", QubitUnits(0.5, 1.0), 1e-3, False)]
    rows.append(bench_optimise(rows[0]["qutip_per_collision_s"]))
    print(table(rows))
    result = {
        "benchmark": "collisional", "argv": sys.argv[1:], "quick": ARGS.quick, "threads": ARGS.threads,
        "device": str(jax.devices()[0]), "total_wall_s": time.perf_counter() - start, "qbjax_git": git,
        "versions": {"qbjax": qbjax.__version__, "jax": jax.__version__, "qutip": qt.__version__,
                     "numpy": np.__version__, "python": platform.python_version()},
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform()},
        "cases": rows, "table": table(rows),
    }
    os.makedirs(os.path.dirname(os.path.abspath(ARGS.out)), exist_ok=True)
    with open(ARGS.out, "w") as f:
        json.dump(result, f, indent=1)
    print(f"wrote {ARGS.out}")


if __name__ == "__main__":
    main()
