"""Shared command-line parsing and checks: one-line errors (exit 2) that name the parameter."""

from __future__ import annotations

import argparse
import math

__all__ = ["UsageError", "Parser", "MODEL_FLAGS", "number", "positive", "count", "model_params", "build",
           "base_parser", "model_arg", "max_power_record", "all_params", "interval", "nonnegative",
           "check_budget", "check_output", "charge_cost", "closed_model_arg", "model_help", "EXTRA_MODELS"]


# Model parameters accepted on the command line, with their types.
MODEL_FLAGS = {
    "oscillator": {"n": int, "g": float, "omega0": float},
    "spins": {"n": int, "g": float, "omega0": float, "tilt": float},
    "dicke": {"n": int, "g": float, "omega0": float, "cutoff": int},
}


#: Models of ``qbjax charge`` with their own flags (their own parsers).
EXTRA_MODELS = ("heat-engine", "spin-chain", "reservoirs")
#: What each model flag accepts (for ``--help``).
FLAG_RANGES = {"n": "integer >= 1", "g": "> 0", "omega0": "> 0", "tilt": "in [0, pi]",
               "cutoff": "integer > n"}


def model_help(model: str) -> str:
    """The flags of a model of ``qbjax charge`` with their defaults and ranges."""
    import inspect

    from ..models import MODELS

    sig = inspect.signature(MODELS[model].__init__).parameters
    lines = [f"model {model!r} flags:"]
    for name in MODEL_FLAGS[model]:
        default = sig[name].default if name in sig else None
        shown = "chosen from n, g, omega0" if default is None else f"{default:.6g}" if isinstance(default, float) else default
        lines.append(f"  --{name.replace('_', '-'):<8} {FLAG_RANGES.get(name, 'a number'):<20} (default {shown})")
    return "\n".join(lines)


class UsageError(Exception):
    """Bad command-line input (exit status 2)."""


class Parser(argparse.ArgumentParser):
    def error(self, message):  # argparse would print usage and exit; we want one line
        raise UsageError(message)


def number(kind, name):
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


def model_params(model: str, extra: list[str]) -> dict:
    allowed = MODEL_FLAGS[model]
    params, i = {}, 0
    while i < len(extra):
        flag = extra[i]
        if not flag.startswith("--"):
            raise UsageError(f"unexpected argument {flag!r}")
        name, eq, value = flag[2:].partition("=")
        name = name.replace("-", "_")
        if not eq:
            if i + 1 >= len(extra):
                raise UsageError(f"{flag} needs a value")
            value = extra[i + 1]
            i += 1
        if name not in allowed:
            raise UsageError(f"unknown flag --{name} for model {model!r}; allowed: "
                             + ", ".join("--" + k for k in allowed))
        if name in params:
            raise UsageError(f"--{name} given more than once (give each flag once)")
        params[name] = number(allowed[name], name)(value)
        i += 1
    return params


def build(model: str, params: dict):
    from ..models import MODELS
    from ..models._common import ParameterError

    try:
        return MODELS[model](**params)
    except ParameterError as e:
        msg = str(e)
        for name in params:
            flag = "--" + name.replace("_", "-")
            if msg.startswith(f"{name} = "):  # a size refused by the constructor: say it with the flag's name
                msg = f"{flag} {msg[len(name) + 3:]}".replace(f"the largest {name} here", f"the largest {flag} here")
        raise UsageError(msg) from None


