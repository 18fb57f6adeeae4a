"""Seed 004 (Dias, Wang, Nemoto, Nori, Munro): several batteries, one charger, collective dissipation and pumping.

``reservoirs-fig2``: Fig. 2a-f and the inset of 2f at the paper's sizes
``N_C = 10^7``, ``N_B = 10^2`` (second-order mean field, closure "full"),
with the plateau values the paper states.  ``reservoirs-validation``: exact
permutation-symmetric master equation against both mean-field closures at
the largest sizes that solve in seconds.  ``reservoirs-pump``: plateau vs
pump ``gamma_up / gamma_down`` for ``m = 2..5`` at paper size, the smallest
pump for a target (optax) and the closed form the numbers follow.

Time is in units of ``1 / (gamma_down N_C)`` (the paper gives no axis values);
rates in the paper's convention ``L[O] = 2 O rho O^+ - ...``.
"""

from __future__ import annotations

import math
import time

import jax.numpy as jnp
import matplotlib.pyplot as plt
import numpy as np

from ..models.reservoirs import ReservoirBattery, charge_reservoirs, minimal_pump, plateau_density
from ._io import outdir, progress, save

#: The paper's sizes (Fig. 2).
N_C, N_B = 10**7, 100
#: Window of Fig. 2 in units of 1/(gamma_down N_C), and the plateau read-out time.
T_WINDOW, T_PLATEAU = 20.0, 200.0
#: Fig. 2 panels: (label, batteries m, gamma_up / gamma_down, the paper's statement).
PANELS = (("a", 1, 0.0, 1.0), ("b", 2, 0.0, 0.5), ("c", 2, 1.0, 1.0),
          ("d", 3, 0.0, 0.25), ("e", 3, 1.0, 0.5), ("f", 3, 2.0, 1.0))


def plateau_formula(m: int, pump: float) -> float:
    """``sin^2(pi / (2 (m - gamma_up/gamma_down)))``: the large-``N_C`` mean-field plateau found numerically
    here for ``0 <= gamma_up <= (m - 1) gamma_down`` (an observation of this computation, not from the paper)."""
    return plateau_density(m, pump) if m - pump >= 1 else float("nan")  # NaN: outside the plateau regime, not drawn


def _run(n_c, n_b, m, pump, t_max, num, charger_excited=None, closure="full", method="meanfield", late=None):
    """``(t gamma_down N_C, charger, batteries)`` on ``linspace(0, t_max, num)`` (+ the point ``late`` if given)."""
    model = ReservoirBattery(n_c, n_b, m, gamma_up=pump, charger_excited=charger_excited)
    ts = np.linspace(0.0, t_max, num)
    if late is not None:
        ts = np.append(ts, late)
    tr = charge_reservoirs(model, jnp.asarray(ts / n_c), method=method, closure=closure)
    return ts, np.asarray(tr.charger), np.asarray(tr.batteries)


