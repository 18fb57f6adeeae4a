"""Which models a sweep can vary, and how a grid is split into groups of one compiled program each."""

from __future__ import annotations

import dataclasses
import functools
import inspect
import math

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from ..model import AbstractBattery
from .grid import Grid, SweepError


def sweep_models() -> dict[str, type]:
    """Battery models by name: :data:`qbjax.models.REGISTRY`."""
    from .. import models

    return dict(models.REGISTRY)


def _init_params(cls) -> list[str]:
    sig = inspect.signature(cls.__init__)
    return [n for n, p in sig.parameters.items() if n != "self" and p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)]


def static_fields(cls) -> set[str]:
    return {f.name for f in dataclasses.fields(cls) if f.metadata.get("static", False)}


def _is_leaf_value(v) -> bool:
    return v is None or isinstance(v, (jax.Array, np.ndarray, float, int, np.floating, np.integer))


def _base_params(model, kwargs) -> dict:
    if isinstance(model, AbstractBattery):
        return dict(model.params())
    return dict(kwargs)


def _plan_groups(model, grid: Grid, kwargs):
    """``[(static values, point indices, group model)]``, every group validated before any work."""
    if isinstance(model, str):
        registry = sweep_models()
        if model not in registry:
            raise SweepError(f"unknown model {model!r}; allowed: {', '.join(registry)}")
        model = registry[model]
    points = grid.points()
    if isinstance(model, type):
        if not issubclass(model, AbstractBattery):
            raise SweepError(f"model class {model.__name__} is not an AbstractBattery")
        cls, base = model, dict(kwargs)
        label = _label(cls)
    elif isinstance(model, AbstractBattery):
        if kwargs:
            raise SweepError(f"model keyword arguments {sorted(kwargs)} need a model class, not an instance")
        cls = type(model)
        base = {k: getattr(model, k) for k in _init_params(cls) if hasattr(model, k)}
        label = model.name
    elif isinstance(model, eqx.Module):
        return _generic_groups(model, grid, points), type(model).__name__, True
    else:
        raise SweepError(f"model must be a battery model, its class or CLI name, got {type(model).__name__}")
    allowed = _init_params(cls)
    for name in grid.names:
        if name not in allowed:
            raise SweepError(f"unknown parameter {name!r} for model {label!r}; allowed: {', '.join(allowed)}")
    for name in kwargs:
        if name not in allowed:
            raise SweepError(f"unknown parameter {name!r} for model {label!r}; allowed: {', '.join(allowed)}")
    fields = {f.name for f in dataclasses.fields(cls)}
    statics = static_fields(cls) | (set(allowed) - fields)
    static_names = [n for n in grid.names if n in statics]
    # group the points by their static values (order of first appearance)
    keys = list(zip(*[points[n].tolist() for n in static_names])) if static_names else [()] * grid.size
    order: dict = {}
    for i, key in enumerate(keys):
        order.setdefault(key, []).append(i)
    from ..models._common import ParameterError

    groups = []
    for key, idx in order.items():
        idx = np.asarray(idx)
        static = dict(zip(static_names, key))
        leaves = {n: jnp.asarray(points[n][idx], jnp.float64) for n in grid.names if n not in statics}
        try:
            # the constructor sees every value of the group at once: validation,
            # and derived static sizes (a Dicke cutoff) that hold for the whole group
            gmodel = cls(**{**base, **static, **leaves})
        except ParameterError:
            raise
        except TypeError as e:
            raise SweepError(f"model {label!r}: {e}") from None
        derived = [f for f in sorted(static_fields(cls) & set(allowed)) if f not in grid.names and f not in base
                   and isinstance(getattr(gmodel, f, None), int) and not isinstance(getattr(gmodel, f), bool)]
        buckets = _size_buckets(cls, {**base, **static}, {n: points[n][idx] for n in leaves}, gmodel, derived)
        if len(buckets) <= 1:
            groups.append((static, idx, gmodel))
            continue
        for sizes, sub in buckets:
            sub_leaves = {n: jnp.asarray(points[n][idx[sub]], jnp.float64) for n in leaves}
            groups.append(({**static, **sizes}, idx[sub], cls(**{**base, **static, **sizes, **sub_leaves})))
    return groups, label, False