def base_parser(prog: str) -> Parser:
    # every --help lists each flag's default beside its range
    p = Parser(prog=prog, add_help=True, allow_abbrev=False, formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--json", action="store_true", help="print one JSON object")
    return p


def model_arg(text: str) -> str:
    """A model of ``qbjax charge`` / ``advantage`` with flags of its own here (the others dispatch earlier)."""
    if text not in MODEL_FLAGS:
        raise UsageError(f"unknown model {text!r}; allowed: {', '.join([*MODEL_FLAGS, *EXTRA_MODELS])}")
    return text


def closed_model_arg(text: str) -> str:
    """A model of ``qbjax advantage`` (the quantum-classical comparison exists for these only)."""
    if text not in MODEL_FLAGS:
        raise UsageError(f"unknown model {text!r}; allowed: {', '.join(MODEL_FLAGS)}")
    return text


def positive(name):
    def parse(text):
        v = number(float, name)(text)
        if v <= 0:
            raise UsageError(f"--{name} must be > 0, got {text!r}")
        return v

    return parse


def count(name, minimum):
    def parse(text):
        v = number(int, name)(text)
        if v < minimum:
            raise UsageError(f"--{name} must be an integer >= {minimum}, got {text!r}")
        if v > 2**53:  # qbjax.models._common.MAX_SIZE (not imported: the CLI parses before jax loads)
            raise UsageError(f"--{name} must be an integer in [{minimum}, 2^53 = {2**53}], got {text!r}")
        return v

    return parse



def nonnegative(name):
    """A number ``>= 0``."""
    return interval(name, 0.0, math.inf, closed=(True, False))


def interval(name, lo: float, hi: float, *, closed=(True, True), what: str = ""):
    """A number in ``[lo, hi]`` (``closed`` says which ends belong), e.g. ``interval("q", 0, 1)``."""

    def parse(text):
        v = number(float, name)(text)
        above = v >= lo if closed[0] else v > lo
        below = v <= hi if closed[1] else v < hi
        if not (above and below):
            ends = ("[" if closed[0] else "(") + f"{lo:g}, {hi:g}" + ("]" if closed[1] else ")")
            shown = f">= {lo:g}" if hi == math.inf and closed[0] else (f"> {lo:g}" if hi == math.inf else f"in {ends}")
            raise UsageError(f"--{name} must be {shown}{what}, got {text!r}")
        return v

    return parse


def max_power_record(mp) -> dict:
    return {
        "max_power": float(mp.power),
        "optimal_time": float(mp.time),
        "energy_at_max_power": float(mp.energy),
        "certified": bool(mp.certified),
        "grid_resolved": bool(mp.resolved),
    }


def all_params(model, args) -> dict:
    out = dict(model.params())
    t_max = float(model.default_t_max()) if args.t_max is None else args.t_max
    num_times = model.default_num_times() if args.num_times is None else args.num_times
    out.update({"t_max": t_max, "num_times": num_times, "method": args.method})
    return out


# ---------------------------------------------------------------------------------------------
# Checks before any work: output paths, memory and work estimates.

#: Operations per second credited to each core in a work estimate (a conservative sustained rate).
OPS_PER_CORE = 2e9
#: Longest estimated run a command starts: longer ones are refused (exit 2) naming the parameter.
MAX_SECONDS = 3600.0
#: Fraction of the physical memory a command may plan to use.
MEMORY_FRACTION = 0.8


def machine_memory() -> int:
    """Physical memory in bytes (16 GiB when the platform does not say)."""
    import os

    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):  # pragma: no cover - non-POSIX
        return 16 * 2**30


