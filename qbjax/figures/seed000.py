"""Seed 000 (Andolina et al., PRB 99, 205437): Gamma and R for the three batteries.

Each function computes a figure's data with qbjax, writes ``<name>.png`` and
``<name>.json`` into ``out`` and returns a summary dict.  ``quick=True``
uses small sizes (for tests and the demo).
"""

from __future__ import annotations

import warnings

import matplotlib.pyplot as plt
import numpy as np

from ..analysis import model_max_power
from ..charging import TruncationWarning, charge, time_grid
from ..models import DickeBattery, OscillatorBattery, SpinBattery
from ._io import outdir, progress, save


def gammas(factory, ns, verbose=True, desc="N"):
    """``Gamma_qu``, ``Gamma_cl`` and ``R`` for ``factory(n)`` over ``ns``."""
    one = factory(1)
    p1 = {c: model_max_power(one, classical=c) for c in (False, True)}
    rows = []
    for n in progress(ns, desc, verbose):
        m = factory(n)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", TruncationWarning)
            pq = model_max_power(m)
        pc = model_max_power(m, classical=True)
        gq = float(pq.power / (n * p1[False].power))
        gc = float(pc.power / (n * p1[True].power))
        rows.append({"n": int(n), "gamma_quantum": gq, "gamma_classical": gc, "ratio": gq / gc,
                     "tau_quantum": float(pq.time), "tau_classical": float(pc.time),
                     "truncation_warning": bool(caught)})
    return rows


