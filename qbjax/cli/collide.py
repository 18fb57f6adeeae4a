"""``qbjax collide``: collisional charging from the command line (contract: shared CLI.md).

    qbjax collide --battery oscillator|spin|ladder --levels 250
                  --protocol full-swap|greedy|constant|optimized [--theta 0.01pi]
                  [--q Q] [--coherence C] [--phase A] --time 30 [--loss 0]
                  [--collisions K] [--steps S] [--learning-rate LR] --json

JSON keys: ``energy``, ``ergotropy``, ``average_power``, ``collisions``,
``incoherent_bound_energy``, ``params`` (every parameter used, defaults
included), and ``time_used``, ``coherent_limit_energy``, ``full_swap_energy``,
``top_population``, ``schedule`` (optimised and greedy runs),
``incoherent_bound_energy_with_loss`` (lossy runs), ``optimization`` (optimised runs).
"""

from __future__ import annotations

import math
import re

from .common import UsageError, base_parser, check_budget, number

__all__ = ["cmd_collide"]

# Protocol-dependent defaults for the units: the paper's classical protocols use
# excited incoherent units (Sec. III B, IV B), its coherent ones |+> (Sec. III C, IV C).
UNIT_DEFAULTS = {
    "full-swap": {"q": 0.0, "coherence": 0.0},
    "greedy": {"q": 0.0, "coherence": 0.0},
    "constant": {"q": 0.5, "coherence": 1.0},
    "optimized": {"q": 0.5, "coherence": 1.0},
}
DEFAULT_THETA = "0.01pi"
_ANGLE = re.compile(r"^\s*([-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?)?\s*\*?\s*(pi)?\s*(?:/\s*(\d+\.?\d*))?\s*$")


def parse_angle(text: str, name: str) -> float:
    """Radians; a trailing ``pi`` multiplies by pi (``0.01pi``, ``pi/2``, ``1.5``)."""

    m = _ANGLE.match(text)
    if not m or (m.group(1) is None and m.group(2) is None):
        raise UsageError(f"--{name} must be an angle in radians (e.g. 0.03 or 0.01pi), got {text!r}")
    value = float(m.group(1)) if m.group(1) is not None else 1.0
    if m.group(2):
        value *= math.pi
    if m.group(3):
        den = float(m.group(3))
        if den == 0:
            raise UsageError(f"--{name} must not divide by zero, got {text!r}")
        value /= den
    if not math.isfinite(value):
        raise UsageError(f"--{name} must be finite, got {text!r}")
    return value


def _parser():
    p = base_parser("qbjax collide")
    p.add_argument("--battery", default="oscillator", help="oscillator | spin | ladder (default oscillator)")
    p.add_argument("--levels", type=number(int, "levels"), default=250, help="battery levels d >= 2 (spin: 2j + 1)")
    p.add_argument("--protocol", default="constant",
                   help="full-swap | greedy | constant | optimized (default constant)")
    p.add_argument("--theta", default=None,
                   help=f"swap angle for constant (and the optimiser's start), default {DEFAULT_THETA}")
    p.add_argument("--q", type=number(float, "q"), default=None,
                   help="ground-state population of the units (default 0 for full-swap/greedy, 0.5 otherwise)")
    p.add_argument("--coherence", type=number(float, "coherence"), default=None,
                   help="coherence c of the units (default 0 for full-swap/greedy, 1 otherwise)")
    p.add_argument("--phase", default="0", help="phase alpha of the units (radians, 'pi' allowed)")
    p.add_argument("--time", type=number(float, "time"), default=30.0, help="total time Omega tau (default 30)")
    p.add_argument("--loss", type=number(float, "loss"), default=0.0,
                   help="damping gamma = 1 - exp(-kappa t0) between collisions, in [0, 1) (oscillator)")
    p.add_argument("--collisions", type=number(int, "collisions"), default=None,
                   help="optimized: number of angles K (default: time/theta for coherent units, the greedy count else)")
    p.add_argument("--steps", type=number(int, "steps"), default=300, help="optimized: at most this many Adam steps")
    p.add_argument("--learning-rate", type=number(float, "learning-rate"), default=0.02,
                   help="optimized: Adam step size on the softmax logits")
    return p


