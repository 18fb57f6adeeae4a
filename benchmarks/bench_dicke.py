"""Dicke battery benchmark: qbjax vs QuTiP vs dynamiqs (Andolina et al., PRB 99, 205437 (2019)).

    H = w0 a^+ a + w0 (J_z + N/2) + 2 g (a + a^+) J_x,   J = N/2,   w0 = 1
    charger in the Fock state |N>, spin in m = -J;  E_B(t) = <w0 (J_z + N/2)>

Cases
  1. g = 0.5, N = 10, 20, 40: E_B at 201 times in [0, 3/(g sqrt N)].
  2. N = 20, a sweep of g = linspace(0.05, 2, 64), each on its own grid of
     201 times up to 3/(g sqrt N).  Batched runs use the exact rescaling
     E_B(s T(g); H_g) = E_B(s; T(g) H_g) with a common grid s = linspace(0, 1, 201).

All tools: the same Fock cutoff per case, complex128.  ODE tools at
rtol = atol = 1e-8 (qbjax "ode" and dynamiqs use diffrax Dopri8, QuTiP its
default "adams").  qbjax "spectral" (dense diagonalisation of the parity
block) and qbjax "chebyshev" (matrix-free Chebyshev expansion with dense
output) are exact to rounding.  qbjax chebyshev needs concrete parameters, so
the sweep calls it in a Python loop (under jax.vmap it would fall back to
"ode"; the method that ran is checked).

Reference: qbjax spectral where its dense block is affordable (N = 10, 20),
else qbjax chebyshev (N = 40 and the sweep), cross-checked at one point
against spectral (if its block is at most --check-spectral-dim) or qbjax ode
at rtol = atol = 1e-12, printed.  For N = 20 an "equal accuracy" QuTiP row
reports the loosest QuTiP tolerance (1e-10, 1e-11, 1e-12, then 1e-13, 1e-14
if needed) whose max abs error is <= 1e-8, and its time (for the default
"adams" and for QuTiP's "vern9"); the sweep gets the same "adams" row, its
tolerance the tightest needed at the smallest and the largest g.

Ratios: t/t(qbjax best) is a row's per-trajectory time over that of the
fastest qbjax method of its case (> 1: qbjax is faster); a summary line per
case gives qutip/qbjax_best and dynamiqs/qbjax_best.

Timing: a first call (compile + run), then up to --repeats timed calls
(median).  A per-entry time budget (--budget seconds) caps the repeats of
slow entries (never fewer than one); the number of timed runs is printed.
Entries that cannot fit at all are skipped with the reason printed.

    python benchmarks/bench_dicke.py            # full (see --help)
    python benchmarks/bench_dicke.py --quick    # smoke run
"""

from __future__ import annotations

