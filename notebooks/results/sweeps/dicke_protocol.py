"""Optimal charging protocols and the optimal coupling of the Dicke battery.

Writes ``dicke_protocol.json`` and ``dicke_protocol.png`` beside this file.

1. Step function (seed 000, Eq. 2): ``Pbar`` and ``taubar``.
2. Piecewise-constant ``lambda(t)`` with ``|lambda| <= 1`` (``K`` equal
   segments, ``tau`` free): optimised with L-BFGS from the step and from
   random starts (vmapped restarts).
3. ``lambda(t)`` together with a modulated charger frequency ``u_A(t) w0``
   (``|u| <= 1``), same optimiser.
4. Each optimised protocol is re-simulated independently: the adaptive
   Dopri8 ODE (diffrax, with the switching times handed to the step-size
   controller) on ``H(t) = u_A(t) H_A + H_B + lambda(t) H_I`` against the exact
   segment propagator used by the optimiser.
5. The optimal coupling ``g`` for a given ``N``: maximise the energy stored at
   a fixed charging time ``tau`` (``E_B(tau)``), checked against a dense sweep
   over ``g`` (:func:`qbjax.sweep`).

Run: ``python notebooks/results/sweeps/dicke_protocol.py [--quick]``.
"""

from __future__ import annotations

import argparse
import json
import os
import time

import jax.numpy as jnp
import numpy as np

import qbjax as qb
from qbjax import representation as rep
from qbjax.dynamics import ODEOptions, sesolve
from qbjax.optimize import Box, optimize_model
from qbjax.protocols import optimize_protocol, protocol_energy

HERE = os.path.dirname(os.path.abspath(__file__))


def ode_power(model, prot):
    """Independent forward simulation: adaptive Dopri8 on the time-dependent H(t)."""
    spec = model.spec()
    b = rep.basis(spec)
    HA, HB, HI = (rep.dense(spec.space, t, b) for t in (spec.charger, spec.battery, spec.coupling))
    psi0 = rep.initial_vector(spec, b)
    times = prot.times
    vals = prot.values

    def u(t, c):
        k = jnp.clip(jnp.searchsorted(times, t, side="right") - 1, 0, vals.shape[0] - 1)
        return vals[k, c]

    ic = prot.controls.index("coupling") if "coupling" in prot.controls else None
    ia = prot.controls.index("charger") if "charger" in prot.controls else None

    def H(t, psi, args):
        lam = 1.0 if ic is None else u(t, ic)
        ua = 1.0 if ia is None else u(t, ia)
        return ua * (HA @ psi) + HB @ psi + lam * (HI @ psi)

    psis = sesolve(H, psi0, jnp.stack([0.0 * prot.tau, prot.tau]), options=ODEOptions(rtol=1e-12, atol=1e-12),
                   jump_ts=times[1:-1])
    psi = psis[-1]
    return float(jnp.real(jnp.vdot(psi, HB @ psi)) / prot.tau)


