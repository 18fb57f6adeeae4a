"""The ``qbjax`` command (contract: shared CLI.md).

Every command takes ``--json`` and then prints exactly one JSON object on
stdout, with every parameter used (defaults included) under ``"params"``.
Bad input exits with status 2 and one line on stderr that names the
parameter and what is allowed; no traceback.
"""

from __future__ import annotations

import importlib
import json
import math
import sys
import warnings

from .common import EXTRA_MODELS, MODEL_FLAGS, UsageError

__all__ = ["main", "UsageError", "COMMANDS"]


def _command(module: str, name: str):
    """A command implemented in ``qbjax.cli.<module>`` (imported only when used)."""

    def run(argv):
        return getattr(importlib.import_module(f"qbjax.cli.{module}"), name)(argv)

    return run


#: Command name -> implementation, one module each.
COMMANDS = {
    "charge": _command("charge", "cmd_charge"),
    "advantage": _command("advantage", "cmd_advantage"),
    "collide": _command("collide", "cmd_collide"),
    "sweep": _command("sweep", "cmd_sweep"),
    "demo": _command("demo", "cmd_demo"),
    "reproduce": _command("reproduce", "cmd_reproduce"),
}


def _print_human(out: dict):
    for key, value in out.items():
        if isinstance(value, dict):
            print(f"{key}:")
            for k, v in value.items():
                print(f"  {k}: {v}")
        else:
            print(f"{key}: {value}")


#: Flags that may be given more than once (they collect values).
REPEATABLE = {"--grad", "--metric", "--zip"}


def _normalise(rest: list[str]) -> list[str]:
    """``--flag -8e-1`` as ``--flag=-8e-1`` (a negative number in any notation is a value, not a flag)."""
    out = []
    for a in rest:
        if out and a.startswith("-") and out[-1].startswith("--") and "=" not in out[-1] and _is_number(a):
            out[-1] = f"{out[-1]}={a}"
        else:
            out.append(a)
    return out


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _repeated(rest: list[str]) -> str | None:
    seen = set()
    for a in rest:
        if a.startswith("--"):
            flag = a.split("=", 1)[0]
            if flag in seen and flag not in REPEATABLE:
                return flag
            seen.add(flag)
    return None


def main(argv=None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] == "--version":
        from .. import __version__

        print(f"qbjax {__version__}")
        return 0
    if not argv or argv[0] in ("-h", "--help"):
        print(f"usage: qbjax {{{','.join(COMMANDS)}}} ... [--json]   (qbjax COMMAND --help; qbjax --version)\n"
              "  charge MODEL [--n N --g G --omega0 W ...] [--classical] [--t-max T] [--num-times K] [--grad PARAM]\n"
              "  advantage MODEL [--n N ...]\n"
              "  collide --battery oscillator|spin|ladder --levels L --protocol full-swap|greedy|constant|optimized"
              " [--theta T] [--q Q --coherence C --phase A] --time T [--loss G]\n"
              "  sweep MODEL --PARAM start:stop:num ... [--metric max_power] [--zip A,B] [--out FILE.csv]\n"
              "  demo\n  reproduce [FIGURE]\n"
              "  charge heat-engine [--n N --beta-omega B --rate R --protocol collective|individual --eps E]\n"
              "  charge spin-chain [--n N --b B --g G --field W --alpha A --couplings nn|power --power P]\n"
              "  charge reservoirs [--n-charger N --n-battery M --batteries K --pump P ...]\n"
              f"models: {', '.join([*MODEL_FLAGS, *EXTRA_MODELS])} (qbjax charge MODEL --help lists a model's flags)")
        return 0 if argv else 2
    command, rest = argv[0], _normalise(argv[1:])
    if command not in COMMANDS:
        print(f"qbjax: unknown command {command!r}; allowed: {', '.join(COMMANDS)} (and --help, --version)",
              file=sys.stderr)
        return 2
    flag = _repeated(rest)
    if flag is not None:
        print(f"qbjax {command}: error: {flag} given more than once (give each flag once)", file=sys.stderr)
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
    if isinstance(out, dict):
        from .. import __version__

        # one JSON shape: every object says which qbjax and which command made it (keys extended, never renamed)
        out = {"qbjax_version": __version__, "command": command, **out}
        out.setdefault("params", {})
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
