"""Failure flags returned by compiled programs and checked on the host.

Compiled qbjax programs (``charge``, the propagators, ``sweep``'s chunks,
``optimize``'s steps) contain no host callbacks: a failed check inside them
(a non-finite energy, a solver out of steps, a closure that left its
physical range) sets a bit of an ``int32`` status array that travels with the
result.  The host reads it after the call and raises :class:`SolverError`
with the message of the first bit set; a ``vmap`` returns one status per
point, so a sweep can name the points that failed.

Why no callbacks: a host callback makes the compiled program synchronous
with Python, keeps it out of JAX's persistent compilation cache, and runs
Python inside XLA's thread pool, where a blocked callback stalls every
program behind it.

Inside your own ``jit``/``vmap``, read ``traj.status`` (``0``: no failure)
or call :func:`check` on it outside the transformation.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

__all__ = [
    "SolverError",
    "OK",
    "NONFINITE",
    "MAX_STEPS",
    "ONE_WAY_CHAIN",
    "TRACE_LOST",
    "CLOSURE_BROKE",
    "NOT_REACHED",
    "BAD_GRID",
    "MESSAGES",
    "flag",
    "merge",
    "check",
    "is_concrete",
    "describe",
]


class SolverError(RuntimeError):
    """A compiled computation reported a failure (see :data:`MESSAGES`)."""

    def __init__(self, message: str, status: int):
        super().__init__(message)
        self.status = status


OK = 0
#: A non-finite value in the result: the dynamics diverged.
NONFINITE = 1
#: An adaptive solver used up ``max_steps`` before the next output time.
MAX_STEPS = 2
#: A birth-death chain with one-way rates has no detailed-balanced state.
ONE_WAY_CHAIN = 4
#: The exact collective dynamics lost the trace (or diverged).
TRACE_LOST = 8
#: Cumulant moments left ``[-1, 1]``: the closure broke down.
CLOSURE_BROKE = 16
#: The charging criterion is not met on the grid (Eq. 17 of seed 001).
NOT_REACHED = 32
#: The time grid decreases somewhere (outputs must be at non-decreasing times).
BAD_GRID = 64
#: A Chebyshev vector grew: the spectral enclosure missed part of the spectrum the state sees.
ENCLOSURE = 128
#: The damping channel's binomial series is cut too short for the loss it runs at.
DAMPING_CUT = 256
#: A stationary state outside the physical range (trace, positivity): not unique, or a singular solve.
UNPHYSICAL = 512

MESSAGES = {
    NONFINITE: "non-finite result: the dynamics diverged",
    MAX_STEPS: "the adaptive solver reached max_steps before the next output time (raise ODEOptions.max_steps)",
    ONE_WAY_CHAIN: "rate_steady_state: a chain with one-way rates has no detailed-balanced state",
    TRACE_LOST: "exact collective dynamics diverged or lost the trace",
    CLOSURE_BROKE: "cumulant moments left [-1, 1] or diverged: the closure broke down",
    NOT_REACHED: "charging_time: the deficit never falls below eps on this grid (extend t_max) "
                 "or is already below it at t = 0",
    BAD_GRID: "the time grid ts must be non-decreasing",
    DAMPING_CUT: "the damping channel (Eq. 21) keeps too few binomial terms for this loss: the model's "
                 "damping_terms were chosen for a smaller loss (a loss replaced by replace_params, a sweep or an "
                 "optimiser); build the model at the largest loss, or pass damping_terms",
    UNPHYSICAL: "steady state: the solve returned a state outside the physical range (trace 1, positivity): the "
                "stationary state is not unique or the solve was singular; resolve it on a smaller space (the "
                "exact projection of the initial state is used up to a 1024-entry Liouvillian)",
    ENCLOSURE: "a Chebyshev vector grew: the spectral enclosure of H missed part of the spectrum "
               "(report this: the Gershgorin bound is rigorous)",
}


def flag(condition, bit: int):
    """``bit`` where ``condition`` holds (any element), else ``0`` (an ``int32`` scalar)."""
    return jnp.where(jnp.any(condition), jnp.int32(bit), jnp.int32(0))


def merge(*statuses):
    """Bitwise OR of status arrays (``None`` entries are skipped)."""
    out = jnp.int32(0)
    for s in statuses:
        if s is not None:
            out = out | jnp.asarray(s, jnp.int32)
    return out


def outside_trace() -> bool:
    """No ``jit``/``vmap``/``grad`` of the caller is tracing now (host-driven loops may run)."""
    from jax._src import core  # jax 0.10 has no public test for an active outer trace

    return core.trace_state_clean()


def is_concrete(x) -> bool:
    """True when ``x`` holds values (not a tracer of ``jit``/``vmap``/``grad``)."""
    return not any(isinstance(leaf, jax.core.Tracer) for leaf in jax.tree.leaves(x))


def describe(status: int) -> list[str]:
    """The messages of every bit set in ``status``."""
    return [msg for bit, msg in MESSAGES.items() if int(status) & bit]


def check(status, context: str = "") -> None:
    """Raise :class:`SolverError` if any element of a concrete ``status`` is nonzero.

    Does nothing for a traced ``status`` (inside ``jit``: the caller checks
    the returned array).  With a batch of statuses the message counts the
    failed points and names the first.
    """
    if status is None or not is_concrete(status):
        return
    s = np.asarray(status)
    if not s.any():
        return
    bad = np.flatnonzero(s.reshape(-1))
    first = int(s.reshape(-1)[bad[0]])
    msgs = "; ".join(describe(first)) or f"status {first}"
    where = f"{context}: " if context else ""
    if s.size > 1:
        msgs = f"{len(bad)} of {s.size} points failed (first: index {int(bad[0])}): {msgs}"
    raise SolverError(where + msgs, first)


def settle(out, status, context: str = ""):
    """``out`` for callers that did not ask for the status: checked now, or at run time.

    Concrete: :func:`check` (raises on failure).  Traced (the caller's own
    ``jit``): an ``equinox`` runtime check, so a failure still raises rather
    than pass silently.  qbjax's own programs always ask for the status
    (``status=True`` on the propagators) and never reach the second branch.
    """
    if is_concrete(status):
        check(status, context)
        return out
    import equinox as eqx

    msg = (f"{context}: " if context else "") + "solver failure; pass status=True and qbjax.status.check it for details"
    return eqx.error_if(out, status != 0, msg)
