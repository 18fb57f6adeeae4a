"""Parameter sweeps: grids of model parameters, vmapped, chunked to memory, sharded over devices.

A sweep evaluates figures of merit at every point of a grid over a model's
parameter leaves::

    res = qb.sweep(qb.DickeBattery, {"g": np.linspace(0.1, 0.5, 64)}, "max_power", n=10)
    res.frame                     # pandas DataFrame: one column per parameter and metric
    res.to_csv("dicke_g.csv")

How the work is laid out (this is where the speed comes from):

* **One program per static combination.**  Leaves (couplings, frequencies,
  rates) are traced and vmapped.  Static fields (``n``, ``cutoff``,
  ``protocol``: they fix array shapes) may be swept too: the points are
  grouped by their static values and each group gets its own compiled
  program.  Derived static values (the Dicke battery's Fock ``cutoff``, the
  time-grid length) are chosen once per group by the model's constructor from
  the whole group's values, so they hold for every point of the group.
* **Chunks sized to a memory budget.**  The chunk program is compiled for
  the whole group (at most ``max_chunk`` points per device) and XLA's
  ``memory_analysis`` of it (arguments + outputs + temporaries per device)
  is compared with the budget; if it is over, the chunk shrinks in
  proportion and is recompiled.  Every chunk has the same shape (the last
  one is padded by repeating its last point), so each group compiles once
  (twice when the first guess did not fit); compiled programs are cached by
  structure, so a repeated sweep does not compile again.
* **Devices.**  The batch axis is laid out over a :class:`jax.sharding.Mesh`
  of all visible devices (``jax.devices()``: all hosts' devices after
  ``jax.distributed.initialize``) and each device vmaps its own slice under
  :func:`jax.shard_map` (no collective: points are independent).  See
  ``docs/multihost.md`` for a GPU cluster.

Time grids: with ``t_max=None`` each point uses its own natural window
(``model.default_t_max()``, traced, so it follows the swept couplings) with a
common number of grid points per group; give ``t_max`` for one window.
"""

from __future__ import annotations

import dataclasses
import functools
import inspect
import json
import math
import os
import sys
import time
import warnings
from collections.abc import Callable, Mapping, Sequence

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh, NamedSharding
from jax.sharding import PartitionSpec as P

from .model import AbstractBattery
from .status import check

__all__ = [
    "Grid",
    "product",
    "zipped",
    "parse_range",
    "sweep",
    "SweepResult",
    "METRICS",
    "sweep_models",
    "SweepError",
]


class SweepError(ValueError):
    """A bad sweep request (unknown parameter, metric or model; bad grid)."""


# ----------------------------------------------------------------------------- grids


@dataclasses.dataclass(frozen=True)
class Grid:
    """The points of a sweep: an outer product of axes, each axis a zip of parameters.

    Build with :func:`product` (every parameter its own axis), :func:`zipped`
    (parameters varied together along one axis) and ``*`` (outer product of
    two grids).  Points are enumerated in C order (the last axis fastest).

    Attributes:
        axes: ``(((name, values), ...), ...)``; the parameters of one axis
            have the same number of values.  ``values`` has shape
            ``(num, *leaf_shape)`` (a scalar leaf: ``(num,)``).
    """

    axes: tuple[tuple[tuple[str, np.ndarray], ...], ...]

    def __post_init__(self):
        seen = set()
        for axis in self.axes:
            lengths = {len(v) for _, v in axis}
            if len(lengths) != 1:
                raise SweepError(f"zipped parameters {[n for n, _ in axis]} need the same number of values, "
                                 f"got {[len(v) for _, v in axis]}")
            if lengths.pop() < 1:
                raise SweepError(f"parameter {axis[0][0]!r} has no values (num must be >= 1)")
            for name, _ in axis:
                if name in seen:
                    raise SweepError(f"parameter {name!r} appears twice in the grid")
                seen.add(name)

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(n for axis in self.axes for n, _ in axis)

    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(len(axis[0][1]) for axis in self.axes)

    @property
    def size(self) -> int:
        return math.prod(self.shape)

    def __mul__(self, other: Grid) -> Grid:
        return Grid(self.axes + as_grid(other).axes)

    def points(self) -> dict[str, np.ndarray]:
        """``{name: values}`` with ``values[i]`` the parameter at point ``i`` (C order)."""
        shape = self.shape
        idx = np.indices(shape).reshape(len(shape), -1) if shape else np.zeros((0, 1), int)
        out = {}
        for k, axis in enumerate(self.axes):
            for name, values in axis:
                out[name] = values[idx[k]]
        return out


