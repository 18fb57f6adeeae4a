"""``qbjax charge heat-engine``: batteries charged by quantum heat engines (seed 001).

Effective model (default): ``--n --beta-omega --rate [--omega0] [--protocol]
[--env-rate --env-beta-omega]``.  Giving any engine flag (``--omega-h
--beta-h --beta-c --gamma-h --gamma-c --g``) selects the full three-level
engine model (Lindblad, ``N <= 3``); ``--effective`` then solves the
effective master equation with the parameters derived from the engines.
"""

from __future__ import annotations

import math

from ..methods import OPEN_NAMES
from .common import UsageError, base_parser, count, interval, nonnegative, positive

#: ``|beta omega0|`` allowed (:data:`qbjax.models.heat_engine.BETA_OMEGA_MAX`; not imported: the CLI starts
#: without jax).
BETA_OMEGA_MAX = 50.0

ENGINE_FLAGS = ("omega_h", "beta_h", "beta_c", "gamma_h", "gamma_c", "g")
#: Largest N of the full engine model (dimension 3^N (N + 1) collective, 6^N individual).
FULL_MAX_N = 3


def charge_heat_engine(argv) -> dict:
    p = base_parser("qbjax charge heat-engine")
    p.add_argument("--n", type=count("n", 1), default=10, help="number of batteries N (= engines)")
    p.add_argument("--beta-omega", type=interval("beta-omega", -BETA_OMEGA_MAX, BETA_OMEGA_MAX), default=-0.8,
                   help="beta_e omega0 of the bath (< 0: charging; >= 0: discharging)")
    p.add_argument("--rate", type=positive("rate"), default=0.1, help="effective rate Gamma_e")
    p.add_argument("--omega0", type=positive("omega0"), default=1.0, help="battery splitting")
    p.add_argument("--protocol", choices=["collective", "individual"], default="collective")
    p.add_argument("--eps", type=interval("eps", 0.0, 1.0, closed=(False, False)), default=1e-3, help="deficit of Eq. 17, in (0, 1)")
    p.add_argument("--env-rate", type=nonnegative("env-rate"), default=0.0, help="environmental rate Gamma")
    p.add_argument("--env-beta-omega", type=interval("env-beta-omega", -BETA_OMEGA_MAX, BETA_OMEGA_MAX), default=None,
                   help="environment beta omega0 (default: zero temperature)")
    for name, helptext in (("omega-h", "engine level |2> energy"), ("beta-h", "hot-bath inverse temperature"),
                           ("beta-c", "cold-bath inverse temperature"), ("gamma-h", "hot-bath rate Gamma_h"),
                           ("gamma-c", "cold-bath rate Gamma_c"), ("g", "engine-battery coupling")):
        p.add_argument(f"--{name}", type=positive(name), default=None, help=helptext + " (full model)")
    p.add_argument("--effective", action="store_true",
                   help="with engine flags: solve the effective equation with the derived parameters")
    p.add_argument("--t-max", type=positive("t-max"), default=None, help="first time window (doubled as needed)")
    p.add_argument("--num-times", type=count("num-times", 3), default=81)
    p.add_argument("--method", choices=list(OPEN_NAMES), default="auto")
    p.add_argument("--grad", action="append", default=[], metavar="PARAM",
                   help="d charging_time / d PARAM (also of the steady energy density and ergotropy)")
    p.add_argument("--series", action="store_true", help="add the time series E(t), sigma(t)")
    args = p.parse_args(argv)

    import jax
    import jax.numpy as jnp

    from ..analysis import replace_params
    from ..models._common import ParameterError
    from ..models.heat_engine import HeatEngineBattery, HeatEngineFull
    from ..steady import open_charging

    engine = {k: getattr(args, k) for k in ENGINE_FLAGS if getattr(args, k) is not None}
    full = bool(engine)
    if args.effective and not full:
        raise UsageError("--effective needs engine flags (--omega-h --beta-h --beta-c --gamma-h --gamma-c --g)")
    try:
        if full:
            defaults = HeatEngineFull()
            kw = {k: engine.get(k, float(getattr(defaults, k))) for k in ENGINE_FLAGS}
            engines = HeatEngineFull(args.n, omega0=args.omega0, protocol=args.protocol, **kw)
            if args.effective:
                beta_omega, rate = engines.effective_parameters()
                model = HeatEngineBattery(args.n, float(beta_omega), float(rate), args.omega0, args.protocol)
            else:
                if args.n > FULL_MAX_N:
                    d = 3**args.n * (args.n + 1) if args.protocol == "collective" else 6**args.n
                    raise UsageError(f"--n must be <= {FULL_MAX_N} for the full engine model (density matrix of "
                                     f"dimension {d}, {16 * d * d / 2**20:.0f} MiB, Liouvillian {d * d}); use "
                                     "--effective or the effective flags for larger N")
                model = engines
        else:
            model = HeatEngineBattery(args.n, args.beta_omega, args.rate, args.omega0, args.protocol,
                                      args.env_rate, args.env_beta_omega)
    except ParameterError as e:
        raise UsageError(str(e)) from None
    if args.method == "lindblad" and not full and args.protocol == "collective":
        from ..methods import LINDBLAD_MAX_DIM

        if args.n + 1 > LINDBLAD_MAX_DIM:
            raise UsageError(f"--n must be <= {LINDBLAD_MAX_DIM - 1} with --method lindblad (a dense "
                             f"{args.n + 1} x {args.n + 1} density matrix); got {args.n}. The default method "
                             "(rates) takes any --n")
    if full and (args.env_rate or args.env_beta_omega is not None):
        raise UsageError("--env-rate/--env-beta-omega apply to the effective model only")
    leaves = ([k for k in ENGINE_FLAGS] + ["omega0", "omega_h"] if full and not args.effective
              else ["beta_omega", "rate", "omega0", "env_rate"])
    leaves = sorted(set(leaves))
    for name in args.grad:
        if name.replace("-", "_") not in leaves:
            raise UsageError(f"--grad {name}: allowed parameters: {', '.join(k.replace('_', '-') for k in leaves)}")
    if args.grad and full and not args.effective:
        raise UsageError("--grad is available for the effective model (add --effective, or omit engine flags)")

    res = open_charging(model, eps=args.eps, t_max=args.t_max, num_times=args.num_times, method=args.method)
    traj = res.trajectory
    t_used = float(traj.ts[-1])
    params = dict(model.params())
    params.update({"eps": args.eps, "t_max": t_used, "num_times": args.num_times, "method": args.method,
                   "model": "full" if full and not args.effective else "effective"})
    if full:
        beta_omega, rate = engines.effective_parameters()
        params.update({"effective_beta_omega": float(beta_omega), "effective_rate": float(rate),
                       "separation": float(engines.separation())})
    n_units = args.n
    omega0 = args.omega0
    out = {
        "model": "heat-engine",
        "protocol": args.protocol,
        "params": params,
        "steady_energy_density": float(res.steady_energy_density),
        "steady_fluctuation": float(res.steady.fluctuation),
        "steady_ergotropy": float(res.steady.ergotropy),
        "steady_ergotropy_symmetric": float(res.steady.ergotropy_sector),
        "steady_energy": float(res.steady.energy),
        "charging_time": float(res.charging_time),
        "method": traj.method,
    }
    if not (full and not args.effective):
        # closed forms of seed 001 (Eq. 14-16) at the folded effective parameters
        b = float(model.effective_beta_omega()) if not full else float(beta_omega)
        out["closed_form"] = _closed_forms(n_units, b, omega0, args.protocol)
    if args.series:
        out["series"] = {"t": [float(x) for x in traj.ts], "energy": [float(x) for x in traj.energy],
                         "fluctuation": [math.sqrt(max(float(v), 0.0)) for v in traj.variance]}
    if args.grad:
        names = [g.replace("-", "_") for g in args.grad]

        def figures(values):
            m = replace_params(model, **values)
            r = open_charging(m, eps=args.eps, t_max=t_used, num_times=args.num_times, method=args.method)
            return jnp.stack([r.charging_time, r.steady_energy_density, r.steady.ergotropy])

        values = {k: jnp.asarray(float(getattr(model, k))) for k in names}
        jac = jax.jacrev(figures)(values)  # reverse mode: the rate solver loop is checkpointed
        out["grad"] = {k: float(jac[k][0]) for k in names}
        out["grad_steady_energy_density"] = {k: float(jac[k][1]) for k in names}
        out["grad_steady_ergotropy"] = {k: float(jac[k][2]) for k in names}
    return out


def _closed_forms(n: int, beta_omega: float, omega0: float, protocol: str) -> dict:
    """Eq. 14 (energy density), Eq. 15 (large-N fluctuation) and Eq. 16 (ergotropy)."""
    from ..models.heat_engine import closed_form_steady

    cf = closed_form_steady(1 if protocol == "individual" else n, beta_omega, omega0)
    if protocol == "individual":
        return {"steady_energy_density": cf["energy_density"], "steady_fluctuation": math.sqrt(n) * cf["fluctuation"],
                "steady_ergotropy": n * cf["ergotropy"]}
    return {"steady_energy_density": cf["energy_density"], "steady_fluctuation_eq15": cf["fluctuation_eq15"],
            "steady_fluctuation": cf["fluctuation"], "steady_ergotropy": cf["ergotropy"]}