#: Ratio between consecutive derived sizes (a Dicke cutoff) of a sweep's sub-groups, and the
#: largest group whose points are sized one by one.
_BUCKET_RATIO, _BUCKET_MAX_POINTS = 1.5, 20_000


#: Fewest points worth a compiled program of their own (a compile costs about as much as
#: 30-100 points of the difference in size).
_BUCKET_MIN_POINTS = 48


def _size_buckets(cls, fixed: dict, leaves: dict, gmodel, derived: list[str]) -> list:
    """Sub-groups of a static group by the sizes each point would derive on its own.

    The group model derives its sizes (``DickeBattery.cutoff``) from the whole
    group, i.e. from its most demanding point, and every point then pays
    for it.  Here each point's own size (its model built alone) is rounded
    up to a ladder ``max / 1.5^k`` (multiples of 8), so each point keeps at
    least the size its constructor would choose, and a few compiled
    programs replace one oversized one.  Returns ``[(sizes, point indices)]``.
    """
    if not derived or not leaves:
        return []
    n = len(next(iter(leaves.values())))
    if n < 2 or n > _BUCKET_MAX_POINTS:
        return []
    own = np.zeros((n, len(derived)), int)
    cache: dict = {}
    for i in range(n):
        key = tuple(np.asarray(v[i]).tobytes() for v in leaves.values())
        if key not in cache:
            m = cls(**fixed, **{k: v[i] for k, v in leaves.items()})
            cache[key] = [int(getattr(m, f)) for f in derived]
        own[i] = cache[key]
    top = np.array([int(getattr(gmodel, f)) for f in derived])
    if np.all(own == top):
        return []
    ladders = []
    for j in range(len(derived)):
        lo, hi = int(own[:, j].min()), int(top[j])
        ladder, v = [hi], hi / _BUCKET_RATIO
        while v >= lo:
            ladder.append(int(8 * math.ceil(v / 8)))
            v /= _BUCKET_RATIO
        ladders.append(np.unique(ladder))
    keys = np.stack([ladders[j][np.searchsorted(ladders[j], own[:, j])] for j in range(len(derived))], axis=1)
    # a bucket too small to repay its compilation joins the next larger one
    order = sorted({tuple(k) for k in keys.tolist()})
    for a, b in zip(order[:-1], order[1:]):
        members = np.all(keys == np.array(a), axis=1)
        if members.sum() < _BUCKET_MIN_POINTS:
            keys[members] = np.maximum(keys[members], np.array(b))
    out = []
    for key in sorted({tuple(k) for k in keys.tolist()}):
        sub = np.flatnonzero(np.all(keys == np.array(key), axis=1))
        out.append((dict(zip(derived, key)), sub))
    return out


def _label(cls) -> str:
    for name, c in sweep_models().items():
        if c is cls:
            return name
    return cls.__name__


def _path_get(module, path: str):
    x = module
    for part in path.split("."):
        if not hasattr(x, part):
            raise SweepError(f"unknown parameter {path!r} for {type(module).__name__}")
        x = getattr(x, part)
    return x


def _generic_groups(module, grid: Grid, points):
    for name in grid.names:
        leaf = _path_get(module, name)
        if not isinstance(leaf, (jax.Array, np.ndarray)):
            raise SweepError(f"parameter {name!r} of {type(module).__name__} is not an array leaf "
                             "(static fields can be swept only for battery models)")
    return [({}, np.arange(grid.size), module)]


def _replace(model, values: dict, generic: bool):
    """The model with the named leaves replaced by (traced) per-point values."""
    names = list(values)
    if generic:
        get = lambda m: [functools.reduce(getattr, n.split("."), m) for n in names]  # noqa: E731
    else:
        get = lambda m: [getattr(m, n) for n in names]  # noqa: E731
    return eqx.tree_at(get, model, [values[n] for n in names], is_leaf=lambda x: x is None)
