"""``qbjax charge MODEL``: charge a battery, report its maximum power and ergotropy."""

from __future__ import annotations

from ..methods import CLOSED_NAMES
from .common import (
    EXTRA_MODELS,
    MODEL_FLAGS,
    UsageError,
    Working,
    all_params,
    base_parser,
    build,
    charge_cost,
    check_budget,
    count,
    estimated_seconds,
    max_power_record,
    model_arg,
    model_help,
    model_params,
    positive,
)


def cmd_charge(argv):
    if "heat-engine" in argv:
        from .heat_engine import charge_heat_engine

        return charge_heat_engine([a for a in argv if a != "heat-engine"])
    if "spin-chain" in argv:
        from .spin_chain import charge_spin_chain

        return charge_spin_chain([a for a in argv if a != "spin-chain"])
    if "reservoirs" in argv:
        from .reservoirs import charge_reservoirs_cli

        return charge_reservoirs_cli([a for a in argv if a != "reservoirs"])
    if any(a in ("-h", "--help") for a in argv) and any(a in MODEL_FLAGS for a in argv):
        model = next(a for a in argv if a in MODEL_FLAGS)
        print(_parser().format_help().rstrip() + "\n\n" + model_help(model))
        raise SystemExit(0)
    p = _parser()
    args, extra = p.parse_known_args(argv)
    return _run(p, args, extra)


def _parser():
    p = base_parser("qbjax charge")
    p.add_argument("model", type=model_arg, help="one of " + ", ".join([*MODEL_FLAGS, *EXTRA_MODELS])
                   + " (qbjax charge MODEL --help lists its flags)")
    p.add_argument("--classical", action="store_true", help="the classical analog (Hamilton flow)")
    p.add_argument("--t-max", type=positive("t-max"), default=None, help="end of the time grid")
    p.add_argument("--num-times", type=count("num-times", 3), default=None, help="grid points (default: the model's)")
    p.add_argument("--method", choices=list(CLOSED_NAMES), default="auto")
    p.add_argument("--grad", action="append", default=[], metavar="PARAM", help="d max_power / d PARAM")
    return p


def _run(p, args, extra):
    params = model_params(args.model, extra)
    model = build(args.model, params)
    size = "n" if "n" in params or "n" in MODEL_FLAGS[args.model] else next(iter(params), "n")
    cost = _cost(model, args)
    check_budget(size, model.params().get(size), **cost)
    leaves = [k for k, t in MODEL_FLAGS[args.model].items() if t is float]
    for name in args.grad:
        if name not in leaves:
            raise UsageError(f"--grad {name}: allowed parameters for {args.model!r}: {', '.join(leaves)}")

    from ..analysis import max_power_grad
    from ..charging import charge, time_grid
    from ..metrics import max_power

    kw = dict(classical=args.classical, t_max=args.t_max, num_times=args.num_times)
    if args.classical and args.method != "auto":
        raise UsageError("--method applies to quantum dynamics only")
    method = args.method
    ts = time_grid(model, args.t_max, args.num_times)
    with Working("qbjax charge", estimated_seconds(cost["operations"])):
        traj = charge(model, ts, classical=args.classical, method=method)
    mp = max_power(traj)
    out = {
        "model": args.model,
        "dynamics": "classical" if args.classical else "quantum",
        "params": all_params(model, args),
        **max_power_record(mp),
        "method": traj.method,
    }
    out["params"]["classical"] = bool(args.classical)
    out["params"]["grad"] = list(args.grad)
    out["params"]["t_max"] = float(ts[-1])
    out["params"]["num_times"] = int(ts.shape[0])
    if not args.classical:
        from ..charging import battery_ergotropy

        out["ergotropy_at_max_power"] = float(battery_ergotropy(model, mp.time))
        out["ergotropy_at_max_power_sector"] = float(battery_ergotropy(model, mp.time, physical=False))
    if traj.top_population.size:
        out["top_fock_population"] = float(traj.top_population.max())
    if args.grad:
        _, grads = max_power_grad(model, args.grad, method=method, **kw)
        out["grad"] = {k: float(v) for k, v in grads.items()}
    return out


def _cost(model, args, runs: int = 1) -> dict:
    """The budget estimate of ``runs`` charges of ``model`` on the command's grid."""
    num_times = model.default_num_times() if args.num_times is None else args.num_times
    memory, operations = charge_cost(model, num_times)
    return {"memory": memory, "operations": runs * operations}