def _values(name: str, values) -> np.ndarray:
    arr = np.asarray(values)
    if arr.ndim == 0:
        arr = arr[None]
    if arr.dtype.kind not in "biuf" and arr.dtype != object:
        if arr.dtype.kind not in "U":
            raise SweepError(f"parameter {name!r}: values must be numbers (or strings for a static choice)")
    return arr


def product(**values) -> Grid:
    """Outer product: ``product(g=gs, omega0=ws)`` has ``len(gs) * len(ws)`` points."""
    return Grid(tuple(((k, _values(k, v)),) for k, v in values.items()))


def zipped(**values) -> Grid:
    """One axis along which the parameters vary together: ``zipped(g=gs, omega0=ws)`` has ``len(gs)`` points."""
    return Grid((tuple((k, _values(k, v)) for k, v in values.items()),))


def as_grid(obj) -> Grid:
    """A :class:`Grid` from a grid, a mapping (product) or a sequence of those (product)."""
    if isinstance(obj, Grid):
        return obj
    if isinstance(obj, Mapping):
        return product(**obj)
    if isinstance(obj, Sequence) and not isinstance(obj, str):
        g = Grid(())
        for part in obj:
            g = g * as_grid(part)
        return g
    raise SweepError(f"a grid must be a Grid, a mapping name -> values or a list of those, got {type(obj).__name__}")


def parse_range(text: str, name: str = "parameter") -> np.ndarray:
    """``"start:stop:num"`` (``linspace``, ``num >= 1``), or a comma-separated list ``"1,2,5"``.

    Raises :class:`SweepError` naming the parameter and the accepted syntax.
    """
    syntax = f"--{name} takes start:stop:num (num an integer >= 1) or a comma-separated list of numbers"
    parts = text.split(":")
    try:
        if len(parts) == 3:
            start, stop = float(parts[0]), float(parts[1])
            num = float(parts[2])
            if not num.is_integer() or num < 1:
                raise SweepError(f"{syntax}; num must be an integer >= 1, got {parts[2]!r}")
            values = np.linspace(start, stop, int(num))
        elif len(parts) == 1:
            values = np.array([float(x) for x in text.split(",")])
        else:
            raise SweepError(f"{syntax}; got {text!r}")
    except SweepError:
        raise
    except ValueError:
        raise SweepError(f"{syntax}; got {text!r}") from None
    if not np.all(np.isfinite(values)):
        raise SweepError(f"{syntax}; values must be finite, got {text!r}")
    return values


# ----------------------------------------------------------------------------- figures of merit


class _Point:
    """What the figures of merit of one grid point need, computed on first use (inside the trace)."""

    def __init__(self, model, ts, method: str, options, classical: bool = False):
        self.model, self.ts, self.method, self.options, self.classical = model, ts, method, options, classical
        self.statuses = []  # failure flags of what was computed (qbjax.status), checked on the host

    def status(self):
        from .status import merge

        flags = list(self.statuses)
        if "trajectory" in self.__dict__:
            flags.append(self.trajectory.status)
        if "steady" in self.__dict__:
            flags.append(self.steady.status)
        return merge(*flags)

    @functools.cached_property
    def spec(self):
        return self.model.spec()

    @functools.cached_property
    def eig(self):
        """The spectral decomposition, when ``charge`` would diagonalise (shared by the trajectory and the state)."""
        from .methods import resolve_method
        from .representation.closed import spectral_decomposition

        if self.classical or self.method not in ("auto", "spectral"):
            return None
        if resolve_method(self.spec, self.method, False, None) != "spectral":
            return None
        return spectral_decomposition(self.spec)

    @functools.cached_property
    def trajectory(self):
        from .charging import charge, spectral_trajectory

        if self.eig is not None:
            return spectral_trajectory(self.spec, jnp.asarray(self.ts, jnp.float64), self.eig)
        return charge(self.model, self.ts, method=self.method, options=self.options, classical=self.classical)

    @functools.cached_property
    def max_power(self):
        from .metrics import max_power

        return max_power(self.trajectory, warn=False)

    @functools.cached_property
    def max_energy(self):
        from .metrics import max_energy

        return max_energy(self.trajectory)

    @functools.cached_property
    def unit(self):
        """``(unit, copies)``: the individual protocol is ``N`` copies of one battery (as in ``open_charging``)."""
        m = self.model
        if getattr(m, "protocol", "collective") == "individual" and hasattr(m, "single"):
            return m.single(), m.n
        return m, 1

    @functools.cached_property
    def steady(self):
        from .steady import steady_figures

        return steady_figures(self.unit[0])


