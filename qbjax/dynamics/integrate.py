"""qbjax's adaptive time-stepping loop: diffrax's solvers and controllers, qbjax's saving.

:func:`integrate` drives a diffrax Runge-Kutta solver and step-size
controller with its own ``while`` loop and writes the (dense-output)
interpolant at the requested times, as :func:`diffrax.diffeqsolve` with
``SaveAt(ts=...)`` does.  It exists for one reason: ``diffeqsolve`` checks
``SaveAt.ts`` with ``eqx.error_if``, and since the save times of a qbjax call
are always traced (they depend on the model's couplings), that check is a
host callback inside every compiled ODE program.  A host callback keeps the
program out of JAX's persistent compilation cache, makes it synchronous with
Python, and is the pattern behind the CPU deadlocks of the hang issue.  Here
the save times are checked as a returned flag instead
(:data:`qbjax.status.BAD_GRID`).

Reverse mode uses equinox's checkpointed ``while`` loop (binomial
checkpointing, as ``diffrax.RecursiveCheckpointAdjoint``), with the output
buffer kept out of the checkpoints.  Forward mode (``jax.jvp``) is not
supported, as for ``RecursiveCheckpointAdjoint``.
"""

from __future__ import annotations

from typing import NamedTuple

import diffrax
import equinox.internal as eqxi
import jax
import jax.numpy as jnp

from ..status import BAD_GRID, MAX_STEPS, NONFINITE, flag, merge


def _finite(tree):
    leaves = [jnp.all(jnp.isfinite(x)) for x in jax.tree.leaves(tree)
              if jnp.issubdtype(jnp.result_type(x), jnp.inexact)]
    return jnp.all(jnp.stack(leaves)) if leaves else jnp.bool_(True)


class _Step(NamedTuple):
    tprev: jax.Array
    tnext: jax.Array
    y: object
    solver_state: object
    controller_state: object
    made_jump: jax.Array
    index: jax.Array  # next save time
    saved: object  # output buffer (T, ...)
    failed: jax.Array


