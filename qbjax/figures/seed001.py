"""Seed 001 (Ito & Watanabe): batteries charged by quantum heat engines.

Figures 2-5 of the paper and a validity check of its effective master
equation (Eq. 8), computed with qbjax.  Each function writes ``<name>.png``
and ``<name>.json`` into ``out`` and returns a summary dict; ``quick=True``
uses small sizes (tests, demo).

Parameters are the paper's: ``beta_e omega0 = -0.8``, ``Gamma_e / omega0 =
0.1``, ``eps = 10^-3`` (Eq. 17).  The paper gives neither the ``N`` range of
Figs. 2c-d, 3, 4, 5 nor engine parameters for the effective description;
the ranges here are choices (up to ``N = 10^5`` for Figs. 4-5), and the
validity check uses ``omega_h = 3, beta_h = 0.4, beta_c = 1`` (which give
``beta_e omega0 = -0.8``) with ``Gamma_h = Gamma_c = 1``.
"""

from __future__ import annotations

import functools
import math

import equinox as eqx
import jax.numpy as jnp
import matplotlib.pyplot as plt
import numpy as np

from ..charging import charge
from ..models.heat_engine import HeatEngineBattery, HeatEngineFull, cascade_time, closed_form_steady
from ..status import check
from ..steady import open_charging, steady_figures
from ._io import outdir, progress, save

#: The paper's effective parameters (Figs. 2-5).
BETA_OMEGA, RATE, OMEGA0, EPS = -0.8, 0.1, 1.0, 1e-3
PAPER = {"beta_omega": BETA_OMEGA, "rate": RATE, "omega0": OMEGA0, "eps": EPS}

_steady_jit = eqx.filter_jit(steady_figures)  # one compiled program per N, shared by all figures


def _ns_steady(quick: bool):
    if quick:
        return [1, 2, 5, 10, 20]
    return list(range(1, 21)) + [25, 30, 40, 50, 70, 100]


def _ns_tau(quick: bool):
    if quick:
        return [1, 10, 100, 1000]
    return [int(m * 10**k) for k in range(6) for m in (1, 2, 5) if m * 10**k <= 10**5]


@functools.cache
def steady_row(n: int, beta_omega: float = BETA_OMEGA, rate: float = RATE) -> dict:
    """Collective steady state of ``N`` batteries (qbjax, null space of Eq. 8) and Eq. 13-16."""
    f = _steady_jit(HeatEngineBattery(n, beta_omega, rate, OMEGA0))
    cf = closed_form_steady(n, beta_omega, OMEGA0)
    e = float(f.energy)
    return {"n": n, "energy": e, "energy_density": e / (n * OMEGA0), "fluctuation": float(f.fluctuation),
            "ergotropy": float(f.ergotropy), "ergotropy_symmetric": float(f.ergotropy_sector),
            "eq14_energy_density": cf["energy_density"], "exact_fluctuation": cf["fluctuation"],
            "eq15_fluctuation": cf["fluctuation_eq15"], "eq16_ergotropy": cf["ergotropy"],
            "closed_ergotropy_symmetric": cf["ergotropy_symmetric"]}


@eqx.filter_jit
def _open_jit(model, t_max):
    return open_charging(model, eps=EPS, t_max=t_max)


def charged(model, t_max=None):
    """:func:`qbjax.steady.open_charging` at ``eps = 10^-3``, compiled once per ``N`` (steady state,
    trajectory and ``tau`` in one program; the window ``t_max`` is traced, so every window shares it).

    ``t_max`` defaults to the model's window; if ``tau`` is not reached in it, falls back to the
    uncompiled call, which doubles the window until it is.
    """
    out = _open_jit(model, jnp.asarray(model.default_t_max() if t_max is None else t_max, jnp.float64))
    if int(out.status) == 0:
        return out
    if t_max is not None:
        check(out.status, "charged")
    return open_charging(model, eps=EPS)  # the deficit never fell below eps on this window


@functools.cache
def charging_row(n: int, beta_omega: float = BETA_OMEGA, rate: float = RATE) -> dict:
    """``tau_N`` (Eq. 17, ``eps = 10^-3``) of the collective protocol and its steady energy."""
    r = charged(HeatEngineBattery(n, beta_omega, rate, OMEGA0))
    tau = float(r.charging_time)
    # tau_N = (log N + log(1/eps) + c_N) / (Gamma_e (e^{-beta omega} - 1) N): the cascade of Eq. 20 run only
    # until the deficit is eps; c_N is what remains (it settles to a constant at large N)
    c_n = rate * (math.exp(-beta_omega) - 1) * n * tau - math.log(n) - math.log(1 / EPS)
    return {"n": n, "tau": tau, "steady_energy": float(r.steady.energy), "t_max": float(r.trajectory.ts[-1]),
            "log_correction_c": c_n}