def _ergotropy(p: _Point):
    from .states import battery_ergotropy_status

    value, flags = battery_ergotropy_status(p.spec, p.max_power.time, eig=p.eig)
    p.statuses.append(flags)
    return value


def _steady_density(p: _Point):
    return p.steady.energy * p.unit[1] / (p.model.n * getattr(p.model, "omega0", 1.0))


def _charging_time(p: _Point, eps: float = 1e-3):
    """Seed 001, Eq. 17 on this point's window; NaN (and a longer window is tried) when not reached."""
    from .steady import charging_time_status

    unit = p.unit[0]
    traj = p.trajectory if unit is p.model else _Point(unit, p.ts, p.method, p.options).trajectory
    e_ss = p.steady.energy
    reached = (traj.energy - (1.0 - eps) * e_ss) / e_ss > 0.0
    found = jnp.any(reached) & (jnp.argmax(reached) > 0)
    # a window that misses the criterion: feed charging_time a harmless
    # stand-in there and report NaN instead (the sweep then retries those
    # points with a longer window); its NOT_REACHED flag is therefore dropped
    ramp = 2.0 * e_ss * traj.ts / traj.ts[-1]
    safe = eqx.tree_at(lambda t: (t.energy, t.d_energy, t.d2_energy), traj,
                       (jnp.where(found, traj.energy, ramp), jnp.where(found, traj.d_energy, 2.0 * e_ss / traj.ts[-1]),
                        jnp.where(found, traj.d2_energy, 0.0)))
    if unit is not p.model:
        p.statuses.append(traj.status)
    return jnp.where(found, charging_time_status(safe, e_ss, eps)[0], jnp.nan)


#: Built-in figures of merit: ``name -> (function of a point, description)``.
METRICS: dict[str, tuple[Callable, str]] = {
    "max_power": (lambda p: p.max_power.power, "Pbar = max_tau E_B(tau)/tau (seed 000, Eq. 3), refined"),
    "optimal_time": (lambda p: p.max_power.time, "taubar, the time of the maximum power"),
    "energy_at_max_power": (lambda p: p.max_power.energy, "Ebar = E_B(taubar)"),
    "ergotropy": (_ergotropy, "ergotropy of the battery at taubar (closed systems)"),
    "fluctuation_at_max_power": (
        lambda p: jnp.sqrt(jnp.maximum(jnp.interp(p.max_power.time, p.ts, p.trajectory.variance), 0.0)),
        "sqrt(var H_B) at taubar (linear interpolation of the grid)"),
    "max_energy": (lambda p: p.max_energy.energy, "max_t E_B(t) on the window (max work), refined"),
    "time_of_max_energy": (lambda p: p.max_energy.time, "argmax_t E_B(t)"),
    "final_energy": (lambda p: p.trajectory.energy[-1], "E_B at the end of the window"),
    "steady_energy_density": (_steady_density, "e_N^SS = E_ss / (N omega0) (open systems, seed 001 Eq. 14)"),
    "steady_fluctuation": (lambda p: p.steady.fluctuation * jnp.sqrt(p.unit[1]), "sigma of H_B in the steady state"),
    "steady_ergotropy": (lambda p: p.steady.ergotropy * p.unit[1], "ergotropy of the steady state (Eq. 16)"),
    "charging_time": (_charging_time, "seed 001 Eq. 17, eps = 1e-3 (window doubled until reached)"),
}
#: Metrics whose NaN means "window too short": those points are re-run with a doubled window.
_EXTEND = {"charging_time"}
#: The per-point failure flag of a chunk's output (:mod:`qbjax.status`), checked on the host.
_STATUS = "_status"


