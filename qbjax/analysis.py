"""Composite figures of merit: max power of a model, its gradient, Gamma and R.

Thin compositions of :func:`qbjax.charge` and :func:`qbjax.max_power`; the
data still flows forward (model -> trajectory -> metric).
"""

from __future__ import annotations

import equinox as eqx
import jax
import jax.numpy as jnp

from .charging import charge, time_grid
from .metrics import MaxPower, collective_advantage, max_power
from .model import AbstractBattery

__all__ = ["model_max_power", "max_power_grad", "advantage", "replace_params"]


def replace_params(model: AbstractBattery, **values) -> AbstractBattery:
    """The model with the named parameter leaves replaced (traceable)."""
    names = list(values)
    return eqx.tree_at(lambda m: [getattr(m, k) for k in names], model,
                       [jnp.asarray(values[k], jnp.float64) for k in names])


def model_max_power(model: AbstractBattery, *, classical: bool = False, t_max=None, num_times: int | None = None,
                    method: str = "auto", **kwargs) -> MaxPower:
    """``Pbar``, ``taubar``, ``Ebar`` of a model (quantum or classical)."""
    ts = time_grid(model, t_max, num_times)
    traj = charge(model, ts, classical=classical, method=method, **kwargs)
    return max_power(traj)


def max_power_grad(model: AbstractBattery, params, *, classical: bool = False, t_max=None, num_times: int | None = None,
                   method: str = "auto", **kwargs):
    """``Pbar`` and ``{name: dPbar/dname}`` for the named parameter leaves.

    The time grid is held fixed (it is a numerical device); ``taubar`` carries
    no gradient (envelope theorem, see :mod:`qbjax.metrics`).
    """
    ts = time_grid(model, t_max, num_times)
    names = list(params)
    start = {k: jnp.asarray(getattr(model, k), jnp.float64) for k in names}

    def power(values):
        m = replace_params(model, **values)
        return max_power(charge(m, ts, classical=classical, method=method, **kwargs), warn=False).power

    value, grads = jax.value_and_grad(power)(start)
    return value, grads


def advantage(model: AbstractBattery, *, t_max=None, num_times: int | None = None, method: str = "auto",
              tilt=None) -> dict:
    """Collective advantage quantum and classical, and their ratio (Eq. 4-5).

    ``Gamma = Pbar(N) / (N Pbar(1))`` with the single-unit model from
    ``model.with_n(1)``; ``t_max`` (if given) applies to the ``N``-unit
    model, the single unit uses its own default grid.
    """
    n = model.n
    one = model.with_n(1)
    out = {}
    for label, classical in (("quantum", False), ("classical", True)):
        p_n = model_max_power(model, classical=classical, t_max=t_max, num_times=num_times, method=method)
        p_1 = model_max_power(one, classical=classical, num_times=num_times, method=method)
        out[label] = {"n": p_n, "one": p_1, "gamma": collective_advantage(p_n.power, p_1.power, n)}
    out["ratio"] = out["quantum"]["gamma"] / out["classical"]["gamma"]
    return out