def eq20_tau(n: int, beta_omega: float = BETA_OMEGA, rate: float = RATE) -> float:
    """Eq. 20's cascade estimate ``sum_{m=1}^{N-1} 1/((N-m) m) / (Gamma_e (e^{-beta omega} - 1))``."""
    return cascade_time(n, beta_omega, rate) if n >= 2 else float("nan")  # NaN: no point to draw for N = 1


def _individual_steady():
    """One battery (the unit of the individual protocol): energy, variance, ergotropy."""
    f = _steady_jit(HeatEngineBattery(1, BETA_OMEGA, RATE, OMEGA0))
    return float(f.energy), float(f.variance), float(f.ergotropy)


def fig2(out="qbjax-figures", quick=False, verbose=True, n_traj=10, ns=None):
    """Fig. 2: E(t), sigma(t) at N = 10, and e_N^SS, sigma_N^SS vs N (collective vs individual)."""
    out = outdir(out)
    ns = _ns_steady(quick) if ns is None else list(ns)
    # individual protocol = N copies of one battery; the common window is set by its (longer) tau
    tau1 = float(charged(HeatEngineBattery(1, BETA_OMEGA, RATE, OMEGA0)).charging_time)
    t_end = 1.6 * tau1
    curves, t = {}, None
    for protocol in progress(["individual", "collective"], "heat-fig2 E(t)", verbose):
        unit, copies = (1, n_traj) if protocol == "individual" else (n_traj, 1)
        model = HeatEngineBattery(unit, BETA_OMEGA, RATE, OMEGA0)
        r = charged(model, t_end)
        # quick: the 81 nodes of the charging-time run; else a finer grid for the plot
        tr = r.trajectory if quick else charge(model, jnp.linspace(0.0, t_end, 321))
        t = np.asarray(tr.ts)
        curves[protocol] = {"energy": (copies * np.asarray(tr.energy)).tolist(),
                            "fluctuation": np.sqrt(np.maximum(copies * np.asarray(tr.variance), 0.0)).tolist(),
                            "steady_energy": copies * float(r.steady.energy),
                            "steady_fluctuation": math.sqrt(copies * float(r.steady.variance)),
                            "charging_time": float(r.charging_time)}
    e1, v1, _ = _individual_steady()
    rows = []
    for n in progress(ns, "heat-fig2 steady N", verbose):
        row = steady_row(n)
        rows.append({**row, "individual_energy_density": e1 / OMEGA0, "individual_fluctuation": math.sqrt(n * v1)})
    n = np.array([r["n"] for r in rows], float)
    colors = {"collective": "tab:orange", "individual": "tab:blue"}
    fig, ax = plt.subplots(2, 2, figsize=(10, 7.5))
    for protocol, c in curves.items():
        ax[0, 0].plot(t, c["energy"], color=colors[protocol], label=protocol)
        ax[0, 0].axhline(c["steady_energy"], color=colors[protocol], ls="--", lw=1)
        ax[0, 1].plot(t, c["fluctuation"], color=colors[protocol], label=protocol)
        ax[0, 1].axhline(c["steady_fluctuation"], color=colors[protocol], ls="--", lw=1)
    ax[0, 0].set(xlabel="omega0 t", ylabel="<H_B> / omega0", title=f"(a) energy, N = {n_traj}")
    ax[0, 1].set(xlabel="omega0 t", ylabel="sigma_N / omega0", title=f"(b) fluctuation, N = {n_traj}")
    ax[1, 0].plot(n, [r["energy_density"] for r in rows], "o", color=colors["collective"], label="collective")
    ax[1, 0].plot(n, [r["individual_energy_density"] for r in rows], "o", color=colors["individual"],
                  label="individual")
    ax[1, 0].plot(n, [r["eq14_energy_density"] for r in rows], "k:", lw=1, label="Eq. 14")
    ax[1, 0].set(xlabel="N", ylabel="e_N^SS", title="(c) steady energy density", ylim=(0.6, 1.02))
    ax[1, 1].plot(n, [r["fluctuation"] for r in rows], "o", color=colors["collective"], label="collective")
    ax[1, 1].plot(n, [r["individual_fluctuation"] for r in rows], "o", color=colors["individual"],
                  label="individual")
    ax[1, 1].plot(n, [r["exact_fluctuation"] for r in rows], "-", color="tab:orange", lw=0.8,
                  label="exact sigma of Eq. 13")
    ax[1, 1].plot(n, [r["eq15_fluctuation"] for r in rows], "k:", lw=1, label="Eq. 15 (large N)")
    ax[1, 1].set(xlabel="N", ylabel="sigma_N^SS / omega0", title="(d) steady fluctuation")
    for a in ax.flat:
        a.legend(fontsize=8)
    fig.suptitle(f"seed 001 Fig. 2: beta_e omega0 = {BETA_OMEGA}, Gamma_e/omega0 = {RATE}")
    fig.tight_layout()
    dev14 = max(abs(r["energy_density"] - r["eq14_energy_density"]) for r in rows)
    devsig = max(abs(r["fluctuation"] - r["exact_fluctuation"]) for r in rows)
    data = {"params": {**PAPER, "n_traj": n_traj}, "t": t.tolist(), "curves": curves, "rows": rows,
            "max_abs_dev_eq14": dev14, "max_abs_dev_exact_fluctuation": devsig}
    return {"figure": "heat-fig2", **save(fig, data, out, "heat-fig2"), "rows": rows,
            "max_abs_dev_eq14": dev14, "charging_time": {k: c["charging_time"] for k, c in curves.items()}}