def _resolve_metrics(metrics) -> list[tuple[str, Callable, bool]]:
    """``[(column, fn(point) -> scalar, user)]``; user callables take ``(model, trajectory)``."""
    if isinstance(metrics, str) or callable(metrics):
        metrics = [metrics]
    if isinstance(metrics, Mapping):
        metrics = list(metrics.items())
    out = []
    for m in metrics:
        if isinstance(m, tuple):
            name, fn = m
        elif isinstance(m, str):
            name, fn = m, None
        elif callable(m):
            name, fn = getattr(m, "__name__", "metric"), m
        else:
            raise SweepError(f"a metric must be a name or a callable, got {m!r}")
        if fn is None:
            if name not in METRICS:
                raise SweepError(f"unknown metric {name!r}; allowed: {', '.join(METRICS)} (or a callable)")
            out.append((name, METRICS[name][0], False))
        else:
            out.append((name, fn, True))
    names = [n for n, _, _ in out]
    if len(set(names)) != len(names):
        raise SweepError(f"metric names must be unique, got {names}")
    return out


# ----------------------------------------------------------------------------- models


def sweep_models() -> dict[str, type]:
    """Battery models by CLI name (every family in :mod:`qbjax.models`, reservoirs included when present)."""
    import importlib

    from . import models

    out = dict(models.MODELS)
    from .models import HeatEngineBattery, HeatEngineFull, SpinChainBattery

    out.setdefault("heat-engine", HeatEngineBattery)
    out.setdefault("heat-engine-full", HeatEngineFull)
    out.setdefault("spin-chain", SpinChainBattery)
    try:  # families added later plug in through their module
        res = importlib.import_module(".models.reservoirs", __package__)
    except ImportError:
        res = None
    if res is not None and "reservoirs" not in out:
        classes = [c for c in vars(res).values() if isinstance(c, type) and issubclass(c, AbstractBattery)
                   and c is not AbstractBattery and c.__module__ == res.__name__ and not inspect.isabstract(c)]
        if classes:
            out["reservoirs"] = classes[0]
    return out


def _init_params(cls) -> list[str]:
    sig = inspect.signature(cls.__init__)
    return [n for n, p in sig.parameters.items() if n != "self" and p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)]


def _static_fields(cls) -> set[str]:
    return {f.name for f in dataclasses.fields(cls) if f.metadata.get("static", False)}


def _is_leaf_value(v) -> bool:
    return v is None or isinstance(v, (jax.Array, np.ndarray, float, int, np.floating, np.integer))


# ----------------------------------------------------------------------------- results


class SweepResult:
    """Labelled results of a sweep.

    Attributes:
        frame: a :class:`pandas.DataFrame`, one row per grid point (C order),
            one column per parameter (scalar parameters; array-valued ones as
            lists) and per metric (plus ``top_population`` for models with
            truncated modes).
        grid_shape: the grid's shape (``values(metric)`` reshapes to it).
        info: model, parameters, metrics, devices, chunk sizes, compile and wall times.
    """

    def __init__(self, frame, grid_shape, info):
        self.frame, self.grid_shape, self.info = frame, tuple(grid_shape), info

    def values(self, column: str) -> np.ndarray:
        """A column as an array of the grid's shape."""
        return np.asarray(self.frame[column].to_numpy()).reshape(self.grid_shape)

    def to_csv(self, path) -> None:
        self.frame.to_csv(path, index=False, float_format="%.17g")

    def to_json(self, path=None) -> str:
        """``{"info": ..., "columns": {name: [values]}}``; written to ``path`` if given."""
        cols = {c: [_jsonable(x) for x in self.frame[c].tolist()] for c in self.frame.columns}
        text = json.dumps({"info": self.info, "columns": cols})
        if path is not None:
            with open(path, "w") as f:
                f.write(text)
        return text

    def __repr__(self):
        return f"SweepResult({len(self.frame)} points, columns={list(self.frame.columns)})"


