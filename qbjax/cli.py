"""The ``qbjax`` command (contract: shared CLI.md).

Every command takes ``--json`` and then prints exactly one JSON object on
stdout, with every parameter used (defaults included) under ``"params"``.
Bad input exits with status 2 and one line on stderr that names the
parameter and what is allowed; no traceback.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import warnings

from .methods import CLOSED_NAMES

__all__ = ["main"]

# Model parameters accepted on the command line, with their types.
MODEL_FLAGS = {
    "oscillator": {"n": int, "g": float, "omega0": float},
    "spins": {"n": int, "g": float, "omega0": float, "tilt": float},
    "dicke": {"n": int, "g": float, "omega0": float, "cutoff": int},
}


class UsageError(Exception):
    """Bad command-line input (exit status 2)."""


class _Parser(argparse.ArgumentParser):
    def error(self, message):  # argparse would print usage and exit; we want one line
        raise UsageError(message)


def _number(kind, name):
    def parse(text: str):
        try:
            value = float(text)
        except ValueError:
            raise UsageError(f"--{name} must be a number, got {text!r}") from None
        if not math.isfinite(value):
            raise UsageError(f"--{name} must be finite, got {text!r}")
        if kind is int:
            if not value.is_integer():
                raise UsageError(f"--{name} must be an integer, got {text!r}")
            return int(value)
        return value

    return parse


def _model_params(model: str, extra: list[str]) -> dict:
    allowed = MODEL_FLAGS[model]
    params, i = {}, 0
    while i < len(extra):
        flag = extra[i]
        if not flag.startswith("--"):
            raise UsageError(f"unexpected argument {flag!r}")
        name = flag[2:].replace("-", "_")
        if "=" in name:
            name, value = name.split("=", 1)
        else:
            if i + 1 >= len(extra):
                raise UsageError(f"{flag} needs a value")
            value = extra[i + 1]
            i += 1
        if name not in allowed:
            raise UsageError(f"unknown flag --{name} for model {model!r}; allowed: "
                             + ", ".join("--" + k for k in allowed))
        params[name] = _number(allowed[name], name)(value)
        i += 1
    return params


def _build(model: str, params: dict):
    from .models import MODELS
    from .models._common import ParameterError

    try:
        return MODELS[model](**params)
    except ParameterError as e:
        raise UsageError(str(e)) from None


def _base_parser(prog: str) -> _Parser:
    p = _Parser(prog=prog, add_help=True, allow_abbrev=False)
    p.add_argument("--json", action="store_true", help="print one JSON object")
    return p


def _model_arg(text: str) -> str:
    if text not in MODEL_FLAGS:
        allowed = [*MODEL_FLAGS, "heat-engine", "spin-chain"]
        raise UsageError(f"unknown model {text!r}; allowed: {', '.join(allowed)}")
    return text


def _positive(name):
    def parse(text):
        v = _number(float, name)(text)
        if v <= 0:
            raise UsageError(f"--{name} must be > 0, got {text!r}")
        return v

    return parse


def _count(name, minimum):
    def parse(text):
        v = _number(int, name)(text)
        if v < minimum:
            raise UsageError(f"--{name} must be an integer >= {minimum}, got {text!r}")
        return v

    return parse


def _max_power_record(mp) -> dict:
    return {
        "max_power": float(mp.power),
        "optimal_time": float(mp.time),
        "energy_at_max_power": float(mp.energy),
        "certified": bool(mp.certified),
    }


def _all_params(model, args) -> dict:
    out = dict(model.params())
    t_max = float(model.default_t_max()) if args.t_max is None else args.t_max
    num_times = model.default_num_times() if args.num_times is None else args.num_times
    out.update({"t_max": t_max, "num_times": num_times, "method": args.method})
    return out


def cmd_charge(argv):
    if "heat-engine" in argv:
        from .cli_heat_engine import charge_heat_engine

        return charge_heat_engine([a for a in argv if a != "heat-engine"])
    if "spin-chain" in argv:
        from .cli_spin_chain import charge_spin_chain

        return charge_spin_chain([a for a in argv if a != "spin-chain"])
    if "reservoirs" in argv:
        from .cli_reservoirs import charge_reservoirs_cli

        return charge_reservoirs_cli([a for a in argv if a != "reservoirs"])
    p = _base_parser("qbjax charge")
    p.add_argument("model", type=_model_arg)
    p.add_argument("--classical", action="store_true", help="the classical analog (Hamilton flow)")
    p.add_argument("--t-max", type=_positive("t-max"), default=None, help="end of the time grid")
    p.add_argument("--num-times", type=_count("num-times", 3), default=None, help="grid points (default: the model's)")
    p.add_argument("--method", choices=list(CLOSED_NAMES), default="auto")
    p.add_argument("--grad", action="append", default=[], metavar="PARAM", help="d max_power / d PARAM")
    args, extra = p.parse_known_args(argv)
    params = _model_params(args.model, extra)
    model = _build(args.model, params)
    leaves = [k for k, t in MODEL_FLAGS[args.model].items() if t is float]
    for name in args.grad:
        if name not in leaves:
            raise UsageError(f"--grad {name}: allowed parameters for {args.model!r}: {', '.join(leaves)}")

    from .analysis import max_power_grad
    from .charging import charge, time_grid
    from .metrics import max_power

    kw = dict(classical=args.classical, t_max=args.t_max, num_times=args.num_times)
    if args.classical and args.method != "auto":
        raise UsageError("--method applies to quantum dynamics only")
    method = args.method
    ts = time_grid(model, args.t_max, args.num_times)
    traj = charge(model, ts, classical=args.classical, method=method)
    mp = max_power(traj)
    out = {
        "model": args.model,
        "dynamics": "classical" if args.classical else "quantum",
        "params": _all_params(model, args),
        **_max_power_record(mp),
        "method": traj.method,
    }
    out["params"]["t_max"] = float(ts[-1])
    out["params"]["num_times"] = int(ts.shape[0])
    if not args.classical:
        from .charging import battery_ergotropy

        out["ergotropy_at_max_power"] = float(battery_ergotropy(model, mp.time))
        out["ergotropy_at_max_power_sector"] = float(battery_ergotropy(model, mp.time, physical=False))
    if traj.top_population.size:
        out["top_fock_population"] = float(traj.top_population.max())
    if args.grad:
        _, grads = max_power_grad(model, args.grad, method=method, **kw)
        out["grad"] = {k: float(v) for k, v in grads.items()}
    return out


def cmd_advantage(argv):
    p = _base_parser("qbjax advantage")
    p.add_argument("model", type=_model_arg)
    p.add_argument("--t-max", type=_positive("t-max"), default=None)
    p.add_argument("--num-times", type=_count("num-times", 3), default=None)
    p.add_argument("--method", choices=list(CLOSED_NAMES), default="auto")
    args, extra = p.parse_known_args(argv)
    model = _build(args.model, _model_params(args.model, extra))
    from .analysis import advantage

    adv = advantage(model, t_max=args.t_max, num_times=args.num_times, method=args.method)
    out = {
        "model": args.model,
        "params": _all_params(model, args),
        "gamma_quantum": float(adv["quantum"]["gamma"]),
        "gamma_classical": float(adv["classical"]["gamma"]),
        "ratio": float(adv["ratio"]),
    }
    for label in ("quantum", "classical"):
        out[label] = {"n": _max_power_record(adv[label]["n"]), "one": _max_power_record(adv[label]["one"])}
    return out


def cmd_demo(argv):
    p = _base_parser("qbjax demo")
    p.add_argument("--out", default="qbjax-report", help="report folder (created)")
    p.add_argument("--quick", action="store_true", help="smaller sizes (for tests)")
    args = p.parse_args(argv)
    from .figures import demo

    return demo.run(args.out, quick=args.quick, verbose=True, table=not args.json)


def cmd_reproduce(argv):
    from .figures import FIGURES

    p = _base_parser("qbjax reproduce")
    p.add_argument("figure", nargs="?", default=None, help="figure name; none lists them")
    p.add_argument("--out", default="qbjax-figures", help="output folder (created)")
    p.add_argument("--quick", action="store_true", help="small sizes (for tests)")
    args = p.parse_args(argv)
    if args.figure is None:
        return {"figures": {k: v.__doc__.strip().splitlines()[0] for k, v in FIGURES.items()}}
    if args.figure not in FIGURES:
        raise UsageError(f"unknown figure {args.figure!r}; allowed: {', '.join(FIGURES)}")
    return FIGURES[args.figure](args.out, quick=args.quick, verbose=True)  # progress on stderr


def _lazy(module: str, name: str):
    """A command implemented in its own module (imported only when used)."""

    def run(argv):
        import importlib

        return getattr(importlib.import_module(module), name)(argv)

    return run


COMMANDS = {
    "charge": cmd_charge,
    "advantage": cmd_advantage,
    "collide": _lazy("qbjax.collisional.cli", "cmd_collide"),
    "sweep": _lazy("qbjax.cli_sweep", "cmd_sweep"),
    "demo": cmd_demo,
    "reproduce": cmd_reproduce,
}


def _print_human(out: dict):
    for key, value in out.items():
        if isinstance(value, dict):
            print(f"{key}:")
            for k, v in value.items():
                print(f"  {k}: {v}")
        else:
            print(f"{key}: {value}")


def main(argv=None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help"):
        print("usage: qbjax {charge,advantage,collide,demo,reproduce} ... [--json]\n"
              "  charge MODEL [--n N --g G --omega0 W ...] [--classical] [--t-max T] [--grad PARAM]\n"
              "  advantage MODEL [--n N ...]\n"
              "  collide --battery oscillator|spin|ladder --levels L --protocol full-swap|greedy|constant|optimized"
              " [--theta T] [--q Q --coherence C --phase A] --time T [--loss G]\n  demo\n  reproduce [FIGURE]\n"
              "  sweep MODEL --PARAM start:stop:num ... [--metric max_power] [--zip A,B] [--out FILE.csv]\n"
              "  charge heat-engine [--n N --beta-omega B --rate R --protocol collective|individual --eps E]\n"
              "  charge spin-chain [--n N --b B --g G --field W --alpha A --couplings nn|power --power P]\n"
              f"models: {', '.join(MODEL_FLAGS)}, heat-engine, spin-chain")
        return 0 if argv else 2
    command, rest = argv[0], argv[1:]
    if command not in COMMANDS:
        print(f"qbjax: unknown command {command!r}; allowed: {', '.join(COMMANDS)}", file=sys.stderr)
        return 2
    as_json = "--json" in rest
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            out = COMMANDS[command](rest)
    except UsageError as e:
        print(f"qbjax {command}: error: {e}", file=sys.stderr)
        return 2
    except MemoryError as e:
        print(f"qbjax {command}: error: {e}", file=sys.stderr)
        return 2
    notes = sorted({str(w.message) for w in caught if not str(w.message).startswith("Complex dtype")})
    for note in notes:
        print(f"qbjax {command}: warning: {note}", file=sys.stderr)
    if notes and isinstance(out, dict):
        out["warnings"] = notes
    if _has_nan(out):
        print(f"qbjax {command}: error: the computation produced NaN; see warnings above", file=sys.stderr)
        return 1
    if as_json:
        print(json.dumps(out))
    else:
        _print_human(out)
    return 0


def _has_nan(obj) -> bool:
    if isinstance(obj, float):
        return not math.isfinite(obj)
    if isinstance(obj, dict):
        return any(_has_nan(v) for v in obj.values())
    if isinstance(obj, (list, tuple)):
        return any(_has_nan(v) for v in obj)
    return False


if __name__ == "__main__":
    raise SystemExit(main())
