"""Where a sweep point of the README example spends its time: cumulative stages of one 8-point vmapped chunk.

    python benchmarks/sweep_point_costs.py 156      # the cutoff (the README sweep's groups: 72, 104, 156)

Stage 0: eigh; 1: + V^T diag(B) V; 2: + the phase factors; 3: + the (4T x d)(d x d) moment product;
4: + E(t).  Milliseconds per point, float64, this machine.
"""

import sys
import time

import jax
import jax.numpy as jnp

import qbjax as qb
import qbjax.representation as rep
from qbjax.analysis import replace_params
from qbjax.charging import spectral_decomposition

CUTOFF = int(sys.argv[1]) if len(sys.argv) > 1 else 156
MODEL = qb.DickeBattery(6, 0.3, cutoff=CUTOFF)
TS = qb.time_grid(MODEL, num_times=401)
GS = jnp.linspace(0.2, 0.3, 8)


def per_point_ms(f, n=3):
    jax.block_until_ready(f(GS))
    t = time.perf_counter()
    for _ in range(n):
        jax.block_until_ready(f(GS))
    return (time.perf_counter() - t) / n / GS.shape[0] * 1e3


def stage(g, k):
    spec = replace_params(MODEL, g=g).spec()
    b = rep.basis(spec)
    B = jnp.real(rep.dense_diagonal(spec.space, spec.battery, b))
    psi0 = rep.initial_vector(spec, b)
    w, V = spectral_decomposition(spec)
    c = V.T @ psi0.astype(V.dtype)
    if k == 0:
        return c.sum()
    Bt = (V.T * B) @ V
    if k == 1:
        return Bt.sum() + c.sum()
    phi = c[None, :] * jnp.exp(-1j * jnp.outer(TS, w))
    if k == 2:
        return Bt.sum() + jnp.abs(phi).sum()
    wphi = phi * w
    R = jnp.concatenate([phi.real, phi.imag, wphi.real, wphi.imag]) @ Bt.T
    if k == 3:
        return R.sum()
    T = phi.shape[0]
    X = R[:T] + 1j * R[T:2 * T]
    return jnp.real(jnp.sum(phi.conj() * X, axis=-1)).sum()


if __name__ == "__main__":
    print(f"cutoff {CUTOFF}, dimension {rep.basis(MODEL.spec()).dim}, T = {TS.shape[0]}")
    for k in range(5):
        print(f"stage {k}: {per_point_ms(jax.jit(jax.vmap(lambda g, k=k: stage(g, k)))):.2f} ms/point")