def _jsonable(x):
    if isinstance(x, (np.floating, float)):
        x = float(x)
        return x if math.isfinite(x) else None
    if isinstance(x, np.integer):
        return int(x)
    if isinstance(x, np.ndarray):
        return x.tolist()
    return x


# ----------------------------------------------------------------------------- the sweep


def _default_budget(devices) -> int:
    """Bytes per device: half a GPU's memory; on CPU 2 GiB shared by all virtual devices (at most 1/8 of RAM)."""
    d = devices[0]
    stats = None
    try:
        stats = d.memory_stats()
    except Exception:  # noqa: BLE001 (not every backend reports)
        stats = None
    if stats and stats.get("bytes_limit"):
        return int(0.5 * stats["bytes_limit"])
    try:
        ram = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        ram = 16 * 2**30
    local = max(1, sum(1 for x in devices if x.process_index == jax.process_index()))
    return int(min(2 * 2**30, ram // 8) // local)


def _memory(compiled) -> int | None:
    try:
        m = compiled.memory_analysis()
    except Exception:  # noqa: BLE001
        return None
    if m is None:
        return None
    return int(m.temp_size_in_bytes + m.argument_size_in_bytes + m.output_size_in_bytes)


class _Progress:
    """tqdm on stderr (only on process 0 of a multi-host run)."""

    def __init__(self, total: int, enabled: bool, desc: str):
        self.bar = None
        if enabled and jax.process_index() == 0:
            from tqdm.auto import tqdm

            self.bar = tqdm(total=total, unit="pt", desc=desc, file=sys.stderr, dynamic_ncols=True,
                            mininterval=0.5)

    def update(self, n):
        if self.bar is not None:
            self.bar.update(n)

    def close(self):
        if self.bar is not None:
            self.bar.close()


def sweep(
    model,
    grid,
    metrics="max_power",
    *,
    t_max=None,
    num_times: int | None = None,
    method: str = "auto",
    options=None,
    classical: bool = False,
    memory_budget: int | None = None,
    chunk_size: int | None = None,
    max_chunk: int = 4096,
    devices=None,
    progress: bool = True,
    max_doublings: int = 10,
    **model_kwargs,
) -> SweepResult:
    """Evaluate figures of merit over a grid of a model's parameters.

    Arguments:
        model: a battery model instance (its fields are the base point), a
            model class or a CLI name (``"dicke"``, ``"heat-engine"``, ...;
            see :func:`sweep_models`) built with ``model_kwargs``.  Any other
            ``equinox`` module (for example a collisional model) works with
            callable metrics ``fn(module) -> scalar`` and dotted leaf paths
            (``"units.q"``).
        grid: a :class:`Grid`, a mapping ``name -> values`` (outer product) or
            a list of those (outer product).  Names are the model's
            parameters; leaves may take arrays (``values`` of shape
            ``(num, *leaf_shape)``).  Static fields (``n``, ``cutoff``, ...)
            are allowed: one compiled program per distinct static combination.
        metrics: a name from :data:`METRICS`, a callable ``fn(model,
            trajectory) -> scalar`` (named by ``__name__``), a mapping
            ``column -> callable``, or a list of these.
        t_max: window end (default: each point's ``model.default_t_max()``).
        num_times: grid points of the window (default: the model's, the
            largest over each static group).
        method, options, classical: passed to :func:`qbjax.charge` (``classical=True``:
            the classical analog's trajectory).
        memory_budget: bytes per device for one chunk (default: half a
            GPU's memory; on CPU 2 GiB over all virtual devices).
        chunk_size: points per device per chunk (default: from the budget).
        max_chunk: cap on the chunk (points per device).
        devices: devices to shard over (default: ``jax.devices()``, all hosts).
        progress: show a progress bar on stderr.
        max_doublings: for ``charging_time``: how often a point's window is
            doubled until the criterion is met.

    Returns:
        A :class:`SweepResult`.

    Raises:
        SweepError: unknown model, parameter or metric; empty grid.
        qbjax.models._common.ParameterError: a value outside a parameter's range
            (raised before any computation).
    """
    t_start = time.perf_counter()
    grid = as_grid(grid)
    metric_list = _resolve_metrics(metrics)
    devices = list(jax.devices() if devices is None else devices)
    if not devices:
        raise SweepError("devices must not be empty")
    groups, label, generic = _plan_groups(model, grid, model_kwargs)
    if generic and any(not user for _, _, user in metric_list):
        raise SweepError("a module that is not a battery model needs callable metrics fn(module) -> scalar")
    mesh = Mesh(np.array(devices), ("batch",))
    budget = _default_budget(devices) if memory_budget is None else int(memory_budget)
    points = grid.points()
    n_total = grid.size
    columns: dict[str, np.ndarray] = {}
    info_groups = []
    bar = _Progress(n_total, progress, f"sweep {label}")
    compile_s = 0.0
    try:
        for static, idx, gmodel in groups:
            swept = {k: v[idx] for k, v in points.items() if k not in static}
            out, ginfo = _run_group(gmodel, swept, metric_list, mesh, budget, chunk_size, max_chunk,
                                    t_max, num_times, method, options, bar, max_doublings, generic, classical)
            compile_s += ginfo["compile_s"]
            ginfo["static"] = {k: _jsonable(v) for k, v in static.items()}
            info_groups.append(ginfo)
            for k, v in out.items():
                if k not in columns:
                    columns[k] = np.full((n_total,) + v.shape[1:], np.nan)
                columns[k][idx] = v
    finally:
        bar.close()
    import pandas as pd

    data = {}
    for name in grid.names:
        v = points[name]
        data[name] = list(v) if v.ndim > 1 else v
    for name, _, _ in metric_list:
        data[name] = columns[name]
    if "top_population" in columns:
        data["top_population"] = columns["top_population"]
        worst = float(np.nanmax(columns["top_population"]))
        if worst > 1e-6:
            from .charging import TruncationWarning

            bad = int(np.sum(columns["top_population"] > 1e-6))
            warnings.warn(f"{bad} of {n_total} points have the highest kept Fock level above 1e-6 "
                          f"(worst {worst:.2e}): increase the cutoff", TruncationWarning, stacklevel=2)
    frame = pd.DataFrame(data)
    info = {
        "model": label,
        "params": {k: _jsonable(v) for k, v in _base_params(model, model_kwargs).items()},
        "grid": {"names": list(grid.names), "shape": list(grid.shape),
                 "zipped": [[n for n, _ in axis] for axis in grid.axes if len(axis) > 1]},
        "metrics": [n for n, _, _ in metric_list],
        "points": n_total,
        "devices": len(devices),
        "device_kind": devices[0].device_kind,
        "platform": devices[0].platform,
        "processes": jax.process_count(),
        "memory_budget_bytes": budget,
        "groups": info_groups,
        "chunk_size": info_groups[0]["chunk_size"] if info_groups else 0,
        "compile_s": compile_s,
        "wall_s": time.perf_counter() - t_start,
    }
    return SweepResult(frame, grid.shape, info)


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
    statics = _static_fields(cls) | (set(allowed) - fields)
    static_names = [n for n in grid.names if n in statics]
    # group the points by their static values (order of first appearance)
    keys = list(zip(*[points[n].tolist() for n in static_names])) if static_names else [()] * grid.size
    order: dict = {}
    for i, key in enumerate(keys):
        order.setdefault(key, []).append(i)
    from .models._common import ParameterError

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
        derived = [f for f in sorted(_static_fields(cls) & set(allowed)) if f not in grid.names and f not in base
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


def _run_group(gmodel, swept: dict, metric_list, mesh: Mesh, budget: int, chunk_size, max_chunk: int,
               t_max, num_times, method, options, bar: _Progress, max_doublings: int, generic: bool,
               classical: bool = False):
    n_dev = mesh.devices.size
    n_points = len(next(iter(swept.values()))) if swept else 1
    if not swept:
        swept = {}
    if generic:
        K = 0
    else:
        K = int(num_times) if num_times is not None else int(gmodel.default_num_times())
    # the group model's arrays are arguments (replicated), not constants: the
    # compiled program depends only on structure, so repeated sweeps reuse it
    # (the swept leaves are replaced per point: keep one value, so the program
    # does not depend on the number of points either)
    if swept and not generic:
        gmodel = _replace(gmodel, {k: jnp.asarray(getattr(gmodel, k))[0] for k in swept}, False)
    dyn, stat = eqx.partition(gmodel, eqx.is_array)

    def point(dyn, values, factor):
        m = _replace(eqx.combine(dyn, stat), values, generic)
        if generic:
            out = {name: jnp.asarray(fn(m), jnp.float64) for name, fn, _ in metric_list}
            out[_STATUS] = jnp.zeros((), jnp.int32)
            return out
        # factor: the window is factor * default_t_max, or factor itself when t_max is given
        # (a traced value: a new t_max does not recompile)
        T = factor if t_max is not None else m.default_t_max() * factor
        ts = jnp.linspace(0.0, jax.lax.stop_gradient(T), K)
        p = _Point(m, ts, method, options, classical)
        out = {}
        for name, fn, user in metric_list:
            out[name] = jnp.asarray(fn(m, p.trajectory) if user else fn(p), jnp.float64)
        if "trajectory" in p.__dict__ and p.trajectory.top_population.shape[0]:
            out["top_population"] = jnp.max(p.trajectory.top_population)
        out[_STATUS] = p.status()
        return out

    spec = P("batch")
    sharding, replicated = NamedSharding(mesh, spec), NamedSharding(mesh, P())

    cpu = mesh.devices.flat[0].platform == "cpu"

    def local(dyn, values, factor):
        if cpu:
            # a loop over small vmapped batches: each batch's temporaries stay in cache and
            # a chunk's memory no longer grows with its size (one compile per group)
            return jax.lax.map(lambda vf: point(dyn, *vf), (values, factor), batch_size=_CPU_BATCH)
        return jax.vmap(point, in_axes=(None, 0, 0))(dyn, values, factor)

    example = {k: np.asarray(v[:1], np.float64) for k, v in swept.items()}
    dyn_abstract = jax.tree.map(lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=replicated), dyn)

    def abstract(per_device):
        b = per_device * n_dev
        vals = {k: jax.ShapeDtypeStruct((b,) + v.shape[1:], jnp.float64, sharding=sharding) for k, v in example.items()}
        return dyn_abstract, vals, jax.ShapeDtypeStruct((b,), jnp.float64, sharding=sharding)

    key = (jax.tree.structure(gmodel), tuple((x.shape, str(x.dtype)) for x in jax.tree.leaves(dyn)),
           tuple(repr(x) for x in jax.tree.leaves(stat)), tuple((k, v.shape[1:]) for k, v in example.items()),
           tuple((n, fn, u) for n, fn, u in metric_list), t_max is None, K, method,
           options, tuple(d.id for d in mesh.devices.flat), generic, classical)

    def compile_for(per_device):
        ckey = key + (per_device,)
        if ckey not in _COMPILED:
            sharded = jax.jit(jax.shard_map(local, mesh=mesh, in_specs=(P(), spec, spec), out_specs=spec,
                                            check_vma=False))
            if len(_COMPILED) >= _CACHE_SIZE:
                _COMPILED.pop(next(iter(_COMPILED)))
            _COMPILED[ckey] = sharded.lower(*abstract(per_device)).compile()
        return _COMPILED[ckey]

    compile_s = 0.0
    # Compile for the whole group in one chunk (capped); if XLA's memory
    # analysis says it exceeds the budget, shrink in proportion and recompile.
    per_device = math.ceil(n_points / n_dev)
    cap = max(1, min(max_chunk, per_device))
    if cpu:  # about _CHUNKS chunks for the progress bar, equal in size (the last one is padded)
        cap = math.ceil(per_device / math.ceil(per_device / max(cap // _CHUNKS, 4 * _CPU_BATCH, 1)))
    chunk = cap if chunk_size is None else max(1, int(chunk_size))
    compiled = None
    while compiled is None:
        t0 = time.perf_counter()
        compiled = compile_for(chunk)
        compile_s += time.perf_counter() - t0
        used = _memory(compiled)
        if chunk_size is None and used is not None and used > budget and chunk > 1:
            fit = max(1, min(chunk - 1, int(chunk * budget / used)))
            # equal chunks: the last one is padded to the chunk's size, so 186 points in
            # chunks of 163 would compute 326
            per_device = math.ceil(n_points / n_dev)
            chunk = math.ceil(per_device / math.ceil(per_device / fit))
            compiled = None
    used = _memory(compiled)
    B = chunk * n_dev

    dyn_global = jax.tree.map(lambda x: _global(np.asarray(x), replicated), dyn)

    def fetch(pending, values):
        out, start, count = pending
        got = _fetch(out, count)
        status = got.pop(_STATUS)
        if status.any():
            i = int(np.flatnonzero(status)[0])
            at = {k: _jsonable(v[start + i]) for k, v in values.items()}
            check(status, f"sweep point {at}")
        return got

    def run(values: dict, factors: np.ndarray, update: bool):
        n = len(factors)
        results, pending = [], None
        for start in range(0, n, B):
            stop = min(start + B, n)
            sl = np.arange(start, stop)
            sl = np.concatenate([sl, np.full(B - len(sl), stop - 1)])  # pad with the last point
            vals = {k: _global(np.asarray(v[sl], np.float64), sharding) for k, v in values.items()}
            out = compiled(dyn_global, vals, _global(np.asarray(factors[sl], np.float64), sharding))
            if pending is not None:  # fetch the previous chunk while this one runs
                results.append(fetch(pending, values))
                if update:
                    bar.update(pending[2])
            pending = (out, start, stop - start)
        if pending is not None:
            results.append(fetch(pending, values))
            if update:
                bar.update(pending[2])
        return {k: np.concatenate([r[k] for r in results]) for k in results[0]}

    factors = np.ones(n_points) * (1.0 if t_max is None else float(t_max))
    t_run = time.perf_counter()
    out = run(swept, factors, True)
    # points whose window was too short (charging_time = NaN): double their window
    extend = [name for name, _, user in metric_list if name in _EXTEND and not user]
    retried = 0
    for _ in range(max_doublings):
        bad = np.zeros(n_points, bool)
        for name in extend:
            bad |= np.isnan(out[name])
        if not bad.any():
            break
        idx = np.nonzero(bad)[0]
        factors[idx] *= 2.0
        retried += len(idx)
        again = run({k: v[idx] for k, v in swept.items()}, factors[idx], False)
        for k in out:
            out[k][idx] = again[k]
    info = {"points": n_points, "chunk_size": chunk, "chunk_points": B, "chunks": math.ceil(n_points / B),
            "num_times": K, "bytes_per_device": used, "compile_s": compile_s,
            "run_s": time.perf_counter() - t_run, "retried_points": retried}
    return out, info


#: On CPU, points per vmapped batch inside a chunk, and the number of chunks a group aims for.
_CPU_BATCH, _CHUNKS = 8, 8

#: Compiled chunk programs, by structure (least recently built dropped first).
_COMPILED: dict = {}
_CACHE_SIZE = 32


def _global(x: np.ndarray, sharding: NamedSharding):
    """A global array from the host copy that every process holds (multi-host safe)."""
    return jax.make_array_from_callback(x.shape, sharding, lambda index: x[index])


def _fetch(out: dict, n: int) -> dict:
    if jax.process_count() > 1:
        from jax.experimental import multihost_utils

        out = multihost_utils.process_allgather(out, tiled=True)
    return {k: np.asarray(v)[:n] for k, v in out.items()}