import argparse
import os
import sys


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true", help="N=10 and an 8-point sweep only, fewer repeats")
    p.add_argument("--out", default=os.path.join(os.path.dirname(os.path.abspath(__file__)), "results", "dicke.json"))
    p.add_argument("--repeats", type=int, default=None, help="timed repeats after the first call (default 5; quick 3)")
    p.add_argument("--budget", type=float, default=None,
                   help="seconds of timed repeats per entry; caps the repeats of slow entries (default 45; quick 8)")
    p.add_argument("--sweep-points", type=int, default=None, help="number of g values (default 64; quick 8)")
    p.add_argument("--ref-points", type=int, default=None,
                   help="sweep points with an ode 1e-12 reference run, only when chebyshev is skipped and spectral "
                        "does not fit (default 8; quick 2)")
    p.add_argument("--max-spectral-dim", type=int, default=None,
                   help="largest parity block for timed qbjax spectral rows (default 3000; quick 1000)")
    p.add_argument("--check-spectral-dim", type=int, default=None,
                   help="largest parity block for the one-point spectral cross-check of a chebyshev reference; "
                        "above it the check is qbjax ode at 1e-12 (default 4000; quick 1000)")
    p.add_argument("--equal-accuracy", type=float, default=1e-8,
                   help="max abs error the N=20 'equal accuracy' QuTiP rows must reach (default 1e-8)")
    p.add_argument("--tol", type=float, default=1e-8)
    p.add_argument("--threads", type=int, default=1,
                   help="BLAS/XLA threads (default 1: this box is shared and oversubscribed BLAS threads spin; "
                        "0 leaves the environment alone)")
    p.add_argument("--qbjax-vmap", action="store_true",
                   help="also time qbjax ode with jax.vmap over the sweep (slow: lockstep adaptive steps)")
    p.add_argument("--qbjax-map", action="store_true",
                   help="also time qbjax ode with jax.lax.map over the sweep (one jitted program; ~ the loop's time)")
    p.add_argument("--cases", default="single,sweep", help="comma list: single (N = 10, 20, 40), sweep")
    p.add_argument("--skip", default="",
                   help="comma list to skip: auto,qutip,dynamiqs,spectral,chebyshev,equal-accuracy")
    a = p.parse_args(argv)
    q = a.quick
    a.repeats = a.repeats if a.repeats is not None else (3 if q else 5)
    a.budget = a.budget if a.budget is not None else (8.0 if q else 45.0)
    a.sweep_points = a.sweep_points if a.sweep_points is not None else (8 if q else 64)
    a.ref_points = a.ref_points if a.ref_points is not None else (2 if q else 8)
    a.max_spectral_dim = a.max_spectral_dim if a.max_spectral_dim is not None else (1000 if q else 3000)
    a.check_spectral_dim = a.check_spectral_dim if a.check_spectral_dim is not None else (1000 if q else 4000)
    a.skip = {s.strip() for s in a.skip.split(",") if s.strip()}
    a.cases = {s.strip() for s in a.cases.split(",") if s.strip()}
    return a


ARGS = parse_args()
if ARGS.threads > 0:  # must precede the numpy / jax imports
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[var] = str(ARGS.threads)
    if ARGS.threads == 1:
        os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") +
                                   " --xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1").strip()

import json  # noqa: E402
import math  # noqa: E402
import platform  # noqa: E402
import statistics  # noqa: E402
import time  # noqa: E402
import warnings  # noqa: E402

import jax  # noqa: E402

jax.config.update("jax_enable_x64", True)
jax.config.update("jax_platforms", "cpu")

import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402

import qbjax as qb  # noqa: E402
from qbjax import representation as rep  # noqa: E402
from qbjax.analysis import replace_params  # noqa: E402

OMEGA0 = 1.0
NT = 201
S = np.linspace(0.0, 1.0, NT)  # unit grid; t = S * T(g)

# Fock levels kept (dimension of the mode).  Chosen so that the top level
# holds < 1e-8 population over the window (checked at run time and printed):
# the field is displaced by up to ~ g N t = 3 sqrt(N) over t <= 3/(g sqrt N),
# so the photon number spreads well above N (up to ~ 10-16 N).
CUTOFFS = {("single", 10): 150, ("single", 20): 280, ("single", 40): 460, ("sweep", 20): 330}

NOTES: list[str] = []


def note(msg: str):
    NOTES.append(msg)
    print(f"  note: {msg}", flush=True)


def t_window(g, n):
    return 3.0 / (g * math.sqrt(n))


# --------------------------------------------------------------------------- operators for QuTiP / dynamiqs


def spin_matrices(n):
    """J_x, J_z for J = n/2 in the basis m = +J, ..., -J (index n is m = -J)."""
    j = n / 2
    m = np.arange(j, -j - 1, -1)
    jp = np.diag(np.sqrt(j * (j + 1) - m[1:] * (m[1:] + 1)), 1)  # J+ |m> = c |m+1>
    return (jp + jp.T) / 2, np.diag(m)


def qutip_ops(n, cutoff):
    import qutip as qt

    jx, jz = spin_matrices(n)
    a = qt.tensor(qt.destroy(cutoff), qt.qeye(n + 1))
    Jx = qt.tensor(qt.qeye(cutoff), qt.Qobj(jx))
    HB = OMEGA0 * (qt.tensor(qt.qeye(cutoff), qt.Qobj(jz)) + (n / 2) * qt.tensor(qt.qeye(cutoff), qt.qeye(n + 1)))
    H0 = OMEGA0 * a.dag() * a + HB
    HI = (a + a.dag()) * Jx
    psi0 = qt.tensor(qt.basis(cutoff, n), qt.basis(n + 1, n))
    return H0, HI, HB, psi0


