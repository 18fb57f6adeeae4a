"""``qbjax sweep MODEL --PARAM start:stop:num ... [--metric M] [--out FILE] --json``.

A flag whose value is ``start:stop:num`` (``linspace``) or a comma-separated
list sweeps that parameter; a plain value fixes it.  Swept parameters form an
outer product unless ``--zip a,b`` varies them together.  The CSV (or JSON,
by the file's extension) has one column per swept parameter and per metric.
"""

from __future__ import annotations

import inspect
import os

from ..methods import CLOSED_NAMES, OPEN_NAMES
from .common import UsageError, base_parser, charge_cost, check_budget, check_output, count, positive

#: Options of the sweep itself (everything else is a model parameter).
OPTIONS = ("metric", "out", "zip", "t_max", "num_times", "method", "memory_budget", "chunk_size", "no_progress",
           "json")


def _split(argv):
    """Separate ``--name value`` pairs of model parameters from the sweep's own options."""
    own, params, i = [], {}, 0
    while i < len(argv):
        a = argv[i]
        if not a.startswith("--"):
            own.append(a)
            i += 1
            continue
        name, eq, value = a[2:].partition("=")
        key = name.replace("-", "_")
        if key == "help":
            own.append(a)
            i += 1
            continue
        if key in OPTIONS:
            own.append(a)
            if not eq and key not in ("json", "no_progress") and i + 1 < len(argv):
                own.append(argv[i + 1])
                i += 1
            i += 1
            continue
        if not eq:
            if i + 1 >= len(argv):
                raise UsageError(f"--{name} needs a value (start:stop:num, a list a,b,c or a number)")
            value = argv[i + 1]
            i += 1
        if key in params:
            raise UsageError(f"--{name} given twice")
        params[key] = value
        i += 1
    return own, params


