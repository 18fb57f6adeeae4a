"""Minimal Dicke cutoffs over the default window against ``default_cutoff`` (N = 6, the README sweep's range).

    python benchmarks/dicke_cutoff_study.py

For each coupling: the smallest Fock cutoff whose discarded tail (population in levels >= cutoff, maximised
over the 401 grid times of the default window) stays below 1e-10 and 1e-14, from a converged run at 220 levels.
"""

import jax.numpy as jnp
import numpy as np

import qbjax as qb
import qbjax.representation as rep
from qbjax.charging import spectral_decomposition
from qbjax.models.dicke import default_cutoff

N, LEVELS = 6, 220

if __name__ == "__main__":
    for w0 in (0.9, 1.1):
        for g in (0.05, 0.1, 0.2, 0.3, 0.4, 0.5):
            m = qb.DickeBattery(N, g, omega0=w0, cutoff=LEVELS)
            ts = np.asarray(qb.time_grid(m, num_times=401))
            spec = m.spec()
            b = rep.basis(spec)
            w, V = spectral_decomposition(spec)
            c = V.T @ rep.initial_vector(spec, b)
            psi = V @ (c[:, None] * jnp.exp(-1j * w[:, None] * ts[None, :]))
            photons = np.unravel_index(np.asarray(b.indices), spec.dims)[0]
            pn = np.zeros((LEVELS + 1, len(ts)))
            np.add.at(pn, photons, np.abs(np.asarray(psi)) ** 2)
            tail = np.cumsum(pn[::-1], axis=0)[::-1].max(axis=1)
            print(f"omega0 = {w0}, g = {g}: rule {default_cutoff(N, g, w0)}, tail < 1e-10 at "
                  f"{int(np.argmax(tail < 1e-10))}, < 1e-14 at {int(np.argmax(tail < 1e-14))}")
