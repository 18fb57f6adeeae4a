"""Options shared by the ODE-based propagators."""

from __future__ import annotations

import diffrax
import equinox as eqx
import jax
import jax.numpy as jnp

from .integrate import integrate


class ODEOptions(eqx.Module):
    """Adaptive-step settings for :func:`diffrax.diffeqsolve`.

    Arguments:
        rtol, atol: local error tolerances of the PID controller.
        solver: ``"dopri8"`` (default, 8th order: cheapest at tight
            tolerances) or ``"tsit5"``, ``"dopri5"``.
        max_steps: hard cap on steps; exceeding it is an error, never a
            silently truncated result.
        dt0: first step (``None``: chosen by diffrax).
        checkpoints: states stored for reverse-mode differentiation
            (binomial checkpointing; the steps between them are recomputed).
            ``None``: as many as fit in :data:`CHECKPOINT_MEMORY` (at least
            16, at most ``max_steps``).  Diffrax's own default stores
            ``max_steps`` states, which is ~40 GB for a 10^5-state rate
            equation at the default ``max_steps``.
    """

    rtol: float = eqx.field(static=True, default=1e-10)
    atol: float = eqx.field(static=True, default=1e-10)
    solver: str = eqx.field(static=True, default="dopri8")
    max_steps: int = eqx.field(static=True, default=200_000)
    dt0: float | None = eqx.field(static=True, default=None)
    checkpoints: int | None = eqx.field(static=True, default=None)

    def __check_init__(self):
        if self.solver not in _SOLVERS:
            raise ValueError(f"solver must be one of {sorted(_SOLVERS)}, got {self.solver!r}")
        if not (self.rtol > 0 and self.atol > 0):
            raise ValueError(f"rtol and atol must be > 0, got {self.rtol}, {self.atol}")
        if self.checkpoints is not None and not (isinstance(self.checkpoints, int) and self.checkpoints >= 1):
            raise ValueError(f"checkpoints must be an integer >= 1 or None, got {self.checkpoints!r}")

    def checkpoints_for(self, state, loops: int = 1) -> int:
        """Reverse-mode checkpoints for each of ``loops`` loops carrying ``state`` (a pytree of arrays).

        Loops inside a ``scan`` (one per output interval) keep their
        checkpoints for the whole backward pass: they share the budget.
        """
        if self.checkpoints is not None:
            return min(self.checkpoints, self.max_steps)
        size = sum(int(x.size) * x.dtype.itemsize for x in jax.tree.leaves(state)) * max(loops, 1)
        return int(min(self.max_steps, max(16, CHECKPOINT_MEMORY // max(size, 1))))

    def solve(self, vector_field, y0, ts, args=None, jump_ts=None, fn=None, final: bool = False, span=None):
        """Solve ``dy/dt = vector_field(t, y, args)`` from ``ts[0]``, saving ``fn(y)`` (or ``y``) at ``ts``.

        With ``final``, returns ``(ys, y(ts[-1]), status)``.  ``span=(t_a, t_b)``
        integrates one piece of the run (:func:`~qbjax.dynamics.integrate.integrate`).

        Returns ``(ys, status)``: ``status`` is a :mod:`qbjax.status` flag
        (``MAX_STEPS`` when the step budget ran out, ``NONFINITE`` for any
        other failure or a non-finite saved value, ``BAD_GRID`` when ``ts``
        decreases); nothing is raised, and no host callback runs, inside the
        compiled program (see :mod:`qbjax.dynamics.integrate`).

        A complex state is integrated as its real and imaginary parts
        (diffrax's error norms and step control are defined for real
        states), transparently for the caller.
        """
        pair = jnp.iscomplexobj(y0)
        if pair:
            field = vector_field

            def vector_field(t, y, a):  # noqa: F811
                d = field(t, y[0] + 1j * y[1], a)
                return jnp.stack([d.real, d.imag])

            inner = fn
            fn = (lambda y: y[0] + 1j * y[1]) if inner is None else (lambda y: inner(y[0] + 1j * y[1]))
            y0 = jnp.stack([y0.real, y0.imag])
        controller = diffrax.PIDController(rtol=self.rtol, atol=self.atol, jump_ts=jump_ts)
        out = integrate(diffrax.ODETerm(vector_field), _SOLVERS[self.solver](), controller, y0, ts,
                        args=args, fn=fn, max_steps=self.max_steps,
                        checkpoints=self.checkpoints_for(y0), dt0=self.dt0, final=final, span=span)
        if final and pair:
            ys, y1, flags = out
            return ys, y1[0] + 1j * y1[1], flags
        return out


#: Memory for the reverse-mode checkpoints of one adaptive solve (bytes).
CHECKPOINT_MEMORY = 256 * 2**20

_SOLVERS = {"dopri8": diffrax.Dopri8, "tsit5": diffrax.Tsit5, "dopri5": diffrax.Dopri5}