def fig3(out="qbjax-figures", quick=False, verbose=True, ns=None):
    """Fig. 3: ergotropy / stored energy vs N (collective: any unitary, Eq. 16, and symmetric sector)."""
    out = outdir(out)
    if ns is None:
        ns = _ns_steady(quick) + ([] if quick else [200, 500, 1000])
    rows = []
    for n in progress(ns, "heat-fig3 N", verbose):
        r = steady_row(n)
        rows.append({"n": n, "energy": r["energy"], "ergotropy": r["ergotropy"],
                     "ergotropy_symmetric": r["ergotropy_symmetric"], "ratio": r["ergotropy"] / r["energy"],
                     "ratio_symmetric": r["ergotropy_symmetric"] / r["energy"],
                     "eq16_ratio": r["eq16_ergotropy"] / r["energy"],
                     "closed_ratio_symmetric": r["closed_ergotropy_symmetric"] / r["energy"]})
    e1, _, erg1 = _individual_steady()
    individual = erg1 / e1
    n = np.array([r["n"] for r in rows], float)
    fig, ax = plt.subplots(figsize=(6, 4.2))
    ax.semilogx(n, [r["ratio"] for r in rows], "o", color="tab:orange", label="collective, any unitary (Eq. 16)")
    ax.semilogx(n, [r["ratio_symmetric"] for r in rows], "s", mfc="none", color="tab:red",
                label="collective, symmetric-sector unitaries")
    ax.axhline(individual, color="tab:blue", label="individual (qbjax, N = 1)")
    ax.axhline(1 - math.exp(BETA_OMEGA), color="k", ls=":", lw=1, label="1 - e^{beta_e omega0}")
    ax.set(xlabel="N", ylabel="ergotropy / (N e_N^SS)", title=f"seed 001 Fig. 3: beta_e omega0 = {BETA_OMEGA}",
           ylim=(0, 1.05))
    ax.legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    dev16 = max(abs(r["ratio"] - r["eq16_ratio"]) for r in rows)
    devsym = max(abs(r["ratio_symmetric"] - r["closed_ratio_symmetric"]) for r in rows)
    data = {"params": {"beta_omega": BETA_OMEGA, "omega0": OMEGA0}, "rows": rows, "individual_ratio": individual,
            "individual_ratio_closed": 1 - math.exp(BETA_OMEGA), "max_abs_dev_eq16": dev16,
            "max_abs_dev_symmetric_closed": devsym}
    return {"figure": "heat-fig3", **save(fig, data, out, "heat-fig3"), "rows": rows,
            "individual_ratio": individual}


def _tau_rows(ns, verbose, desc):
    t1 = charging_row(1)["tau"]
    rows = []
    for n in progress(ns, desc, verbose):
        r = charging_row(n)
        est = eq20_tau(n)
        rows.append({**r, "speedup": t1 / r["tau"], "n_over_log_n": n / math.log(n) if n > 1 else None,
                     "eq20_tau": est if n > 1 else None})
    return t1, rows


