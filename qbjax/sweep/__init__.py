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

import time
import warnings

import jax
import numpy as np
from jax.sharding import Mesh

from .grid import Grid, SweepError, as_grid, parse_range, product, zipped  # noqa: F401
from .metrics import (
    METRICS,  # noqa: F401
    _resolve_metrics,
)
from .plan import (
    _base_params,
    _plan_groups,
    sweep_models,  # noqa: F401
)
from .result import (
    SweepResult,  # noqa: F401
    _jsonable,
)
from .run import _default_budget, _Progress, _run_group

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


def _closed_metric_names():
    from .metrics import METRICS

    return [n for n in METRICS if not (n.startswith("steady_") or n == "charging_time")]


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
            the classical analog's trajectory).  Closed dynamics that ``charge``
            would diagonalise: ``"auto"`` runs each static group either by
            dense ``eigh`` or by a Chebyshev expansion with traced bounds (each
            point its own Gershgorin enclosure and window, one static term
            count for the group), whichever a per-group cost estimate says is
            faster; ``"chebyshev"`` forces the expansion, ``"spectral"`` the
            diagonalisation (``info["groups"][i]["closed_method"]`` says which ran).
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
    if num_times is not None and not (isinstance(num_times, (int, np.integer)) and num_times >= 2):
        raise SweepError(f"num_times must be an integer >= 2 (a power needs a time after 0), got {num_times!r}")
    if t_max is not None and not (np.all(np.isfinite(np.asarray(t_max))) and np.all(np.asarray(t_max) > 0)):
        raise SweepError(f"t_max must be finite and > 0, got {t_max!r}")
    grid = as_grid(grid)
    metric_list = _resolve_metrics(metrics)
    devices = list(jax.devices() if devices is None else devices)
    if not devices:
        raise SweepError("devices must not be empty")
    groups, label, generic = _plan_groups(model, grid, model_kwargs)
    if generic and any(not user for _, _, user in metric_list):
        raise SweepError("a module that is not a battery model needs callable metrics fn(module) -> scalar")
    steady = [n for n, _, user in metric_list if not user and (n.startswith("steady_") or n == "charging_time")]
    if steady and not generic:
        for _, _, gmodel in groups:
            unit = gmodel.independent_units()[0]
            if unit.native_method() is None and not unit.spec().dissipators:
                raise SweepError(f"metric {steady[0]!r} needs an open (dissipative) model; {label!r} is closed. "
                                 "Allowed metrics for it: " + ", ".join(n for n in _closed_metric_names()))
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
            from ..charging import TruncationWarning

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