def cmd_sweep(argv) -> dict:
    from ..sweep import METRICS, SweepError, parse_range, sweep_models

    own, raw = _split(argv)
    p = base_parser("qbjax sweep")
    p.add_argument("model", help="battery model: " + ", ".join(sweep_models()))
    p.add_argument("--metric", action="append", default=[], help="figure of merit (repeat, or a,b): "
                   + ", ".join(METRICS))
    p.add_argument("--out", default=None, help="output file, .csv (default) or .json")
    p.add_argument("--zip", action="append", default=[], metavar="A,B", help="vary these swept parameters together")
    p.add_argument("--t-max", type=positive("t-max"), default=None, help="one window for all points")
    p.add_argument("--num-times", type=count("num-times", 3), default=None)
    from ..methods import NATIVE

    p.add_argument("--method", choices=list(dict.fromkeys(CLOSED_NAMES + OPEN_NAMES + tuple(
        k for aliases, _ in NATIVE.values() for k in aliases))),
                   default="auto", help="propagator (see qbjax charge)")
    p.add_argument("--memory-budget", type=positive("memory-budget"), default=None, metavar="MiB",
                   help="memory per device for one chunk, MiB")
    p.add_argument("--chunk-size", type=count("chunk-size", 1), default=None, help="points per device per chunk")
    p.add_argument("--no-progress", action="store_true")
    args = p.parse_args(own)

    registry = sweep_models()
    if args.model not in registry:
        raise UsageError(f"unknown model {args.model!r}; allowed: {', '.join(registry)}")
    cls = registry[args.model]
    sig = inspect.signature(cls.__init__).parameters
    allowed = [k for k in sig if k != "self"]
    metrics = [m for spec in (args.metric or ["max_power"]) for m in spec.split(",") if m]
    for m in metrics:
        if m not in METRICS:
            raise UsageError(f"--metric {m}: unknown metric; allowed: {', '.join(METRICS)}")
    fixed, swept = {}, {}
    for key, text in raw.items():
        if key not in allowed:
            raise UsageError(f"unknown parameter --{key.replace('_', '-')} for model {args.model!r}; allowed: "
                             + ", ".join("--" + k.replace("_", "-") for k in allowed))
        default = sig[key].default
        flag = key.replace("_", "-")
        if isinstance(default, str) or isinstance(default, bool):
            values = text.split(",")
            if isinstance(default, bool):
                values = [v.lower() in ("1", "true", "yes") for v in values]
            (swept if len(values) > 1 else fixed)[key] = values if len(values) > 1 else values[0]
            continue
        try:
            if ":" in text or "," in text:
                swept[key] = parse_range(text, flag)
            else:
                fixed[key] = parse_range(text, flag)[0]
        except SweepError as e:
            raise UsageError(str(e)) from None
    if not swept:
        raise UsageError("give at least one swept parameter as --PARAM start:stop:num (or a,b,c); allowed: "
                         + ", ".join("--" + k.replace("_", "-") for k in allowed))
    from ..sweep import product, zipped

    grid, used = None, set()
    for spec in args.zip:
        names = [n.replace("-", "_") for n in spec.split(",") if n]
        for n in names:
            if n not in swept:
                raise UsageError(f"--zip {spec}: {n!r} is not a swept parameter; swept: "
                                 + ", ".join(swept))
            if n in used:
                raise UsageError(f"--zip: {n!r} appears in two zips")
        lengths = {len(swept[n]) for n in names}
        if len(lengths) > 1:
            raise UsageError(f"--zip {spec}: the zipped parameters need the same num, got "
                             + ", ".join(f"{n}={len(swept[n])}" for n in names))
        part = zipped(**{n: swept[n] for n in names})
        grid = part if grid is None else grid * part
        used.update(names)
    rest = {k: v for k, v in swept.items() if k not in used}
    if rest:
        grid = product(**rest) if grid is None else grid * product(**rest)
    out_path = args.out or f"sweep-{args.model}.csv"
    ext = os.path.splitext(out_path)[1].lower()
    if ext not in (".csv", ".json"):
        raise UsageError(f"--out must end in .csv or .json, got {out_path!r}")
    check_output(out_path)
    for k in fixed:
        if isinstance(sig[k].default, int) and not isinstance(sig[k].default, bool) and float(fixed[k]).is_integer():
            fixed[k] = int(fixed[k])
    from ..sweep.plan import static_fields

    for k in static_fields(cls) & set(fixed):  # sizes and cutoffs are integers
        if isinstance(fixed[k], float) and fixed[k].is_integer():
            fixed[k] = int(fixed[k])

    from ..models._common import ParameterError
    from ..sweep import sweep

    _check_sweep_budget(cls, fixed, swept, grid, args)
    budget = None if args.memory_budget is None else int(args.memory_budget * 2**20)
    try:
        res = sweep(cls, grid, metrics, t_max=args.t_max, num_times=args.num_times, method=args.method,
                    memory_budget=budget, chunk_size=args.chunk_size, progress=not args.no_progress, **fixed)
    except (SweepError, ParameterError) as e:
        raise UsageError(str(e)) from None
    if ext == ".json":
        res.to_json(out_path)
    else:
        res.to_csv(out_path)
    info = res.info
    best_metric = metrics[0]
    col = res.frame[best_metric].to_numpy(dtype=float)
    best = None
    if (col == col).any():
        i = int(max(range(len(col)), key=lambda k: col[k] if col[k] == col[k] else -float("inf")))
        best = {k: _plain(res.frame[k].iloc[i]) for k in list(grid.names) + metrics}
    params = {**{k: _plain(v) for k, v in fixed.items()},
              **{k: {"start": _plain(v[0]), "stop": _plain(v[-1]), "num": len(v)} for k, v in swept.items()},
              "metric": metrics, "zip": args.zip, "t_max": args.t_max, "num_times": args.num_times,
              "method": args.method, "memory_budget_mib": args.memory_budget, "chunk_size": args.chunk_size,
              "out": out_path}
    model_params = {k: v for k, v in info["params"].items()}
    return {
        "model": args.model,
        "params": params,
        "model_params": model_params,
        "out": os.path.abspath(out_path),
        "points": info["points"],
        "grid_shape": info["grid"]["shape"],
        "columns": list(res.frame.columns),
        "devices": info["devices"],
        "platform": info["platform"],
        "chunk_size": info["chunk_size"],
        "groups": len(info["groups"]),
        "bytes_per_device": max((g["bytes_per_device"] or 0) for g in info["groups"]),
        "compile_s": info["compile_s"],
        "wall_s": info["wall_s"],
        "best": best,
    }


def _plain(x):
    import numpy as np

    if isinstance(x, (np.floating, float)):
        return float(x)
    if isinstance(x, (np.integer,)):
        return int(x)
    if isinstance(x, np.bool_):
        return bool(x)
    return x


def _check_sweep_budget(cls, fixed: dict, swept: dict, grid, args) -> None:
    """Refuse a sweep whose estimated work (points x one charge at the first point) exceeds the machine."""
    from ..models._common import ParameterError

    first = {k: (v[0] if not isinstance(v, str) else v) for k, v in swept.items()}
    try:
        model = cls(**fixed, **first)
    except (ParameterError, TypeError, ValueError):
        return  # the sweep itself reports bad parameters
    points = int(grid.size) if hasattr(grid, "size") else int(len(grid))
    num_times = model.default_num_times() if args.num_times is None else args.num_times
    if not hasattr(model, "spec"):
        return
    memory, operations = charge_cost(model, num_times)
    name = max(swept, key=lambda k: len(swept[k]))
    num = len(swept[name])
    check_budget(name.replace("_", "-"), f"(num = {num}, {points} points)", memory=memory,
                 operations=points * operations)