def fig4(out="qbjax-figures", quick=False, verbose=True, ns=None):
    """Fig. 4: the charging speed-up tau_1 / tau_N vs N (collective protocol), up to N = 10^5."""
    out = outdir(out)
    ns = _ns_tau(quick) if ns is None else list(ns)
    t1, rows = _tau_rows(ns, verbose, "heat-fig4 N")
    n = np.array([r["n"] for r in rows], float)
    sp = np.array([r["speedup"] for r in rows])
    big = n > 1
    fig, ax = plt.subplots(figsize=(6, 4.2))
    ax.loglog(n, sp, "o", color="tab:orange", label="tau_1 / tau_N (qbjax)")
    ax.loglog(n, n, "k--", lw=1, label="N")
    ax.loglog(n[big], n[big] / np.log(n[big]), "k:", lw=1, label="N / log N")
    ax.loglog(n[big], [t1 / r["eq20_tau"] for r in rows if r["n"] > 1], "-", color="tab:green", lw=1,
              label="tau_1 / (Eq. 20 cascade sum)")
    ax.set(xlabel="N", ylabel="tau_1 / tau_N",
           title=f"seed 001 Fig. 4: beta_e omega0 = {BETA_OMEGA}, Gamma_e/omega0 = {RATE}, eps = {EPS:g}")
    ax.legend(fontsize=8)
    fig.tight_layout()
    # the local log-log slope between the last two points
    slope = float(np.log(sp[-1] / sp[-2]) / np.log(n[-1] / n[-2])) if len(n) > 1 else None
    data = {"params": PAPER, "tau_1": t1, "rows": rows, "last_slope": slope}
    return {"figure": "heat-fig4", **save(fig, data, out, "heat-fig4"), "rows": rows, "tau_1": t1,
            "last_slope": slope}


def fig5(out="qbjax-figures", quick=False, verbose=True, ns=None):
    """Fig. 5: tau_1 / tau_N normalised by N / log N (Eq. 20's order of magnitude)."""
    out = outdir(out)
    ns = [n for n in (_ns_tau(quick) if ns is None else ns) if n > 1]
    t1, rows = _tau_rows(ns, verbose, "heat-fig5 N")
    k = RATE * (math.exp(-BETA_OMEGA) - 1)
    for r in rows:
        r["normalised"] = r["speedup"] / r["n_over_log_n"]
        r["eq20_normalised"] = t1 / r["eq20_tau"] / r["n_over_log_n"]
        # the logistic cascade dm/dt ~ Gamma_e (x - 1) m (N - m) from m = 1 to a deficit eps:
        # tau ~ (log N + log(1/eps)) / (Gamma_e (x - 1) N)
        r["cascade_eps_normalised"] = t1 * k * math.log(r["n"]) / (math.log(r["n"]) + math.log(1 / EPS))
    n = np.array([r["n"] for r in rows], float)
    fig, ax = plt.subplots(figsize=(6, 4.2))
    ax.semilogx(n, [r["normalised"] for r in rows], "o", color="tab:orange", label="qbjax")
    ax.semilogx(n, [r["eq20_normalised"] for r in rows], "-", color="tab:green", lw=1,
                label="Eq. 20 cascade sum")
    ax.semilogx(n, [r["cascade_eps_normalised"] for r in rows], "--", color="tab:gray", lw=1,
                label="cascade stopped at deficit eps: log N + log(1/eps)")
    ax.axhline(t1 * k, color="k", ls=":", lw=1, label="N -> inf limit: tau_1 Gamma_e (e^{-beta omega} - 1)")
    ax.set(xlabel="N", ylabel="(tau_1 / tau_N) / (N / log N)",
           title=f"seed 001 Fig. 5: beta_e omega0 = {BETA_OMEGA}, Gamma_e/omega0 = {RATE}", ylim=(0, None))
    ax.legend(fontsize=8)
    fig.tight_layout()
    data = {"params": PAPER, "tau_1": t1, "rows": rows}
    return {"figure": "heat-fig5", **save(fig, data, out, "heat-fig5"), "rows": rows}