def _validate(args):

    from ..collisional._model import BATTERIES
    from ..collisional._protocols import PROTOCOLS

    if args.battery not in BATTERIES:
        raise UsageError(f"--battery must be one of {', '.join(BATTERIES)}, got {args.battery!r}")
    if args.protocol not in PROTOCOLS:
        raise UsageError(f"--protocol must be one of {', '.join(PROTOCOLS)}, got {args.protocol!r}")
    if args.levels < 2:
        raise UsageError(f"--levels must be an integer >= 2, got {args.levels}")
    defaults = UNIT_DEFAULTS[args.protocol]
    args.q = defaults["q"] if args.q is None else args.q
    args.coherence = defaults["coherence"] if args.coherence is None else args.coherence
    if not 0 <= args.q <= 1:
        raise UsageError(f"--q must be in [0, 1], got {args.q}")
    if not 0 <= args.coherence <= 1:
        raise UsageError(f"--coherence must be in [0, 1], got {args.coherence}")
    if not 0 <= args.loss < 1:
        raise UsageError(f"--loss must be in [0, 1), got {args.loss}")
    if args.loss > 0 and args.battery != "oscillator":
        raise UsageError(f"--loss must be 0 for --battery {args.battery} (Eq. 21 damps the oscillator only)")
    if args.time <= 0:
        raise UsageError(f"--time must be > 0, got {args.time}")
    if args.theta is not None and args.protocol in ("full-swap", "greedy"):
        raise UsageError(f"--theta applies to --protocol constant or optimized, not {args.protocol}")
    args.theta_text = DEFAULT_THETA if args.theta is None else args.theta
    args.theta = parse_angle(args.theta_text, "theta")
    if args.theta <= 0:
        raise UsageError(f"--theta must be > 0, got {args.theta_text!r}")
    args.phase = parse_angle(args.phase, "phase")
    if args.collisions is not None and args.collisions < 1:
        raise UsageError(f"--collisions must be an integer >= 1, got {args.collisions}")
    if args.collisions is not None and args.protocol != "optimized":
        raise UsageError("--collisions applies to --protocol optimized only")
    if args.steps < 1:
        raise UsageError(f"--steps must be an integer >= 1, got {args.steps}")
    if args.learning_rate <= 0:
        raise UsageError(f"--learning-rate must be > 0, got {args.learning_rate}")
    if args.protocol == "constant" and args.theta > args.time:
        raise UsageError(f"--time must be >= --theta ({args.theta:.6g}) for one collision, got {args.time}")


def _check_budget(args) -> None:
    """Refuse runs that cannot fit or finish here, before any work (``--levels``, ``--collisions``, ``--time``)."""
    d = float(args.levels)
    # collisions: the schedule's length, or at most time / (the smallest full-swap angle pi / (2 sqrt(d)))
    if args.protocol == "optimized" and args.collisions is not None:
        k, name, value = float(args.collisions), "collisions", args.collisions
    elif args.protocol in ("constant", "optimized"):
        k, name, value = args.time / args.theta, "time", args.time
    else:
        k, name, value = args.time * 2.0 * math.sqrt(d) / math.pi, "time", args.time
    # the density matrix and a few temporaries; per collision O(d^2) (a few shifts and scalings)
    check_budget("levels", args.levels, memory=12 * 8 * d * d)
    per_run = k * 30.0 * d * d
    runs = 3.0 * args.steps if args.protocol == "optimized" else 1.0  # Adam: forward and reverse per step
    check_budget(name, value, memory=8 * k * (d + 16) * (2 if args.protocol == "optimized" else 1),
                 operations=runs * per_run)


def cmd_collide(argv: list[str]) -> dict:
    """Run one protocol and report the stored energy, ergotropy and power (see the module docstring)."""
    return _collide(argv)


def _attach_negative_angles(argv: list[str]) -> list[str]:
    """``--theta -0.01pi`` -> ``--theta=-0.01pi``: argparse would read ``-0.01pi`` as an option."""
    out, i = [], 0
    while i < len(argv):
        if argv[i] in ("--theta", "--phase") and i + 1 < len(argv) and argv[i + 1].startswith("-"):
            out.append(f"{argv[i]}={argv[i + 1]}")
            i += 2
        else:
            out.append(argv[i])
            i += 1
    return out


