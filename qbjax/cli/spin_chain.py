"""``qbjax charge spin-chain``: the XXZ spin-chain battery (seed 002)."""

from __future__ import annotations

from ..methods import CLOSED_NAMES
from .common import UsageError, base_parser, count, max_power_record, number, positive


def charge_spin_chain(argv) -> dict:
    p = base_parser("qbjax charge spin-chain")
    p.add_argument("--n", type=count("n", 1), default=4, help="number of spins N")
    p.add_argument("--b", type=positive("b"), default=1.0, help="field B of H_B (Eq. 2)")
    p.add_argument("--g", type=number(float, "g"), default=1.0, help="coupling g >= 0 (Eq. 4)")
    p.add_argument("--field", type=number(float, "field"), default=4.0, help="charging field omega (Eq. 6)")
    p.add_argument("--alpha", type=number(float, "alpha"), default=0.0, help="anisotropy, |alpha| <= 1 (Eq. 3)")
    p.add_argument("--couplings", choices=["nn", "power"], default="nn")
    p.add_argument("--power", type=number(float, "power"), default=1.0, help="p of g/|i-j|^p (Eq. 4b)")
    p.add_argument("--periodic", action="store_true", help="nearest-neighbour ring")
    p.add_argument("--classical", action="store_true", help="the mean-field chain (Eq. 20-21)")
    p.add_argument("--t-max", type=positive("t-max"), default=None)
    p.add_argument("--num-times", type=count("num-times", 3), default=None)
    p.add_argument("--method", choices=list(CLOSED_NAMES), default="auto")
    p.add_argument("--grad", action="append", default=[], metavar="PARAM",
                   help="d max_power / d PARAM (b, g, field, alpha, power)")
    args = p.parse_args(argv)

    from ..analysis import max_power_grad
    from ..charging import charge, time_grid
    from ..metrics import max_energy, max_power
    from ..models._common import ParameterError
    from ..models.spin_chain import MAX_N, SpinChainBattery, state_memory

    if args.n > MAX_N:
        raise UsageError(f"--n must be <= {MAX_N}: exact dynamics of {args.n} spins needs "
                         f"{state_memory(args.n) / 2**30:.0f} GiB (2^{args.n} complex amplitudes per vector)")
    if args.g < 0:
        raise UsageError(f"--g must be >= 0 (attractive couplings: |down...down> is the ground state), got {args.g}")
    if abs(args.alpha) > 1:
        raise UsageError(f"--alpha must be in [-1, 1] (for |alpha| > 1 the initial |down...down> is not the ground "
                         f"state of H_0 and the protocol of Eq. 7-10 does not apply), got {args.alpha}")
    if args.power < 0:
        raise UsageError(f"--power must be >= 0, got {args.power}")
    try:
        model = SpinChainBattery(args.n, args.b, args.g, args.field, args.alpha, args.couplings, args.power,
                                 args.periodic)
    except ParameterError as e:
        raise UsageError(str(e)) from None
    leaves = ["b", "g", "field", "alpha", "power"]
    for name in args.grad:
        if name not in leaves:
            raise UsageError(f"--grad {name}: allowed parameters: {', '.join(leaves)}")
    if args.classical and args.method != "auto":
        raise UsageError("--method applies to quantum dynamics only")

    ts = time_grid(model, args.t_max, args.num_times)
    traj = charge(model, ts, classical=args.classical, method=args.method)
    mp = max_power(traj)
    mw = max_energy(traj)
    params = dict(model.params())
    params.pop("matrix", None)
    params["sites"] = [float(x) for x in model.sites]
    params.update({"t_max": float(ts[-1]), "num_times": int(ts.shape[0]), "method": args.method,
                   "total_coupling": float(model.total_coupling())})
    out = {
        "model": "spin-chain",
        "dynamics": "classical" if args.classical else "quantum",
        "params": params,
        **max_power_record(mp),
        "max_work": float(mw.energy),
        "time_of_max_work": float(mw.time),
        "method": traj.method,
    }
    if args.grad:
        _, grads = max_power_grad(model, args.grad, classical=args.classical, method=args.method,
                                  t_max=args.t_max, num_times=args.num_times)
        out["grad"] = {k: float(v) for k, v in grads.items()}
    return out