def dynamiqs_ops(n, cutoff):
    import dynamiqs as dq

    jx, jz = spin_matrices(n)
    a = dq.tensor(dq.destroy(cutoff), dq.eye(n + 1))
    Jx = dq.tensor(dq.eye(cutoff), dq.asqarray(jx.astype(np.complex128), layout=dq.dia))
    Jz = dq.tensor(dq.eye(cutoff), dq.asqarray(jz.astype(np.complex128), layout=dq.dia))
    HB = OMEGA0 * (Jz + (n / 2) * dq.eye(cutoff, n + 1))
    H0 = OMEGA0 * (a.dag() @ a) + HB
    HI = (a + a.dag()) @ Jx
    psi0 = dq.tensor(dq.fock(cutoff, n), dq.basis(n + 1, n))
    return H0, HI, HB, psi0


# --------------------------------------------------------------------------- timing


def timed(fn, repeats, budget, label):
    """First call, then up to ``repeats`` timed calls within ``budget`` seconds."""
    t0 = time.perf_counter()
    out = fn()
    first = time.perf_counter() - t0
    # the first call may be mostly compilation: time one more call before deciding
    times = []
    t0 = time.perf_counter()
    out = fn()
    times.append(time.perf_counter() - t0)
    n_more = min(repeats - 1, int(max(0.0, budget - times[0]) // max(times[0], 1e-9)))
    for _ in range(n_more):
        t0 = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t0)
    if len(times) < repeats:
        note(f"{label}: {len(times)} timed run(s) instead of {repeats} (one run takes {times[0]:.1f} s, "
             f"budget {budget:.0f} s)")
    med = statistics.median(times)
    return out, {"first_s": first, "median_s": med, "compile_s": max(first - med, 0.0), "runs": len(times),
                 "times_s": times}


def block(x):
    return np.asarray(jax.block_until_ready(x))


# --------------------------------------------------------------------------- tools


class QbjaxTool:
    name = "qbjax"

    def __init__(self, n, cutoff, tol):
        self.n, self.cutoff, self.tol = n, cutoff, tol
        self.model = qb.DickeBattery(n=n, g=0.5, omega0=OMEGA0, cutoff=cutoff)
        self.options = qb.ODEOptions(rtol=tol, atol=tol)
        self.top = None
        self.warnings: list[str] = []
        self.ran: dict[str, set] = {}  # requested method -> methods that actually ran (traj.method)

    def spectral_dim(self):
        return rep.basis(self.model.spec()).dim

    def _charge(self, g, method, options=None):
        m = replace_params(self.model, g=g)
        ts = jnp.asarray(S * t_window(g, self.n))
        with warnings.catch_warnings(record=True) as w:
            warnings.simplefilter("always")
            tr = qb.charge(m, ts, method=method, options=options)
        self.warnings += [str(x.message) for x in w]
        self.ran.setdefault(method, set()).add(tr.method)
        return tr

    def loop(self, gs, method, options=None):
        """One ``qb.charge`` call per g: ode / spectral take g as a traced leaf (compiled once); chebyshev
        builds a static plan from the concrete g (its number of terms and chunks depend on g)."""
        def run():
            E, top = [], []
            for g in gs:
                tr = self._charge(float(g), method, options)
                E.append(block(tr.energy))
                top.append(float(np.max(block(tr.top_population))))
            self.top = max(top)
            return np.stack(E)

        return run

    def batched(self, gs, method, options=None, how="map"):
        """All g in one jitted program: ``lax.map`` (sequential) or ``vmap`` (lockstep)."""
        model, n, s = self.model, self.n, jnp.asarray(S)

        def one(g):
            tr = qb.charge(replace_params(model, g=g), s * (3.0 / (g * jnp.sqrt(float(n)))), method=method,
                           options=options)
            return tr.energy, jnp.max(tr.top_population)

        f = jax.jit((lambda x: jax.lax.map(one, x)) if how == "map" else jax.vmap(one))
        garr = jnp.asarray(np.asarray(gs, float))

        def run():
            E, top = f(garr)
            self.top = float(np.max(block(top)))
            return block(E)

        return run


class QutipTool:
    name = "qutip"

    def __init__(self, n, cutoff, tol):
        import qutip as qt

        self.qt, self.n = qt, n
        self.H0, self.HI, self.HB, self.psi0 = qutip_ops(n, cutoff)
        self.options = {"atol": tol, "rtol": tol, "nsteps": 10**7}

    def loop(self, gs, options=None):
        opts = self.options if options is None else options

        def run():
            out = []
            for g in gs:
                H = self.H0 + 2.0 * float(g) * self.HI
                r = self.qt.sesolve(H, self.psi0, S * t_window(float(g), self.n), e_ops=[self.HB], options=opts)
                out.append(np.real(np.asarray(r.expect[0])))
            return np.stack(out)

        return run


class DynamiqsTool:
    name = "dynamiqs"

    def __init__(self, n, cutoff, tol):
        import dynamiqs as dq

        self.dq, self.n = dq, n
        self.H0, self.HI, self.HB, self.psi0 = dynamiqs_ops(n, cutoff)
        self.method = dq.method.Dopri8(rtol=tol, atol=tol, max_steps=10**7)

    def batched(self, gs):
        """One ``dq.sesolve`` over a (K, d, d) stack of rescaled Hamiltonians T(g) H_g, common grid [0, 1]."""
        dq = self.dq
        g = jnp.asarray(np.asarray(gs, float))
        T = 3.0 / (g * math.sqrt(self.n))
        s = jnp.asarray(S)

        def run():
            H = T[:, None, None] * self.H0 + (2.0 * g * T)[:, None, None] * self.HI
            r = dq.sesolve(H, self.psi0, s, exp_ops=[self.HB], method=self.method, save_states=False)
            return np.real(block(r.expects))[:, 0, :]

        return run


# --------------------------------------------------------------------------- cases


def pick_qutip_tolerance(qtool, g, ref, target, method, label):
    """Loosest QuTiP atol = rtol in 1e-10, 1e-11, 1e-12 (then 1e-13, 1e-14) with max abs error <= target."""
    tried = []
    for tol in (1e-10, 1e-11, 1e-12, 1e-13, 1e-14):
        opts = {"atol": tol, "rtol": tol, "nsteps": 10**8, "method": method}
        t0 = time.perf_counter()
        E = qtool.loop([g], opts)()
        err = float(np.max(np.abs(E - ref)))
        tried.append({"tol": tol, "max_abs_err": err, "time_s": time.perf_counter() - t0})
        print(f"    qutip {method} atol=rtol={tol:.0e}: max abs err {err:.1e} ({tried[-1]['time_s']:.2f} s)",
              flush=True)
        if err <= target:
            if tol < 1e-12:
                note(f"{label}: QuTiP {method} misses {target:.0e} at tolerances 1e-10..1e-12; needed {tol:.0e}")
            return opts, tried
    note(f"{label}: QuTiP {method} never reaches max abs error {target:.0e} (tolerances down to 1e-14)")
    return None, tried


def run_case(label, n, gs, cutoff, args, ref_idx=None, results=None, meta=None, equal_accuracy=False):
    """Time every tool on the trajectories ``gs`` (one per g) and compare with the reference."""
    print(f"\n== {label}: N={n}, {len(gs)} trajector{'y' if len(gs) == 1 else 'ies'}, cutoff={cutoff} "
          f"(full dim {cutoff * (n + 1)}) ==", flush=True)
    K = len(gs)
    all_idx = list(range(K))
    qbj = QbjaxTool(n, cutoff, args.tol)
    sdim = qbj.spectral_dim()
    full_dim = cutoff * (n + 1)
    rows, outputs = [], {}
    case_meta = {"label": label, "n": n, "g": [float(x) for x in gs], "cutoff": cutoff, "spectral_dim": sdim,
                 "full_dim": full_dim}

    def add(tool, method, dim, fn, compile_applies=True, extra=None):
        print(f"  {tool:8s} {method:24s} ...", flush=True)
        E, tm = timed(fn, args.repeats, args.budget, f"{label} / {tool} {method}")
        outputs[(tool, method)] = E
        row = {"case": label, "tool": tool, "method": method, "dim": dim, "trajectories": K, **tm,
               "per_traj_s": tm["median_s"] / K, **(extra or {})}
        if not compile_applies:  # QuTiP compiles nothing; its first-call overhead stays in first_s
            row["compile_s"] = None
        rows.append(row)
        print(f"  {tool:8s} {method:24s} first {tm['first_s']:.2f}s median {tm['median_s']:.3f}s "
              f"({tm['runs']} runs)", flush=True)
        return E

    # ---- qbjax's default call: no method named (Auto's cost model chooses; what ran is recorded)
    if "auto" not in args.skip:
        add("qbjax", "auto (default call)" if K == 1 else "auto (default call, loop)", full_dim, qbj.loop(gs, "auto"))
        case_meta["auto_ran"] = sorted(qbj.ran.get("auto", set()))

    # ---- qbjax spectral (timed) where its dense block fits
    spectral_ok = "spectral" not in args.skip and sdim <= args.max_spectral_dim
    if spectral_ok:
        if K == 1:
            add("qbjax", "spectral", sdim, qbj.loop(gs, "spectral"))
        else:
            add("qbjax", "spectral (vmap)", sdim, qbj.batched(gs, "spectral", how="vmap"))
        case_meta["top_population_spectral"] = qbj.top
    else:
        why = "skipped by --skip" if "spectral" in args.skip else (
            f"parity block {sdim} > --max-spectral-dim {args.max_spectral_dim}")
        note(f"{label}: qbjax spectral not timed: {why}")

    # ---- qbjax chebyshev: one call per g (concrete parameters; vmap would fall back to ode)
    cheb_ok = "chebyshev" not in args.skip
    if cheb_ok:
        add("qbjax", "chebyshev" if K == 1 else "chebyshev (loop)", full_dim, qbj.loop(gs, "chebyshev"))
        case_meta["top_population_chebyshev"] = qbj.top
        ran = sorted(qbj.ran.get("chebyshev", set()))
        case_meta["chebyshev_ran"] = ran
        if ran != ["chebyshev"]:
            note(f"{label}: qbjax method='chebyshev' ran as {ran} (fell back)")

    # ---- the reference
    if spectral_ok:
        ref_idx = all_idx
        ref = outputs[("qbjax", rows[0]["method"])]
        ref_label = "qbjax spectral (exact)"
    elif cheb_ok and case_meta["chebyshev_ran"] == ["chebyshev"]:
        ref_idx = all_idx
        ref = outputs[("qbjax", rows[-1]["method"])]
        ref_label = "qbjax chebyshev (exact to rounding)"
        # one-point cross-check: spectral if its block is affordable (cost independent of g: take the
        # smallest g, the longest window and most Chebyshev chunks), else a tight ode (largest g: cheapest)
        use_spec = "spectral" not in args.skip and sdim <= args.check_spectral_dim
        i_chk = 0 if use_spec else K - 1
        t0 = time.perf_counter()
        if use_spec:
            chk = qbj.loop([gs[i_chk]], "spectral")()[0]
            chk_label = "qbjax spectral"
        else:
            chk = qbj.loop([gs[i_chk]], "ode", qb.ODEOptions(rtol=1e-12, atol=1e-12))()[0]
            chk_label = "qbjax ode rtol=atol=1e-12"
        diff = float(np.max(np.abs(chk - ref[i_chk])))
        case_meta["reference_check"] = {"against": chk_label, "g": float(gs[i_chk]), "max_abs_diff": diff,
                                        "time_s": time.perf_counter() - t0}
        print(f"  cross-check: |{ref_label} - {chk_label}| = {diff:.1e} at g={gs[i_chk]:.3g} "
              f"({case_meta['reference_check']['time_s']:.1f} s)", flush=True)
    else:  # neither exact method: tight ode on a few points (the old reference)
        ref_idx = all_idx if ref_idx is None else ref_idx
        note(f"{label}: no exact method ran; reference = qbjax ode rtol=atol=1e-12"
             + (f" on {len(ref_idx)} of {K} sweep points" if len(ref_idx) < K else ""))
        t0 = time.perf_counter()
        ref = qbj.loop([gs[i] for i in ref_idx], "ode", qb.ODEOptions(rtol=1e-12, atol=1e-12))()
        case_meta["reference_time_s"] = time.perf_counter() - t0
        case_meta["top_population_ode_ref"] = qbj.top
        ref_label = "qbjax ode 1e-12"
        print(f"  reference run: {case_meta['reference_time_s']:.1f} s", flush=True)
    case_meta["reference"] = ref_label
    case_meta["ref_points"] = [float(gs[i]) for i in ref_idx]
    tops = [case_meta[k] for k in ("top_population_spectral", "top_population_chebyshev", "top_population_ode_ref")
            if k in case_meta]
    case_meta["top_population_ref"] = max(tops)
    print(f"  reference: {ref_label}; max top-Fock-level population over the window: "
          f"{case_meta['top_population_ref']:.1e}", flush=True)
    if case_meta["top_population_ref"] > 1e-8:
        note(f"{label}: cutoff {cutoff} leaves {case_meta['top_population_ref']:.1e} > 1e-8 in the top Fock level")

    # ---- qbjax ode
    opts = qb.ODEOptions(rtol=args.tol, atol=args.tol)
    if K == 1:
        add("qbjax", "ode", full_dim, qbj.loop(gs, "ode", opts))
    else:
        add("qbjax", "ode (loop)", full_dim, qbj.loop(gs, "ode", opts))
        if args.qbjax_map:
            add("qbjax", "ode (lax.map)", full_dim, qbj.batched(gs, "ode", opts, how="map"))
        if args.qbjax_vmap:
            add("qbjax", "ode (vmap)", full_dim, qbj.batched(gs, "ode", opts, how="vmap"))
        else:
            note(f"{label}: qbjax ode under jax.vmap not timed (pass --qbjax-vmap): the adaptive steps run in "
                 "lockstep, every lane paying for the stiffest (smallest g, longest window) trajectory")
    case_meta["top_population_ode"] = qbj.top

    # ---- QuTiP (Python loop) and its tight check of the reference
    if "qutip" not in args.skip:
        qtool = QutipTool(n, cutoff, args.tol)
        add("qutip", "sesolve adams (loop)" if K > 1 else "sesolve adams", full_dim, qtool.loop(gs),
            compile_applies=False)
        i_chk = ref_idx[-1]  # largest g among the reference points: the shortest window
        t0 = time.perf_counter()
        tight = qtool.loop([gs[i_chk]], {"atol": 1e-12, "rtol": 1e-12, "nsteps": 10**8})()[0]
        case_meta["qutip_tight_check"] = {"g": float(gs[i_chk]), "max_abs_diff": float(np.max(np.abs(
            tight - ref[ref_idx.index(i_chk)]))), "time_s": time.perf_counter() - t0}
        print(f"  check: |QuTiP(atol=rtol=1e-12) - {ref_label}| = "
              f"{case_meta['qutip_tight_check']['max_abs_diff']:.1e} at g={gs[i_chk]:.3g}", flush=True)
        # ---- equal accuracy: the QuTiP tolerance needed for max abs error <= args.equal_accuracy
        if equal_accuracy and "equal-accuracy" not in args.skip:
            case_meta["equal_accuracy"] = {"target": args.equal_accuracy}
            # a sweep: the tightest tolerance needed at its smallest and largest g (longest and
            # most strongly coupled windows), then the whole sweep at that tolerance
            probes = [0] if K == 1 else [ref_idx[0], ref_idx[-1]]
            for qmethod in ("adams", "vern9") if K == 1 else ("adams",):
                print(f"  equal accuracy (max abs err <= {args.equal_accuracy:.0e}), QuTiP {qmethod}:", flush=True)
                qopts, tried = None, []
                for i in probes:
                    o, t = pick_qutip_tolerance(qtool, gs[i], ref[ref_idx.index(i)], args.equal_accuracy, qmethod,
                                                label)
                    tried += [{"g": float(gs[i]), **x} for x in t]
                    if o is None:
                        qopts = None
                        break
                    qopts = o if qopts is None or o["atol"] < qopts["atol"] else qopts
                case_meta["equal_accuracy"][qmethod] = {"tried": tried, "tol": qopts and qopts["atol"]}
                if qopts is not None:
                    add("qutip", f"sesolve {qmethod} tol={qopts['atol']:.0e} (equal acc.)", full_dim,
                        qtool.loop(gs, qopts), compile_applies=False,
                        extra={"equal_accuracy": True, "qutip_tol": qopts["atol"]})

    # ---- dynamiqs (batched over g, rescaled time)
    if "dynamiqs" not in args.skip:
        dtool = DynamiqsTool(n, cutoff, args.tol)
        add("dynamiqs", "sesolve dopri8 (batched)" if K > 1 else "sesolve dopri8", full_dim, dtool.batched(gs))

    # ---- accuracy and ratios
    for (tool, method), E in outputs.items():
        row = next(r for r in rows if r["tool"] == tool and r["method"] == method)
        row["max_abs_err"] = float(np.max(np.abs(E[ref_idx] - ref)))
        row["reference"] = ref_label + (f" ({len(ref_idx)}/{K} pts)" if len(ref_idx) < K else "")
    qrows = [r for r in rows if r["tool"] == "qbjax"]
    best = min(qrows, key=lambda r: r["per_traj_s"])
    b_spec = next((r["per_traj_s"] for r in qrows if r["method"].startswith("spectral")), None)
    b_ode = next((r["per_traj_s"] for r in qrows if r["method"].startswith("ode")), None)
    for r in rows:
        r["ratio_vs_qbjax_best"] = r["per_traj_s"] / best["per_traj_s"]
        r["qbjax_best_method"] = best["method"]
        r["ratio_vs_qbjax_spectral"] = r["per_traj_s"] / b_spec if b_spec else None
        r["ratio_vs_qbjax_ode"] = r["per_traj_s"] / b_ode if b_ode else None

    def ratio_of(tool, equal=False):
        r = next((r for r in rows if r["tool"] == tool and bool(r.get("equal_accuracy")) == equal), None)
        return None if r is None else r["ratio_vs_qbjax_best"]

    case_meta["qbjax_best"] = {"method": best["method"], "per_traj_s": best["per_traj_s"],
                               "max_abs_err": best["max_abs_err"]}
    case_meta["ratios"] = {"qutip_over_qbjax_best": ratio_of("qutip"),
                           "dynamiqs_over_qbjax_best": ratio_of("dynamiqs")}
    eq = [r for r in rows if r.get("equal_accuracy")]
    for r in eq:
        case_meta["ratios"][f"qutip_{r['method'].split()[1]}_equal_accuracy_over_qbjax_best"] = r["ratio_vs_qbjax_best"]
    case_meta["summary"] = summary_line(case_meta)
    print("  " + case_meta["summary"], flush=True)
    if qbj.warnings:
        case_meta["qbjax_warnings"] = sorted(set(qbj.warnings))
        for w in case_meta["qbjax_warnings"]:
            note(f"{label}: qbjax warned: {w}")
    results += rows
    meta.append(case_meta)


def summary_line(c):
    b, r = c["qbjax_best"], c["ratios"]
    parts = [f"{c['label']}: qbjax best = {b['method']} ({b['per_traj_s']:.3g} s/traj, err {b['max_abs_err']:.0e})",
             f"qutip/qbjax_best = {fmt(r['qutip_over_qbjax_best'], '.2f')}",
             f"dynamiqs/qbjax_best = {fmt(r['dynamiqs_over_qbjax_best'], '.2f')}"]
    for k, v in r.items():
        if k.endswith("equal_accuracy_over_qbjax_best"):
            parts.append(f"qutip {k.split('_')[1]} at equal accuracy/qbjax_best = {v:.2f}")
    return "; ".join(parts)


def fmt(x, spec):
    return "—" if x is None else format(x, spec)


def table(rows):
    head = ("| case | tool | method | dim | runs | compile s | median s | per-traj s | max abs err "
            "| t/t(qbjax best) | t/t(qbjax spectral) | t/t(qbjax ode) |")
    lines = [head, "|" + "|".join(["---"] * 12) + "|"]
    for r in rows:
        lines.append(
            f"| {r['case']} | {r['tool']} | {r['method']} | {r['dim']} | {r['runs']} | {fmt(r['compile_s'], '.2f')} "
            f"| {r['median_s']:.3g} | {r['per_traj_s']:.3g} | {r['max_abs_err']:.1e} "
            f"| {r['ratio_vs_qbjax_best']:.2f} | {fmt(r['ratio_vs_qbjax_spectral'], '.2f')} "
            f"| {fmt(r['ratio_vs_qbjax_ode'], '.2f')} |")
    return "\n".join(lines)


def git_describe():
    """The checkout's commit and whether qbjax/ differs from it (read-only git calls; None outside a checkout)."""
    import subprocess

    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    try:
        head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True, check=True)
        diff = subprocess.run(["git", "diff", "--quiet", "HEAD", "--", "qbjax"], cwd=root, capture_output=True)
    except (OSError, subprocess.CalledProcessError):
        return None
    return {"commit": head.stdout.strip(), "qbjax_modified": diff.returncode != 0}