def fig2(out: str = "qbjax-figures", quick: bool = False, verbose: bool = False) -> dict:
    """Fig. 2a-f + inset: energy densities (Eq. 3), N_C = 10^7, N_B = 100, mean field."""
    out = outdir(out)
    n_c, n_b = (10**4, 10) if quick else (N_C, N_B)
    num = 81 if quick else 401
    fig, axes = plt.subplots(2, 3, figsize=(12, 6.5), sharex=True, sharey=True)
    data = {"n_charger": n_c, "n_battery": n_b, "time_unit": "1/(gamma_down N_C)", "closure": "full",
            "panels": {}}
    for (label, m, pump, paper), ax in zip(progress(PANELS, "fig2 panels", verbose), axes.ravel()):
        t0 = time.perf_counter()
        ts, c, b = _run(n_c, n_b, m, pump, T_WINDOW, num, late=T_PLATEAU)
        ts, c, b, c_late, b_late = ts[:-1], c[:-1], b[:, :-1], c[-1], b[:, -1]
        wall = time.perf_counter() - t0
        ax.plot(ts, c, color="tab:red", label="charger")
        for k, style in zip(range(m), ["-", "--", ":"]):
            ax.plot(ts, b[k], style, color=["navy", "goldenrod", "green"][k], label=f"battery {k + 1}")
        ax.axhline(paper, color="gray", lw=0.6, ls=":")
        ax.set_title(f"({label}) m = {m}, up = {pump:g} down", fontsize=10)
        data["panels"][label] = {
            "batteries": m, "gamma_up": pump, "paper_plateau": paper, "t": ts.tolist(), "charger": c.tolist(),
            "battery": b[0].tolist(), "battery_spread": float(np.ptp(b[:, -1])),
            "battery_at_window_end": float(b[0, -1]), "battery_at_t200": float(b_late[0]),
            "charger_at_t200": float(c_late), "plateau_formula": plateau_formula(m, pump), "wall_s": wall}
    # inset of (f): the charger starts empty
    ts, c, b = _run(n_c, n_b, 3, 2.0, T_WINDOW, num, charger_excited=0, late=T_PLATEAU)
    ts, c, b, c_late, b_late = ts[:-1], c[:-1], b[:, :-1], c[-1], b[:, -1]
    ins = axes[1, 2].inset_axes([0.55, 0.2, 0.4, 0.35])
    ins.plot(ts, c, color="tab:red")
    ins.plot(ts, b[0], color="navy")
    ins.set_ylim(-0.05, 1.05)
    ins.set_title("E_C(0) = 0", fontsize=7)
    data["inset"] = {"t": ts.tolist(), "charger": c.tolist(), "battery": b[0].tolist(),
                     "battery_max_window": float(np.max(b)), "charger_max_window": float(np.max(c)),
                     "battery_at_t200": float(b_late[0]), "charger_at_t200": float(c_late)}
    for ax in axes[1]:
        ax.set_xlabel("gamma_down N_C t")
    for ax in axes[:, 0]:
        ax.set_ylabel("E / (N omega0)")
    axes[0, 0].legend(fontsize=7)
    fig.suptitle(f"Seed 004, Fig. 2: N_C = {n_c:.0e}, N_B = {n_b} (second-order mean field)")
    paths = save(fig, data, out, "reservoirs-fig2")
    summary = {k: {"paper": p["paper_plateau"], "qbjax": p["battery_at_t200"]} for k, p in data["panels"].items()}
    summary["inset_battery_max"] = data["inset"]["battery_max_window"]
    return {**paths, "plateaus": summary}


VALIDATION = ((1, 5, 0.0), (2, 2, 0.0), (2, 2, 1.0), (3, 2, 2.0))