def main(quick: bool = False):
    t0 = time.time()
    n, g = (2, 0.4) if quick else (4, 0.2)
    cutoff = 12 if quick else 24
    K = 4 if quick else 12
    steps = 12 if quick else 40
    restarts = 2 if quick else 6
    m = qb.DickeBattery(n, g, 1.0, cutoff=cutoff)
    tr = qb.charge(m)
    step = qb.max_power(tr)
    out = {"n": n, "g": g, "omega0": 1.0, "cutoff": cutoff, "top_population": float(tr.top_population.max()),
           "segments": K, "step": {"max_power": float(step.power), "optimal_time": float(step.time)}}
    tau = float(step.time)
    for label, controls in (("lambda", ("coupling",)), ("lambda_and_charger", ("coupling", "charger"))):
        prot, res = optimize_protocol(m, K, tau=tau, tau_bounds=(0.5 * tau, 2.0 * tau), bounds=(-1.0, 1.0),
                                      controls=controls, restarts=restarts, steps=steps, method="lbfgs", seed=1)
        exact = float(protocol_energy(m, prot).energy[-1] / prot.tau)
        check = ode_power(m, prot)
        out[label] = {"max_power": float(res.value), "gain_over_step": float(res.value / step.power - 1.0),
                      "tau": float(prot.tau), "values": np.asarray(prot.values).tolist(),
                      "restart_values": np.asarray(res.restart_values).tolist(),
                      "exact_segment_power": exact, "independent_ode_power": check,
                      "ode_vs_exact_rel_diff": abs(check - exact) / exact,
                      "history": res.history[:, res.best_restart].tolist()}
    # optimal coupling for this N at a fixed charging time
    T = 2.0 / np.sqrt(n)
    gmax = 1.0
    best, res = optimize_model(qb.DickeBattery(n, 0.3, 1.0, cutoff=cutoff), {"g": Box(0.05, gmax)}, "energy_at",
                               tau=T, optimizer="adam", learning_rate=0.1, restarts=restarts, steps=4 * steps)
    gs = np.linspace(0.05, gmax, 41 if quick else 191)
    sw = qb.sweep(qb.DickeBattery, {"g": gs}, {"energy_at_tau": lambda mm, traj: traj.energy[-1]}, n=n,
                  cutoff=cutoff, t_max=T, num_times=3)
    E = sw.frame["energy_at_tau"].to_numpy()
    i = int(np.argmax(E))
    out["optimal_coupling"] = {"tau": T, "g_opt": float(best.g), "energy_opt": float(res.value),
                               "sweep_g": float(gs[i]), "sweep_energy": float(E[i]), "sweep_dg": float(gs[1] - gs[0]),
                               "g": gs.tolist(), "energy": E.tolist()}
    out["optimal_coupling"]["optimizer"] = "adam"
    out["wall_s"] = time.time() - t0
    with open(os.path.join(HERE, "dicke_protocol.json"), "w") as f:
        json.dump(out, f, indent=1)
    _plot(m, out)
    return out


def _plot(m, out):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(1, 3, figsize=(13, 3.6))
    step_t = out["step"]["optimal_time"]
    ax[0].step([0, step_t], [1, 1], where="post", label=f"step, P = {out['step']['max_power']:.4f}")
    for label in ("lambda", "lambda_and_charger"):
        r = out[label]
        v = np.asarray(r["values"])
        t = np.linspace(0, r["tau"], v.shape[0] + 1)
        gain = 100 * r["gain_over_step"]
        ax[0].stairs(v[:, 0], t, label=f"{label}: lambda(t), P = {r['max_power']:.4f} ({gain:+.2f}%)")
        if v.shape[1] > 1:
            ax[0].stairs(v[:, 1], t, linestyle="--", label="charger u_A(t)")
        ax[1].plot(r["history"], label=label)
    ax[0].set_xlabel("t"), ax[0].set_ylabel("control"), ax[0].legend(fontsize=7)
    ax[1].axhline(out["step"]["max_power"], color="k", lw=0.8, label="step")
    ax[1].set_xlabel("L-BFGS iteration"), ax[1].set_ylabel("E_B(tau)/tau"), ax[1].legend(fontsize=7)
    oc = out["optimal_coupling"]
    ax[2].plot(oc["g"], oc["energy"], label="sweep")
    ax[2].axvline(oc["g_opt"], color="r", ls="--", label=f"optimised g = {oc['g_opt']:.4f}")
    ax[2].set_xlabel("g"), ax[2].set_ylabel(f"E_B(tau = {oc['tau']:.3f})"), ax[2].legend(fontsize=7)
    fig.suptitle(f"Dicke battery N = {out['n']}, g = {out['g']}, cutoff {out['cutoff']}")
    fig.tight_layout()
    fig.savefig(os.path.join(HERE, "dicke_protocol.png"), dpi=110)


if __name__ == "__main__":
    p = argparse.ArgumentParser()
    p.add_argument("--quick", action="store_true")
    r = main(p.parse_args().quick)
    print(json.dumps({k: v for k, v in r.items() if k not in ("optimal_coupling",)}, default=str)[:3000])
    print(json.dumps({k: v for k, v in r["optimal_coupling"].items() if k not in ("g", "energy")}))
