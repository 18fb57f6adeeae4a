"""``qbjax advantage MODEL``: the collective advantage Gamma, quantum and classical."""

from __future__ import annotations

from ..methods import CLOSED_NAMES
from .charge import _cost
from .common import (
    MODEL_FLAGS,
    all_params,
    base_parser,
    build,
    check_budget,
    closed_model_arg,
    count,
    max_power_record,
    model_params,
    positive,
)


def cmd_advantage(argv):
    p = base_parser("qbjax advantage")
    p.add_argument("model", type=closed_model_arg, help="one of " + ", ".join(MODEL_FLAGS))
    p.add_argument("--t-max", type=positive("t-max"), default=None)
    p.add_argument("--num-times", type=count("num-times", 3), default=None)
    p.add_argument("--method", choices=list(CLOSED_NAMES), default="auto")
    args, extra = p.parse_known_args(argv)
    model = build(args.model, model_params(args.model, extra))
    check_budget("n", model.params().get("n"), **_cost(model, args, runs=4))
    from ..analysis import advantage

    adv = advantage(model, t_max=args.t_max, num_times=args.num_times, method=args.method)
    out = {
        "model": args.model,
        "params": all_params(model, args),
        "gamma_quantum": float(adv["quantum"]["gamma"]),
        "gamma_classical": float(adv["classical"]["gamma"]),
        "ratio": float(adv["ratio"]),
    }
    for label in ("quantum", "classical"):
        out[label] = {"n": max_power_record(adv[label]["n"]), "one": max_power_record(adv[label]["one"])}
    return out