GIT_AT_START = None


def main(args):
    global GIT_AT_START
    GIT_AT_START = git_describe()  # qbjax is imported now: this is the code that runs
    t_start = time.perf_counter()
    import dynamiqs as dq
    import qutip as qt

    dq.set_precision("double")
    dq.set_device("cpu")
    dq.set_progress_meter(False)

    results, meta = [], []
    ns = (10,) if args.quick else (10, 20, 40)
    for n in ns if "single" in args.cases else ():
        run_case(f"g=0.5 N={n}", n, [0.5], CUTOFFS[("single", n)], args, results=results, meta=meta,
                 equal_accuracy=(n == 20))

    K = args.sweep_points
    gs = list(np.linspace(0.05, 2.0, K)) if "sweep" in args.cases else []
    nref = min(args.ref_points, K)
    ref_idx = sorted(set(np.round(np.linspace(0, K - 1, nref)).astype(int).tolist()))
    if gs:
        run_case(f"sweep {K} g N=20", 20, gs, CUTOFFS[("sweep", 20)], args, ref_idx=ref_idx, results=results,
                 meta=meta, equal_accuracy=True)

    total = time.perf_counter() - t_start
    print("\n" + table(results))
    print(f"\nt/t(qbjax ...) = this row's per-trajectory time over qbjax's (best: the fastest qbjax method of the "
          f"case; > 1: qbjax is faster). ODE tol = {args.tol:g}; total wall time {total:.0f} s.")
    print("per case:\n" + "\n".join(f"  {c['summary']}" for c in meta))
    print("cutoffs (Fock levels): " + ", ".join(f"{c['label']}: {c['cutoff']}" for c in meta))
    if NOTES:
        print("notes:\n" + "\n".join(f"  - {x}" for x in NOTES))

    out = {
        "benchmark": "dicke", "argv": sys.argv[1:], "quick": args.quick, "tol": args.tol, "threads": args.threads,
        "repeats": args.repeats, "budget_s": args.budget, "total_wall_s": total,
        "qbjax_git": GIT_AT_START,
        "versions": {"qbjax": getattr(qb, "__version__", None), "jax": jax.__version__, "qutip": qt.__version__,
                     "dynamiqs": dq.__version__, "numpy": np.__version__, "python": platform.python_version()},
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform()},
        "cases": meta, "rows": results, "notes": NOTES,
    }
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    with open(args.out, "w") as f:
        json.dump(out, f, indent=1)
    print(f"results written to {args.out}")


if __name__ == "__main__":
    main(ARGS)
