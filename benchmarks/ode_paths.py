"""Warm timings of charge's adaptive (ODE) paths, and the ODE result against the exact spectral one.

    python benchmarks/ode_paths.py

Used to check that qbjax's own adaptive loop (qbjax.dynamics.integrate) costs what diffrax's diffeqsolve did.
"""

import time

import jax
import jax.numpy as jnp

import qbjax as qb
from qbjax.analysis import replace_params
from qbjax.models import HeatEngineFull


def warm(f, n=3):
    f()
    t = time.perf_counter()
    for _ in range(n):
        f()
    return (time.perf_counter() - t) / n


if __name__ == "__main__":
    m = qb.DickeBattery(8, 0.5)
    ts = qb.time_grid(m, num_times=201)
    full = HeatEngineFull(n=2, g=0.04)
    tf = qb.time_grid(full, num_times=51)
    grad = jax.jit(jax.grad(lambda g: qb.charge(replace_params(m, g=g), ts, method="ode").energy[-1]))
    rows = {
        "ode, Dicke N = 8": warm(lambda: qb.charge(m, ts, method="ode").energy.block_until_ready()),
        "dense-ode, Dicke N = 8": warm(lambda: qb.charge(m, ts, method="dense-ode").energy.block_until_ready()),
        "classical, Dicke N = 8": warm(lambda: qb.charge(m, ts, classical=True).energy.block_until_ready()),
        "lindblad, HeatEngineFull n = 2": warm(lambda: qb.charge(full, tf, method="lindblad").energy.block_until_ready(), 1),
        "grad of ode, Dicke N = 8": warm(lambda: grad(0.5).block_until_ready()),
    }
    for k, v in rows.items():
        print(f"{k:32s} {v:.4g} s")
    err = jnp.max(jnp.abs(qb.charge(m, ts, method="ode").energy - qb.charge(m, ts, method="spectral").energy))
    print(f"{'ode vs spectral, max |dE|':32s} {float(err):.3g}")