def _bytes(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB", "TB", "PB"):
        if n < 1000 or unit == "PB":
            return f"{n:.3g} {unit}"
        n /= 1000
    return f"{n:.3g} PB"


def _duration(seconds: float) -> str:
    for unit, size in (("years", 3.15e7), ("days", 86400), ("hours", 3600), ("minutes", 60)):
        if seconds >= size:
            value = seconds / size
            return f"{value:.3g} {unit if value != 1 else unit[:-1]}"
    return f"{seconds:.3g} s"


def check_budget(parameter: str, value, *, memory: float = 0.0, operations: float = 0.0) -> None:
    """Refuse (:class:`UsageError`, exit 2) a run whose estimate exceeds the machine, naming ``--parameter``.

    ``memory`` in bytes against :data:`MEMORY_FRACTION` of the physical
    memory; ``operations`` against :data:`MAX_SECONDS` at :data:`OPS_PER_CORE`
    per core.  The estimates are rough upper bounds, meant to stop runs that
    could never finish here (terabytes, days), not to tune ordinary ones.
    """
    import os

    have = machine_memory()
    if memory > MEMORY_FRACTION * have:
        raise UsageError(f"--{parameter} {value}: the run needs about {_bytes(memory)} of memory and this machine "
                         f"has {_bytes(have)}; reduce --{parameter}")
    seconds = operations / (OPS_PER_CORE * (os.cpu_count() or 1))
    if seconds > MAX_SECONDS:
        raise UsageError(f"--{parameter} {value}: about {operations:.1e} operations, {_duration(seconds)} on this "
                         f"machine (the limit is {_duration(MAX_SECONDS)}); reduce --{parameter}")


def check_output(path: str, parameter: str = "out", *, folder: bool = False) -> None:
    """Refuse an output path that cannot be written, before any work.

    A file's folder must exist and take a new file; a folder is created now
    (with its parents) and must take a new file.
    """
    import os
    import tempfile

    target = os.path.abspath(path)
    if folder:
        if os.path.exists(target) and not os.path.isdir(target):
            raise UsageError(f"--{parameter} {path}: exists and is not a folder")
        try:
            os.makedirs(target, exist_ok=True)
        except OSError as e:
            raise UsageError(f"--{parameter} {path}: cannot create the folder ({e.strerror})") from None
        where = target
    else:
        if os.path.isdir(target):
            raise UsageError(f"--{parameter} {path}: is a folder; give a file name")
        where = os.path.dirname(target)
        if not os.path.isdir(where):
            raise UsageError(f"--{parameter} {path}: the folder {where} does not exist")
    try:
        with tempfile.NamedTemporaryFile(dir=where, prefix=".qbjax-write-check-"):
            pass
    except OSError as e:
        raise UsageError(f"--{parameter} {path}: cannot write in {where} ({e.strerror})") from None


def charge_cost(model, num_times: int) -> tuple[float, float]:
    """``(bytes, operations)``: a rough upper estimate of one ``charge`` of ``model`` on ``num_times`` times."""
    from .. import representation as rep
    from ..methods import SPECTRAL_MAX_DIM
    from ..representation.rates import not_diagonal_reason

    spec = model.spec()
    T = max(int(num_times), 2)
    full = float(math.prod(spec.dims))
    # the symmetry-reduced block when it is cheap to count, else the full tensor (an upper bound)
    D = float(rep.basis(spec).dim) if full <= 5e7 else full
    if spec.dissipators:
        if not_diagonal_reason(spec) is None:  # rates: populations of the full tensor
            return 40 * 8 * full, 2e3 * 20 * full
        return 20 * 16 * D * D, 1e3 * 10 * D**3  # dense Lindblad: ~1e3 steps of a few D^3 products
    if D <= SPECTRAL_MAX_DIM:
        return 8 * 16 * D * D + 16 * 4 * T * D, 10 * D**3 + 16 * T * D * D
    terms = len(spec.charger + spec.battery + spec.coupling)
    return 64 * 16 * D, 400 * T * D * max(terms, 1)


class Working:
    """Progress for one long compiled call: an elapsed-time line on stderr every ``every`` seconds.

    A compiled program cannot report its own progress without a host
    callback (which qbjax keeps out of compiled code), so a host thread
    reports the time elapsed against the up-front estimate instead.  Silent
    for runs shorter than ``every`` seconds, and when stderr is not a terminal
    unless ``QBJAX_PROGRESS=1``.

    ::

        with Working("qbjax charge", estimate_s):
            traj = charge(...)
    """

    def __init__(self, label: str, estimate_s: float | None = None, every: float = 5.0):
        import os
        import sys

        self.label, self.estimate, self.every = label, estimate_s, every
        self.enabled = sys.stderr.isatty() or os.environ.get("QBJAX_PROGRESS") == "1"
        self._thread = None

    def __enter__(self):
        import threading
        import time

        if not self.enabled:
            return self
        self._stop = threading.Event()
        start = time.perf_counter()

        def beat():
            import sys

            while not self._stop.wait(self.every):
                tail = f" (estimated at most {_duration(self.estimate)})" if self.estimate else ""
                print(f"{self.label}: working, {_duration(time.perf_counter() - start)} elapsed{tail}",
                      file=sys.stderr, flush=True)

        self._thread = threading.Thread(target=beat, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc):
        if self._thread is not None:
            self._stop.set()
            self._thread.join()
        return False


def estimated_seconds(operations: float) -> float:
    """The work estimate of :func:`check_budget` in seconds on this machine."""
    import os

    return operations / (OPS_PER_CORE * (os.cpu_count() or 1))