def _integer_ticks(ax, ns):
    """Plain numbers on logarithmic axes: N at (up to eight of) the sizes run, Gamma as decimals."""
    from matplotlib.ticker import FixedLocator, FuncFormatter, NullFormatter

    plain = FuncFormatter(lambda v, _: f"{v:g}")
    ns = sorted(set(int(v) for v in ns))
    if ax.get_xscale() == "log":
        ax.xaxis.set_major_locator(FixedLocator(ns[:: max(1, len(ns) // 8)]))
        ax.xaxis.set_major_formatter(plain)
        ax.xaxis.set_minor_formatter(NullFormatter())
    if ax.get_yscale() == "log":
        ax.yaxis.set_major_formatter(plain)
        ax.yaxis.set_minor_formatter(plain)


def oscillator(out="qbjax-figures", quick=False, verbose=True, g=0.2, ns=None):
    """Oscillator battery: E_B(t) quantum, classical and Eq. 10; Gamma = sqrt(N) (Eq. 11, 15)."""
    out = outdir(out)
    if ns is None:
        ns = [1, 4] if quick else [1, 2, 4, 8, 16, 32, 64]
    rows = gammas(lambda n: OscillatorBattery(n, g, 1.0), ns, verbose, "oscillator N")
    m = OscillatorBattery(4, g, 1.0)
    ts = time_grid(m)
    eq, ec = charge(m, ts).energy, charge(m, ts, classical=True).energy
    exact = 4 * np.sin(g * 2 * np.asarray(ts)) ** 2
    fig, ax = plt.subplots(1, 2, figsize=(9, 3.5))
    ax[0].plot(ts, eq, label="quantum")
    ax[0].plot(ts, ec, "--", label="classical")
    ax[0].plot(ts, exact, ":", label="Eq. 10")
    ax[0].set(xlabel=r"$\omega_0 t$", ylabel=r"$E_B\,/\,\hbar\omega_0$", title=r"(a) charging, $N = 4$")
    ax[0].legend()
    n = np.array([r["n"] for r in rows])
    ax[1].loglog(n, [r["gamma_quantum"] for r in rows], "o", label="quantum")
    ax[1].loglog(n, [r["gamma_classical"] for r in rows], "x", label="classical")
    ax[1].loglog(n, np.sqrt(n), "k--", label=r"$\sqrt{N}$ (Eq. 11)")
    ax[1].set(xlabel=r"$N$", ylabel=r"$\Gamma$", title=r"(b) $\Gamma_{qu} = \Gamma_{cl}$: $R = 1$")
    ax[1].legend()
    _integer_ticks(ax[1], n)
    fig.suptitle(rf"Oscillator battery (seed 000, Sec. IV): $g = {g:g}\,\omega_0$, charger in $|N\rangle$")
    fig.tight_layout()
    data = {"g": g, "rows": rows, "max_abs_error_eq10": float(np.max(np.abs(np.asarray(eq) - exact)))}
    return {"figure": "oscillator", **save(fig, data, out, "oscillator"), "rows": rows}


def fig2(out="qbjax-figures", quick=False, verbose=True, g=0.2, ns=None):
    """Fig. 2: spin battery, Gamma_qu ~ 0.25 N, Gamma_cl = N, R(N)."""
    out = outdir(out)
    if ns is None:
        ns = [1, 2, 4] if quick else [1, 2, 3, 4, 6, 8, 12, 16, 24, 32, 48, 64, 96, 128, 192, 256]
    rows = gammas(lambda n: SpinBattery(n, g, 1.0), ns, verbose, "fig2 N")
    n = np.array([r["n"] for r in rows])
    gq = np.array([r["gamma_quantum"] for r in rows])
    gc = np.array([r["gamma_classical"] for r in rows])
    fig, ax = plt.subplots(1, 3, figsize=(12, 3.5))
    ax[0].loglog(n, gq, "o")
    ax[0].loglog(n, 0.25 * n, "k--", label=r"$N/4$")
    ax[0].set(xlabel=r"$N$", ylabel=r"$\Gamma_{qu}$", title="(a) quantum")
    ax[1].loglog(n, gc, "s")
    ax[1].loglog(n, n, "k--", label=r"$N$")
    ax[1].set(xlabel=r"$N$", ylabel=r"$\Gamma_{cl}$", title=f"(b) classical (tilt {SpinBattery().tilt:.0e} rad)")
    ax[2].semilogx(n, gq / gc, "o-")
    ax[2].axhline(0.25, color="k", ls="--")
    ax[2].set(xlabel=r"$N$", ylabel=r"$R$", title=r"(c) $R = \Gamma_{qu} / \Gamma_{cl}$")
    for a in ax[:2]:
        a.legend()
    for a in ax:
        _integer_ticks(a, n)
    fig.suptitle(rf"Spin battery (seed 000, Fig. 2): $g = {g:g}\,\omega_0$, $\omega_0 = 1$")
    fig.tight_layout()
    data = {"g": g, "tilt": float(SpinBattery().tilt), "rows": rows}
    return {"figure": "fig2", **save(fig, data, out, "fig2"), "rows": rows}


def fig3(out="qbjax-figures", quick=False, verbose=True, ns=None, n_r=None, g_sweep=None):
    """Fig. 3: Dicke battery, Gamma_qu and Gamma_cl ~ sqrt(N), R(N), R(g) at N = 50."""
    out = outdir(out)
    gs = [0.01, 0.5, 2.0]
    if ns is None:
        ns = [1, 2] if quick else [1, 2, 4, 8, 16, 32, 50]
    if n_r is None:
        n_r = 2 if quick else 50
    if g_sweep is None:
        g_sweep = np.linspace(0.1, 2.0, 3) if quick else np.array(
            [0.05, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 1.0, 1.25, 1.5, 2.0])
    by_g = {}
    for g in gs:
        by_g[str(g)] = gammas(lambda n, g=g: DickeBattery(n, g, 1.0), ns, verbose, f"fig3 g={g}")
    r_of_g = []
    for g in progress(g_sweep, f"fig3d N={n_r}", verbose):
        row = gammas(lambda n, g=g: DickeBattery(n, float(g), 1.0), [n_r], False)[0]
        r_of_g.append({"g": float(g), **row})
    fig, ax = plt.subplots(2, 2, figsize=(10, 7))
    for g, marker in zip(gs, "o^s"):
        rows = by_g[str(g)]
        n = np.array([r["n"] for r in rows])
        ax[0, 0].loglog(n, [r["gamma_quantum"] for r in rows], marker, label=rf"$g = {g}\,\omega_0$")
        ax[0, 1].loglog(n, [r["gamma_classical"] for r in rows], marker, label=rf"$g = {g}\,\omega_0$")
        ax[1, 0].semilogx(n, [r["ratio"] for r in rows], marker + "-", label=rf"$g = {g}\,\omega_0$")
    n = np.array(ns, dtype=float)
    for a in ax[0]:
        a.loglog(n, np.sqrt(n), "k--", label=r"$\sqrt{N}$")
        a.set(xlabel=r"$N$")
        a.legend()
    ax[0, 0].set(ylabel=r"$\Gamma_{qu}$", title="(a) quantum")
    ax[0, 1].set(ylabel=r"$\Gamma_{cl}$", title="(b) classical")
    ax[1, 0].axhline(1, color="k", lw=0.5)
    ax[1, 0].set(xlabel=r"$N$", ylabel=r"$R = \Gamma_{qu}/\Gamma_{cl}$", title=r"(c) $R(N)$")
    ax[1, 0].legend()
    ax[1, 1].plot([r["g"] for r in r_of_g], [r["ratio"] for r in r_of_g], "o-")
    ax[1, 1].axhline(1, color="k", lw=0.5)
    ax[1, 1].set(xlabel=r"$g\,/\,\omega_0$", ylabel=r"$R$", title=rf"(d) $R(g)$, $N = {n_r}$")
    for a in ax.ravel()[:3]:
        _integer_ticks(a, ns)
    fig.suptitle(r"Dicke battery (seed 000, Fig. 3): cavity in $|N\rangle$, $\omega_0 = 1$, automatic Fock cutoff")
    fig.tight_layout()
    data = {"gamma_vs_n": by_g, "ratio_vs_g": r_of_g, "n_ratio": n_r}
    return {"figure": "fig3", **save(fig, data, out, "fig3"), "ratio_vs_g": r_of_g}