def integrate(term, solver, controller, y0, ts, *, args=None, fn=None, max_steps: int,
              checkpoints: int, dt0=None, final: bool = False, span=None):
    """Integrate from ``ts[0]`` to ``ts[-1]`` and return ``(fn(y(ts)), status)``; with ``final``,
    ``(fn(y(ts)), y(ts[-1]), status)`` (the last state itself, at no cost: the loop ends there).

    ``ts`` must be non-decreasing (``BAD_GRID`` otherwise, with non-finite
    outputs); ``status`` also reports ``MAX_STEPS`` (the budget ran out before
    ``ts[-1]``) and ``NONFINITE`` (a failed step or a non-finite output).
    Nothing is raised inside the compiled program.

    ``span=(t_a, t_b)`` (traced scalars, ``ts[0] <= t_a <= t_b``) integrates
    ``y0`` from ``t_a`` to ``min(t_b, ts[-1])`` instead: the save times in
    ``(t_a, t_b]`` are filled, the others hold ``fn(y0)`` or zeros (a piece
    of a longer run, assembled by the caller).
    """
    fn = (lambda y: y) if fn is None else fn
    ts = jnp.asarray(ts)
    ts = ts.astype(jnp.result_type(ts.dtype, float))
    T = ts.shape[0]
    t0, t1 = ts[0], ts[-1]
    grid_ok = jnp.all(ts[1:] >= ts[:-1]) if T > 1 else jnp.bool_(True)
    if span is not None:
        t0 = jnp.asarray(span[0], ts.dtype)
        t1 = jnp.minimum(jnp.asarray(span[1], ts.dtype), t1)
        grid_ok = grid_ok & (ts[0] <= t0) & (t0 <= t1)
    # A bad grid integrates over nothing (t1 := t0) and is flagged below.
    t1 = jnp.where(grid_ok, t1, t0)

    error_order = solver.error_order(term)
    tnext, controller_state = controller.init(term, t0, t1, y0, dt0, args, solver.func, error_order)
    tnext = jnp.minimum(tnext, t1)
    solver_state = solver.init(term, t0, tnext, y0, args)

    first = fn(y0)
    saved = jax.tree.map(lambda x: jnp.zeros((T,) + jnp.shape(x), jnp.result_type(x)).at[0].set(x), first)
    # The save times equal to t0 (the first, and any repeats of it) are y0.
    n0 = jnp.sum(ts <= t0)
    saved = jax.tree.map(lambda b, x: jnp.where((jnp.arange(T) < n0).reshape((T,) + (1,) * x.ndim), x, b),
                         saved, first)
    # Round a step that ends within ~100 ULP of t1 to t1 (as diffrax does).
    t1_floor = t1
    for _ in range(100):
        t1_floor = eqxi.prevbefore(t1_floor)

    def cond(s: _Step):
        return (s.tprev < t1) & ~s.failed

    def body(s: _Step):
        y, y_error, dense_info, solver_state, solver_result = solver.step(
            term, s.tprev, s.tnext, s.y, args, s.solver_state, s.made_jump)
        y_error = jax.tree.map(lambda e: jnp.where(jnp.isnan(e), jnp.inf, e), y_error)
        keep, tprev, tnext, made_jump, controller_state, controller_result = controller.adapt_step_size(
            s.tprev, s.tnext, s.y, y, args, y_error, error_order, s.controller_state)
        tprev = jnp.minimum(tprev, t1)
        clip = tnext > t1_floor
        tnext = jnp.where(clip, jnp.where(keep, t1, tprev + 0.5 * (t1 - tprev)), tnext)
        failed = ((solver_result != diffrax.RESULTS.successful) & keep) | (
            controller_result != diffrax.RESULTS.successful)
        # A non-finite derivative at the accepted state (the FSAL stage in
        # the solver state) fails at once: no smaller step can help, and
        # rejecting until max_steps would only burn the budget.
        failed = failed | ~_finite(s.solver_state)
        # A rejected step whose successor is below 1e-13 of the span (or NaN)
        # cannot finish within any step budget: the dynamics diverged.
        failed = failed | (~keep & ~(tnext - tprev > 1e-13 * jnp.abs(t1 - t0)))

        interp = solver.interpolation_cls(t0=s.tprev, t1=s.tnext, **dense_info)

        def save_cond(c):
            i, _ = c
            return keep & (i < T) & (ts[jnp.minimum(i, T - 1)] <= s.tnext)

        def save_body(c):
            i, buf = c
            out = fn(interp.evaluate(ts[i]))
            return i + 1, jax.tree.map(lambda v, b: b.at[i].set(v), out, buf)

        index, saved = eqxi.while_loop(save_cond, save_body, (s.index, s.saved), max_steps=T,
                                       buffers=lambda c: c[1], kind="checkpointed", checkpoints=T)
        y = jax.tree.map(lambda a, b: jnp.where(keep, a, b), y, s.y)
        solver_state = jax.tree.map(lambda a, b: jnp.where(keep, a, b), solver_state, s.solver_state)
        made_jump = jnp.where(keep, made_jump, s.made_jump)
        return _Step(tprev, tnext, y, solver_state, controller_state, made_jump, index, saved, failed)

    init = _Step(t0, tnext, y0, solver_state, controller_state, jnp.bool_(False),
                 jnp.maximum(n0, 1).astype(jnp.int32), saved, jnp.bool_(False))
    end = eqxi.while_loop(cond, body, init, max_steps=max_steps, buffers=lambda s: s.saved,
                          kind="checkpointed", checkpoints=checkpoints)
    out = end.saved
    finite = _finite(out)
    unfinished = (end.tprev < t1) & ~end.failed
    status = merge(flag(~grid_ok, BAD_GRID), flag(grid_ok & unfinished, MAX_STEPS),
                   flag(grid_ok & (end.failed | ~finite), NONFINITE))
    nan = jnp.where(grid_ok, 0.0, jnp.nan)
    out = jax.tree.map(lambda x: x + nan.astype(x.dtype) if jnp.issubdtype(x.dtype, jnp.inexact) else x, out)
    if final:
        return out, end.y, status
    return out, status
