"""``qbjax charge reservoirs``: batteries charged by collective dissipation and pumping (seed 004).

Rates are the paper's (``L[O] = 2 O rho O^+ - ...``); ``--pump`` is
``gamma_up`` in the units of ``--gamma-down`` (default 1), so ``--pump 2`` is
``gamma_up = 2 gamma_down``.  Times are in units of ``1 / gamma_down`` at the
default ``--gamma-down 1``; the default window is
``(10 + 4 ln(N_C + 1)) / (gamma_down N_C)`` (burst and plateau).

``--method auto`` (default) solves the exact permutation-symmetric master
equation when its state has at most ``AUTO_EXACT_ENTRIES`` entries and there
is no individual decay, else the second-order mean field.
"""

from __future__ import annotations

import math

from .common import UsageError, Working, base_parser, count, interval, nonnegative, positive


def charge_reservoirs_cli(argv) -> dict:
    p = base_parser("qbjax charge reservoirs")
    p.add_argument("--n-charger", type=count("n-charger", 1), default=100, help="charger spins N_C (1e7 allowed)")
    p.add_argument("--n-battery", type=count("n-battery", 1), default=2, help="spins per battery N_B")
    p.add_argument("--batteries", type=count("batteries", 1), default=1, help="number of batteries m")
    p.add_argument("--pump", type=nonnegative("pump"), default=0.0, help="collective pump gamma_up >= 0 (Eq. 4)")
    p.add_argument("--gamma-down", type=positive("gamma-down"), default=1.0, help="collective decay gamma_down > 0")
    p.add_argument("--temperature", type=nonnegative("temperature"), default=0.0,
                   help="reservoir temperature k_B T / (hbar omega0) >= 0 (0: the paper)")
    p.add_argument("--individual-decay", type=nonnegative("individual-decay"), default=0.0,
                   help="individual decay rate of every spin >= 0 (mean field only)")
    p.add_argument("--shared", action="store_true", help="one reservoir for charger and all batteries (Eq. 2)")
    p.add_argument("--charger-energy", type=interval("charger-energy", 0.0, 1.0, what=" (an energy density)"), default=1.0,
                   help="initial charger energy density in [0, 1] (rounded to whole excitations)")
    p.add_argument("--battery-energy", type=interval("battery-energy", 0.0, 1.0, what=" (an energy density)"), default=0.0,
                   help="initial battery energy density in [0, 1]")
    from ..methods import NATIVE
    from ..models import reservoirs  # noqa: F401  (registers the family's methods)

    p.add_argument("--method", choices=list(NATIVE["reservoirs"][0]), default="auto")
    p.add_argument("--closure", choices=["full", "factorized"], default="full", help="mean-field closure")
    p.add_argument("--t-max", type=positive("t-max"), default=None, help="end of the window (units 1/gamma_down)")
    p.add_argument("--num-times", type=count("num-times", 2), default=401)
    p.add_argument("--series", action="store_true", help="add the time series")
    p.add_argument("--grad", action="append", default=[], choices=["pump"],
                   help="d(mean battery energy density at t-max)/d gamma_up")
    args = p.parse_args(argv)

    import jax
    import jax.numpy as jnp

    from ..dynamics.collective import WORKING_COPIES
    from ..models._common import ParameterError
    from ..models.reservoirs import AUTO_EXACT_ENTRIES, ReservoirBattery, charge_reservoirs, final_battery_energy
    from ..models.reservoirs import resolve_method as _resolve
    from ..representation import DENSE_MEMORY_LIMIT

    n_thermal = 0.0 if args.temperature == 0 else 1.0 / math.expm1(1.0 / args.temperature)
    try:
        model = ReservoirBattery(args.n_charger, args.n_battery, args.batteries, gamma_down=args.gamma_down,
                                 gamma_up=args.pump, gamma_individual=args.individual_decay, n_thermal=n_thermal,
                                 shared=args.shared, charger_excited=round(args.charger_energy * args.n_charger),
                                 battery_excited=round(args.battery_energy * args.n_battery))
        method = _resolve(model, args.method)
    except ParameterError as e:
        raise UsageError(str(e)) from None
    if method in ("exact", "lindblad"):
        # exact: real neutral-sector entries; lindblad: the dense complex density matrix
        need = (8 * WORKING_COPIES * model.exact_entries() if method == "exact"
                else 16 * WORKING_COPIES * math.prod(n + 1 for n in model.sizes) ** 2)
        if need > DENSE_MEMORY_LIMIT:
            raise UsageError(f"--method {method}: N_C = {args.n_charger}, N_B = {args.n_battery}, m = "
                             f"{args.batteries} needs {need / 2**30:.3g} GiB (limit "
                             f"{DENSE_MEMORY_LIMIT / 2**30:.0f} GiB); allowed: sizes whose state fits the limit, "
                             "or --method meanfield (any size)")
    t_max = float(model.default_t_max()) if args.t_max is None else args.t_max
    ts = jnp.linspace(0.0, t_max, args.num_times)
    with Working("qbjax charge reservoirs"):
        traj = charge_reservoirs(model, ts, method=method, closure=args.closure)
    params = {"n_charger": args.n_charger, "n_battery": args.n_battery, "batteries": args.batteries,
              "pump": args.pump, "gamma_up": args.pump, "gamma_down": args.gamma_down,
              "temperature": args.temperature, "n_thermal": n_thermal, "individual_decay": args.individual_decay,
              "shared": args.shared, "charger_excited": model.charger_excited,
              "battery_excited": model.battery_excited, "charger_energy": model.charger_excited / args.n_charger,
              "battery_energy": model.battery_excited / args.n_battery, "method": args.method,
              "closure": args.closure, "t_max": t_max, "num_times": args.num_times, "omega0": 1.0,
              "auto_exact_entries": AUTO_EXACT_ENTRIES, "rate_convention": "paper L[O] = 2 O rho O^+ - {O^+ O, rho}"}
    out = {
        "model": "reservoirs",
        "method": method,
        "closure": args.closure if method == "meanfield" else None,
        "params": params,
        "battery_energy_density": [float(x) for x in traj.batteries[:, -1]],
        "charger_energy_density": float(traj.charger[-1]),
        "t_max": t_max,
    }
    if method == "exact":
        out["exact_state_entries"] = model.exact_entries()
        # the exact solver stops once the rest of the window is proved stationary (null: it integrated all)
        out["stationary_from"] = traj.stationary_from
    if args.series:
        out["series"] = {"t": [float(x) for x in ts], "charger": [float(x) for x in traj.charger],
                         "batteries": [[float(x) for x in row] for row in traj.batteries]}
    if args.grad:
        g_method = "exact" if method == "exact" else "meanfield"

        def energy(up):
            m = ReservoirBattery(args.n_charger, args.n_battery, args.batteries, gamma_down=args.gamma_down,
                                 gamma_up=up, gamma_individual=args.individual_decay, n_thermal=n_thermal,
                                 shared=args.shared, charger_excited=model.charger_excited,
                                 battery_excited=model.battery_excited)
            return final_battery_energy(m, t_max, method=g_method, closure=args.closure)

        out["grad"] = {"pump": float(jax.grad(energy)(jnp.asarray(args.pump, jnp.float64)))}
    return out