def validation(out: str = "qbjax-figures", quick: bool = False, verbose: bool = False) -> dict:
    """Exact (permutation-symmetric master equation) vs mean field, closures "full" and "factorized"."""
    out = outdir(out)
    cases = VALIDATION[:2] if quick else VALIDATION
    fig, axes = plt.subplots(1, len(cases), figsize=(4 * len(cases), 3.6), squeeze=False)
    rows = []
    for (m, n_b, pump), ax in zip(cases, axes[0]):
        # exact cost grows as (N_C + 1)(N_B + 1)^(2m) entries x ~N_C log N_C stiff steps
        chargers = [10, 20] if quick else {1: [25, 50, 100, 200], 2: [25, 50, 100], 3: [16, 32]}[m]
        for n_c in progress(chargers, f"validation m={m}", verbose):
            t_win = 30.0
            t0 = time.perf_counter()
            ts, ce, be = _run(n_c, n_b, m, pump, t_win, 61, method="exact")
            t_exact = time.perf_counter() - t0
            row = {"batteries": m, "n_battery": n_b, "gamma_up": pump, "n_charger": n_c,
                   "exact_final": float(be[0, -1]), "exact_wall_s": t_exact}
            for closure in ("full", "factorized"):
                _, cm, bm = _run(n_c, n_b, m, pump, t_win, 61, closure=closure)
                row[f"{closure}_final"] = float(bm[0, -1])
                row[f"{closure}_max_battery_error"] = float(np.max(np.abs(bm - be)))
                row[f"{closure}_max_charger_error"] = float(np.max(np.abs(cm - ce)))
                if n_c == chargers[-1]:
                    ax.plot(ts, bm[0], "--" if closure == "full" else ":", label=f"MF {closure}")
            if n_c == chargers[-1]:
                ax.plot(ts, be[0], "k-", lw=1, label="exact battery")
                ax.plot(ts, ce, "r-", lw=1, label="exact charger")
                ax.set_title(f"m = {m}, N_C = {n_c}, N_B = {n_b}, pump {pump:g}", fontsize=9)
                ax.set_xlabel("gamma_down N_C t")
            rows.append(row)
    axes[0, 0].legend(fontsize=7)
    paths = save(fig, {"rows": rows, "window": "t in [0, 30/(gamma_down N_C)]"}, out, "reservoirs-validation")
    return {**paths, "rows": rows}


def pump(out: str = "qbjax-figures", quick: bool = False, verbose: bool = False) -> dict:
    """Battery plateau vs pump gamma_up/gamma_down for m = 2..5 and the smallest pump for a target (optax)."""
    out = outdir(out)
    n_c, n_b = (10**4, 10) if quick else (N_C, N_B)
    ms = [2, 3] if quick else [2, 3, 4, 5]
    target = 0.9
    t_read = 60.0
    fig, ax = plt.subplots(figsize=(6, 4))
    data = {"n_charger": n_c, "n_battery": n_b, "t_read": f"{t_read}/(gamma_down N_C)", "target": target,
            "curves": {}, "minimal_pump": {}}
    for m in progress(ms, "pump scan", verbose):
        pumps = np.linspace(0.0, m - 1, 5 if quick else 4 * (m - 1) + 1)
        plateau = []
        for g in pumps:
            _, _, b = _run(n_c, n_b, m, float(g), t_read, 3)
            plateau.append(float(b[0, -1]))
        line, = ax.plot(pumps, plateau, "o", label=f"m = {m}")
        fine = np.linspace(0, m - 1, 100)
        ax.plot(fine, [plateau_formula(m, g) for g in fine], "-", color=line.get_color(), lw=0.8)
        model = ReservoirBattery(n_c, n_b, m, gamma_up=1.0)
        t0 = time.perf_counter()
        res = minimal_pump(model, target, t_read / n_c, grid=4 * m + 1 if quick else 8 * m + 1,
                           steps=40 if quick else 200)
        closed = m - math.pi / (2 * math.asin(math.sqrt(target)))
        data["curves"][m] = {"pumps": pumps.tolist(), "plateau": plateau,
                             "formula": [plateau_formula(m, g) for g in pumps]}
        data["minimal_pump"][m] = {"gamma_up": res["gamma_up"], "energy": res["energy"], "steps": res["steps"],
                                   "bracket": res["bracket"], "closed_form": closed,
                                   "wall_s": time.perf_counter() - t0}
    ax.axhline(target, color="gray", ls=":", lw=0.7)
    ax.set_xlabel("gamma_up / gamma_down")
    ax.set_ylabel(f"E_B / (N_B omega0) at t = {t_read:g}/(gamma_down N_C)")
    ax.set_title("plateau vs pump (points: mean field; lines: sin^2(pi/(2(m - g))))", fontsize=9)
    ax.legend(fontsize=8)
    paths = save(fig, data, out, "reservoirs-pump")
    return {**paths, "minimal_pump": data["minimal_pump"]}


FIGURES = {"reservoirs-fig2": fig2, "reservoirs-validation": validation, "reservoirs-pump": pump}