def validity(out="qbjax-figures", quick=False, verbose=True, gs=None, ns=(1, 2), window=8.0):
    """Full engine model (Eq. 1-5) vs the effective master equation (Eq. 8): E(t) at N = 1, 2.

    The engines' parameters ``omega_h = 3, beta_h = 0.4, beta_c = 1`` give the
    paper's ``beta_e omega0 = -0.8``; ``Gamma_h = Gamma_c = 1`` and ``g`` is
    varied, so ``Gamma_e ~ g^2`` and Eq. 7's ratio ``~ g``.  Curves are drawn in
    the effective time ``Gamma_e t``, in which the effective dynamics is the
    same for every ``g``.
    """
    out = outdir(out)
    if gs is None:
        gs = [0.16, 0.08, 0.04, 0.02]
    cases = [(n, g) for n in ns for g in gs]
    if quick:  # the small-g, N = 2 runs are the slow ones (long windows, dimension 27)
        cases = [(1, 0.16), (1, 0.08)]
    # Gamma_e t: uniform, plus a geometric grid resolving the full model's initial slip (t ~ 1/Gamma_b)
    s = np.unique(np.concatenate([np.linspace(0.0, window, 81), np.geomspace(1e-4, 1.0, 41)]))
    rows, curves = [], {}
    for n, g in progress(cases, "heat-validity (N, g)", verbose):
        full = HeatEngineFull(n, OMEGA0, g=g)
        beta_omega, rate = (float(x) for x in full.effective_parameters())
        ts = jnp.asarray(s / rate)
        e_eff = np.asarray(charge(HeatEngineBattery(n, beta_omega, rate, OMEGA0), ts).energy)
        e_full = np.asarray(charge(full, ts).energy)
        c = curves.setdefault(str(n), {"effective": (e_eff / n).tolist(), "full": {}})
        c["full"][str(g)] = (e_full / n).tolist()
        err = np.abs(e_full - e_eff) / (n * OMEGA0)
        rows.append({"n": n, "g": g, "separation": float(full.separation()), "effective_beta_omega": beta_omega,
                     "effective_rate": rate, "max_abs_dev_per_battery": float(np.max(err)),
                     "gamma_e_t_at_max": float(s[np.argmax(err)]), "final_full": float(e_full[-1] / n),
                     "final_effective": float(e_eff[-1] / n)})
    for n in sorted({r["n"] for r in rows}):  # log-log slope of the deviation vs Eq. 7's ratio
        sub = [r for r in rows if r["n"] == n]
        for a, b in zip(sub, sub[1:]):
            b["slope_vs_separation"] = math.log(b["max_abs_dev_per_battery"] / a["max_abs_dev_per_battery"]) / \
                math.log(b["separation"] / a["separation"])
    panels = sorted({r["n"] for r in rows})
    fig, ax = plt.subplots(1, len(panels) + 1, figsize=(4.3 * (len(panels) + 1), 3.8))
    for a, n in zip(ax, panels):
        c = curves[str(n)]
        for g, e in c["full"].items():
            a.plot(s, e, label=f"full, g = {g}")
        a.plot(s, c["effective"], "k--", lw=1.2, label="effective (Eq. 8)")
        a.set(xlabel="Gamma_e t", ylabel="<H_B> / (N omega0)", title=f"N = {n}")
        a.legend(fontsize=7)
    for n, marker in zip(panels, "os"):
        sub = [r for r in rows if r["n"] == n]
        ax[-1].loglog([r["separation"] for r in sub], [r["max_abs_dev_per_battery"] for r in sub], marker + "-",
                      label=f"N = {n}")
    ax[-1].set(xlabel="Eq. 7 ratio  g sqrt(N) / Gamma_b (1 + e^{-beta_b omega_b})",
               ylabel="max |E_full - E_eff| / (N omega0)", title="deviation vs separation")
    ax[-1].legend(fontsize=8)
    fig.suptitle("seed 001: validity of the effective master equation (omega_h = 3, beta_h = 0.4, beta_c = 1, "
                 "Gamma_h = Gamma_c = 1)", fontsize=9)
    fig.tight_layout()
    data = {"engine": {"omega0": OMEGA0, "omega_h": 3.0, "beta_h": 0.4, "beta_c": 1.0, "gamma_h": 1.0,
                       "gamma_c": 1.0}, "gamma_e_t": s.tolist(), "rows": rows, "curves": curves}
    return {"figure": "heat-validity", **save(fig, data, out, "heat-validity"), "rows": rows}


FIGURES = {"heat-fig2": fig2, "heat-fig3": fig3, "heat-fig4": fig4, "heat-fig5": fig5, "heat-validity": validity}