def _collide(argv: list[str]) -> dict:

    args = _parser().parse_args(_attach_negative_angles(argv))
    _validate(args)
    _check_budget(args)

    import numpy as np

    from ..collisional._bounds import coherent_limit, damped_oscillator_bound, full_swap_angles, incoherent_bound
    from ..collisional._model import CollisionalModel, LadderBattery, QubitUnits
    from ..collisional._propagate import collide
    from ..collisional._protocols import constant_schedule, full_swap_schedule, greedy_schedule, optimize_schedule
    from ..models._common import ParameterError

    try:
        battery = LadderBattery(args.battery, args.levels)
        model = CollisionalModel(battery, QubitUnits(args.q, args.coherence, args.phase), args.loss)
        extra = {}
        if args.protocol == "full-swap":
            angles = full_swap_angles(battery)
            if args.time < angles[0]:
                raise UsageError(f"--time must be >= {angles[0]:.6g} for one full swap, got {args.time}")
            thetas = full_swap_schedule(battery, time=args.time)
        elif args.protocol == "constant":
            thetas = constant_schedule(args.theta, args.time)
        elif args.protocol == "greedy":
            thetas = greedy_schedule(model, args.time)
        else:
            incoherent = bool(model.units.is_incoherent())
            k = args.collisions
            if k is None and not incoherent:
                k = max(1, int(math.floor(args.time / args.theta * (1 + 1e-12))))
            res = optimize_schedule(model, args.time, k, steps=args.steps, learning_rate=args.learning_rate,
                                    verbose=True)  # progress on stderr
            thetas = np.asarray(res.thetas)
            args.collisions = int(thetas.shape[0])
            extra["optimization"] = {
                "initial_schedule": "greedy" if incoherent else "constant",
                "initial_energy": float(res.initial_energy),
                "steps": res.steps,
                "converged": res.converged,
                "seconds": res.seconds,
            }
        traj = collide(model, thetas)
    except ParameterError as e:
        raise UsageError(str(e)) from None

    thetas = np.asarray(thetas)
    used = float(np.sum(thetas))
    energy = float(traj.energy[-1])
    out = {
        "battery": args.battery,
        "protocol": args.protocol,
        "params": {
            "battery": args.battery,
            "levels": args.levels,
            "protocol": args.protocol,
            "theta": args.theta if args.protocol in ("constant", "optimized") else None,
            "q": args.q,
            "coherence": args.coherence,
            "phase": args.phase,
            "time": args.time,
            "loss": args.loss,
            "collisions": args.collisions if args.protocol == "optimized" else None,
            "steps": args.steps if args.protocol == "optimized" else None,
            "learning_rate": args.learning_rate if args.protocol == "optimized" else None,
        },
        "units": "energies in E (zero in the ground state), times as Omega tau",
        "energy": energy,
        "ergotropy": float(traj.ergotropy()),
        "average_power": energy / used,
        "collisions": int(thetas.shape[0]),
        "time_used": used,
        "incoherent_bound_energy": float(incoherent_bound(battery, used)),
        "top_population": float(traj.top_population),
    }
    if args.loss > 0:
        out["incoherent_bound_energy_with_loss"] = float(damped_oscillator_bound(used, args.loss))
    drive = args.coherence * math.sqrt(args.q * (1 - args.q))
    if args.battery in ("oscillator", "spin") and drive > 0:
        out["coherent_limit_energy"] = float(coherent_limit(args.battery, used, drive, battery.j))
    fs = np.cumsum(full_swap_angles(battery))
    out["full_swap_energy"] = int(np.searchsorted(fs, used * (1 + 1e-14), side="right"))
    if args.protocol in ("greedy", "optimized", "full-swap"):
        out["schedule"] = [float(x) for x in thetas]
    out["params"] = {k: v for k, v in out["params"].items() if v is not None}  # only what this protocol used
    out.update(extra)
    return out
