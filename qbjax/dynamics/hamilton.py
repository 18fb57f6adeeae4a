"""Classical Hamilton flows for canonical pairs and classical spins.

The phase-space vector concatenates, per degree of freedom, either a
canonical pair ``(q, p)`` with ``{q, p} = 1``, or a classical spin vector
``S`` with ``{S_i, S_j} = eps_ijk S_k``.  Hamilton's equations then read

* ``dq/dt = dH/dp``, ``dp/dt = -dH/dq``;
* ``dS/dt = {S, H} = grad_S H x S``, which conserves ``|S|`` exactly.

Spins are vectors, not angles ``(cos theta, phi)``: the poles are ordinary
points of the flow, not coordinate singularities (seed 000, Eq. 19 and 24
divide by ``sin theta``).  The sign convention matches the Heisenberg
equations (``H = w S_z`` precesses ``S`` like ``<J>`` under ``w J_z``).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from ..status import settle
from .options import ODEOptions


def hamilton_vector_field(h, kinds):
    """``x -> dx/dt`` for Hamiltonian function ``h`` and per-dof ``kinds``.

    ``kinds`` is a tuple of ``"canonical"`` (2 coordinates) and ``"spin"``
    (3 coordinates), in the order of the phase-space vector.
    """
    grad = jax.grad(h)

    def f(x):
        g = grad(x)
        parts, start = [], 0
        for kind in kinds:
            if kind == "canonical":
                parts.append(jnp.stack([g[start + 1], -g[start]]))
                start += 2
            elif kind == "spin":
                parts.append(jnp.cross(g[start : start + 3], x[start : start + 3]))
                start += 3
            else:
                raise ValueError(f"unknown classical kind {kind!r}")
        return jnp.concatenate(parts)

    return f


def hamilton_flow(h, kinds, x0, ts, *, options: ODEOptions = ODEOptions(rtol=1e-11, atol=1e-11), switch=None,
                  h_switched=None, jump_ts=None, status: bool = False):
    """Phase-space points at ``ts`` under ``h`` (plus ``switch(t) * h_switched``).

    ``status=True`` returns ``(points, status)`` (a :mod:`qbjax.status` flag).
    """
    f0 = hamilton_vector_field(h, kinds)
    f1 = None if h_switched is None else hamilton_vector_field(h_switched, kinds)

    def vf(t, x, args):
        out = f0(x)
        if f1 is not None:
            out = out + switch(t) * f1(x)
        return out

    out, flags = options.solve(vf, x0, ts, jump_ts=jump_ts)
    return (out, flags) if status else settle(out, flags, "hamilton_flow")
