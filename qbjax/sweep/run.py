"""Running one group: chunks sized by XLA's memory analysis, sharded over devices, cached programs."""

from __future__ import annotations

import math
import os
import sys
import time

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh, NamedSharding
from jax.sharding import PartitionSpec as P

from ..status import check
from .metrics import _EXTEND, _STATUS, _Point
from .plan import _replace
from .result import _jsonable


def _default_budget(devices) -> int:
    """Bytes per device: half a GPU's memory; on CPU 2 GiB shared by all virtual devices (at most 1/8 of RAM)."""
    d = devices[0]
    stats = None
    try:
        stats = d.memory_stats()
    except Exception:  # noqa: BLE001 (not every backend reports)
        stats = None
    if stats and stats.get("bytes_limit"):
        return int(0.5 * stats["bytes_limit"])
    try:
        ram = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        ram = 16 * 2**30
    local = max(1, sum(1 for x in devices if x.process_index == jax.process_index()))
    return int(min(2 * 2**30, ram // 8) // local)


def _memory(compiled) -> int | None:
    try:
        m = compiled.memory_analysis()
    except Exception:  # noqa: BLE001
        return None
    if m is None:
        return None
    return int(m.temp_size_in_bytes + m.argument_size_in_bytes + m.output_size_in_bytes)


class _Progress:
    """tqdm on stderr (only on process 0 of a multi-host run)."""

    def __init__(self, total: int, enabled: bool, desc: str):
        self.bar = None
        if enabled and jax.process_index() == 0:
            from tqdm.auto import tqdm

            self.bar = tqdm(total=total, unit="pt", desc=desc, file=sys.stderr, dynamic_ncols=True,
                            mininterval=0.5)

    def update(self, n):
        if self.bar is not None:
            self.bar.update(n)

    def close(self):
        if self.bar is not None:
            self.bar.close()


def _run_group(gmodel, swept: dict, metric_list, mesh: Mesh, budget: int, chunk_size, max_chunk: int,
               t_max, num_times, method, options, bar: _Progress, max_doublings: int, generic: bool,
               classical: bool = False):
    n_dev = mesh.devices.size
    n_points = len(next(iter(swept.values()))) if swept else 1
    if not swept:
        swept = {}
    if generic:
        K = 0
    else:
        K = int(num_times) if num_times is not None else int(gmodel.default_num_times())
    # the group model's arrays are arguments (replicated), not constants: the
    # compiled program depends only on structure, so repeated sweeps reuse it
    # (the swept leaves are replaced per point: keep one value, so the program
    # does not depend on the number of points either)
    if swept and not generic:
        gmodel = _replace(gmodel, {k: jnp.asarray(getattr(gmodel, k))[0] for k in swept}, False)
    dyn, stat = eqx.partition(gmodel, eqx.is_array)
    plan = None if generic else _closed_plan(gmodel, stat, swept, n_points, metric_list, K, t_max, method, classical)

    def point(dyn, values, factor):
        m = _replace(eqx.combine(dyn, stat), values, generic)
        if generic:
            out = {name: jnp.asarray(fn(m), jnp.float64) for name, fn, _ in metric_list}
            out[_STATUS] = jnp.zeros((), jnp.int32)
            return out
        # factor: the window is factor * default_t_max, or factor itself when t_max is given
        # (a traced value: a new t_max does not recompile)
        T = factor if t_max is not None else m.default_t_max() * factor
        ts = jnp.linspace(0.0, jax.lax.stop_gradient(T), K)
        p = _Point(m, ts, method, options, classical, plan)
        out = {}
        for name, fn, user in metric_list:
            out[name] = jnp.asarray(fn(m, p.trajectory) if user else fn(p), jnp.float64)
        if "trajectory" in p.__dict__ and p.trajectory.top_population.shape[0]:
            out["top_population"] = jnp.max(p.trajectory.top_population)
        out[_STATUS] = p.status()
        return out

    spec = P("batch")
    sharding, replicated = NamedSharding(mesh, spec), NamedSharding(mesh, P())

    cpu = mesh.devices.flat[0].platform == "cpu"

    def local(dyn, values, factor):
        if cpu:
            # a loop over small vmapped batches: each batch's temporaries stay in cache and
            # a chunk's memory no longer grows with its size (one compile per group)
            return jax.lax.map(lambda vf: point(dyn, *vf), (values, factor), batch_size=_CPU_BATCH)
        return jax.vmap(point, in_axes=(None, 0, 0))(dyn, values, factor)

    example = {k: np.asarray(v[:1], np.float64) for k, v in swept.items()}
    dyn_abstract = jax.tree.map(lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=replicated), dyn)

    def abstract(per_device):
        b = per_device * n_dev
        vals = {k: jax.ShapeDtypeStruct((b,) + v.shape[1:], jnp.float64, sharding=sharding) for k, v in example.items()}
        return dyn_abstract, vals, jax.ShapeDtypeStruct((b,), jnp.float64, sharding=sharding)

    key = (jax.tree.structure(gmodel), tuple((x.shape, str(x.dtype)) for x in jax.tree.leaves(dyn)),
           tuple(repr(x) for x in jax.tree.leaves(stat)), tuple((k, v.shape[1:]) for k, v in example.items()),
           tuple((n, fn, u) for n, fn, u in metric_list), t_max is None, K, method,
           options, tuple(d.id for d in mesh.devices.flat), generic, classical, plan)

    def compile_for(per_device):
        ckey = key + (per_device,)
        if ckey not in _COMPILED:
            sharded = jax.jit(jax.shard_map(local, mesh=mesh, in_specs=(P(), spec, spec), out_specs=spec,
                                            check_vma=False))
            if len(_COMPILED) >= _CACHE_SIZE:
                _COMPILED.pop(next(iter(_COMPILED)))
            _COMPILED[ckey] = sharded.lower(*abstract(per_device)).compile()
        return _COMPILED[ckey]

    compile_s = 0.0
    # Compile for the whole group in one chunk (capped); if XLA's memory
    # analysis says it exceeds the budget, shrink in proportion and recompile.
    per_device = math.ceil(n_points / n_dev)
    cap = max(1, min(max_chunk, per_device))
    if cpu:  # about _CHUNKS chunks for the progress bar, equal in size (the last one is padded)
        cap = math.ceil(per_device / math.ceil(per_device / max(cap // _CHUNKS, 4 * _CPU_BATCH, 1)))
    chunk = cap if chunk_size is None else max(1, int(chunk_size))
    compiled = None
    while compiled is None:
        t0 = time.perf_counter()
        compiled = compile_for(chunk)
        compile_s += time.perf_counter() - t0
        used = _memory(compiled)
        if chunk_size is None and used is not None and used > budget and chunk > 1:
            fit = max(1, min(chunk - 1, int(chunk * budget / used)))
            # equal chunks: the last one is padded to the chunk's size, so 186 points in
            # chunks of 163 would compute 326
            per_device = math.ceil(n_points / n_dev)
            chunk = math.ceil(per_device / math.ceil(per_device / fit))
            compiled = None
    used = _memory(compiled)
    B = chunk * n_dev

    dyn_global = jax.tree.map(lambda x: _global(np.asarray(x), replicated), dyn)

    def fetch(pending, values):
        out, start, count = pending
        got = _fetch(out, count)
        status = got.pop(_STATUS)
        if status.any():
            i = int(np.flatnonzero(status)[0])
            at = {k: _jsonable(v[start + i]) for k, v in values.items()}
            check(status, f"sweep point {at}")
        return got

    def run(values: dict, factors: np.ndarray, update: bool):
        n = len(factors)
        results, pending = [], None
        for start in range(0, n, B):
            stop = min(start + B, n)
            sl = np.arange(start, stop)
            sl = np.concatenate([sl, np.full(B - len(sl), stop - 1)])  # pad with the last point
            vals = {k: _global(np.asarray(v[sl], np.float64), sharding) for k, v in values.items()}
            out = compiled(dyn_global, vals, _global(np.asarray(factors[sl], np.float64), sharding))
            if pending is not None:  # fetch the previous chunk while this one runs
                results.append(fetch(pending, values))
                if update:
                    bar.update(pending[2])
            pending = (out, start, stop - start)
        if pending is not None:
            results.append(fetch(pending, values))
            if update:
                bar.update(pending[2])
        return {k: np.concatenate([r[k] for r in results]) for k in results[0]}

    factors = np.ones(n_points) * (1.0 if t_max is None else float(t_max))
    t_run = time.perf_counter()
    out = run(swept, factors, True)
    # points whose window was too short (charging_time = NaN): double their window
    extend = [name for name, _, user in metric_list if name in _EXTEND and not user]
    retried = 0
    for _ in range(max_doublings):
        bad = np.zeros(n_points, bool)
        for name in extend:
            bad |= np.isnan(out[name])
        if not bad.any():
            break
        idx = np.nonzero(bad)[0]
        factors[idx] *= 2.0
        retried += len(idx)
        again = run({k: v[idx] for k, v in swept.items()}, factors[idx], False)
        for k in out:
            out[k][idx] = again[k]
    info = {"points": n_points, "closed_method": None if plan is None else "chebyshev", "chunk_size": chunk, "chunk_points": B, "chunks": math.ceil(n_points / B),
            "num_times": K, "bytes_per_device": used, "compile_s": compile_s,
            "run_s": time.perf_counter() - t_run, "retried_points": retried}
    return out, info


def _closed_plan(gmodel, stat, swept: dict, n_points: int, metric_list, K: int, t_max, method, classical):
    """A :class:`~qbjax.expansions.TracedChebyshev` for this group's closed dynamics, or ``None`` (``eigh``).

    ``method="chebyshev"`` always plans one; ``"auto"`` when its estimated
    cost per point is below the dense diagonalisation's (:func:`_spectral_seconds`);
    every other method, open and classical dynamics, and groups whose window
    may be doubled (``charging_time``) keep their paths.
    """
    from ..expansions import enclosure, traced_plan
    from ..methods import resolve_method
    from .metrics import _EXTEND

    if classical or method not in ("auto", "chebyshev") or gmodel.native_method() is not None:
        return None
    if any(name in _EXTEND and not user for name, _, user in metric_list):
        return None
    spec = gmodel.spec()
    if spec.dissipators or spec.initial_populations is not None:
        return None
    if method == "auto" and resolve_method(spec, "auto", False, None) != "spectral":
        return None
    values = {k: np.asarray(v, np.float64) for k, v in swept.items()}
    dyn = eqx.filter(gmodel, eqx.is_array)

    def argument(dyn, vals):
        m = _replace(eqx.combine(dyn, stat), vals, False)
        T = jnp.asarray(t_max if t_max is not None else m.default_t_max(), jnp.float64)
        return enclosure(m.spec())[1] * T

    if values:
        args = jax.jit(jax.vmap(argument, in_axes=(None, 0)))(dyn, values)
    else:
        args = jax.jit(argument)(dyn, {})
    rT = float(np.max(np.asarray(args)))
    if not math.isfinite(rT) or rT <= 0:
        return None
    cpu = jax.devices()[0].platform == "cpu"
    plan = traced_plan(spec, K, rT, rT, batch=_CPU_BATCH if cpu else 64)
    if method == "chebyshev":
        return plan
    import qbjax.representation as rep

    spectral = n_points * _spectral_seconds(rep.basis(spec).dim, K)
    chebyshev = n_points * _chebyshev_seconds(plan) + _CHEBYSHEV_COMPILE_S
    return plan if chebyshev < spectral else None


def _spectral_seconds(d: int, T: int) -> float:
    """Estimated seconds per point of the dense path on the 2-core CPU: ``eigh`` then the ``O(T d^2)`` moments.

    Fitted to the README sweep's groups (``d`` = 255, 367, 549 at ``T`` = 401:
    24, 37, 69 ms per point, shared figures of merit included), and never
    below ``eigh`` alone (``1.2e-10 d^3``: 20 ms at ``d`` = 546).
    """
    fit = 2.4e-11 * d**3 + 1.75e-7 * d * d * (T / 401) + 1.2e-2 * (T / 401)
    return max(fit, 1.2e-10 * d**3)


def _chebyshev_seconds(plan) -> float:
    """Estimated seconds per point of a traced Chebyshev run: its plan's cost (batched loop steps
    included) at 0.11 ns per unit, fitted to the same groups (8.2, 7.5, 8.2 ms measured; 8.7, 7.4, 7.3 ms
    estimated)."""
    return 1.1e-10 * plan.cost


#: Extra compile seconds of a Chebyshev group over a dense one (JAX's persistent cache warm: ~1 s; cold: ~5 s)
_CHEBYSHEV_COMPILE_S = 2.0


#: On CPU, points per vmapped batch inside a chunk, and the number of chunks a group aims for.
_CPU_BATCH, _CHUNKS = 8, 8


#: Compiled chunk programs, by structure (least recently built dropped first).
_COMPILED: dict = {}


_CACHE_SIZE = 32


def _global(x: np.ndarray, sharding: NamedSharding):
    """A global array from the host copy that every process holds (multi-host safe)."""
    return jax.make_array_from_callback(x.shape, sharding, lambda index: x[index])


def _fetch(out: dict, n: int) -> dict:
    if jax.process_count() > 1:
        from jax.experimental import multihost_utils

        out = multihost_utils.process_allgather(out, tiled=True)
    return {k: np.asarray(v)[:n] for k, v in out.items()}
