"""Parameter validation shared by the models."""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np


class ParameterError(ValueError):
    """Bad input: names the parameter and the allowed range."""


#: The largest size any count may take: ``2^53``, the last integer float64 holds exactly (the mean-field
#: equations take ensembles of any size as numbers; every state-based method has a far smaller limit).
MAX_SIZE = 2**53


def check_size(name: str, value, minimum: int = 1) -> int:
    """An integer size in ``[minimum, MAX_SIZE]`` (static)."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer, float, np.floating)):
        raise ParameterError(f"{name} must be an integer >= {minimum}, got {value!r}")
    if not math.isfinite(float(value)) or not float(value).is_integer() or value < minimum:
        raise ParameterError(f"{name} must be an integer >= {minimum}, got {value!r}")
    if value > MAX_SIZE:
        raise ParameterError(f"{name} must be an integer in [{minimum}, 2^53 = {MAX_SIZE}], got {value!r}")
    return int(value)


#: The largest state a model may ask for: entries of one state vector (2^27: 2 GiB in complex128), checked
#: by the constructors before any work, so that a size is refused with its name and its largest value
#: instead of numpy's "Unable to allocate".
MAX_STATE_ENTRIES = 2**27


def check_state_size(model: str, name: str, value: int, entries_of) -> None:
    """Refuse ``value`` of the size parameter ``name`` when ``entries_of(value)`` exceeds :data:`MAX_STATE_ENTRIES`
    (``entries_of`` is non-decreasing), naming the largest allowed value."""
    entries = entries_of(value)
    if entries <= MAX_STATE_ENTRIES:
        return
    lo, hi = 1, value
    while lo < hi:
        mid = (lo + hi + 1) // 2
        lo, hi = (mid, hi) if entries_of(mid) <= MAX_STATE_ENTRIES else (lo, mid - 1)
    raise ParameterError(f"{name} = {value} makes the {model} state {float(entries):.3g} entries, over the limit of "
                         f"{MAX_STATE_ENTRIES:.3g} (2 GiB per complex state); the largest {name} here is {lo}")


def check_real(name: str, value, *, minimum=None, strict=False, maximum=None):
    """A real scalar leaf (checked when concrete; tracers pass through)."""
    arr = jnp.asarray(value, dtype=jnp.float64) if not isinstance(value, jax.core.Tracer) else value
    if isinstance(arr, jax.core.Tracer):
        return arr
    if arr.ndim != 0:
        # batched leaves (vmap over parameter grids) are checked elementwise
        values = np.asarray(arr).ravel()
    else:
        values = [float(arr)]
    for v in values:
        if not math.isfinite(v):
            raise ParameterError(f"{name} must be finite, got {v!r}")
        low = minimum is not None and (v < minimum or (strict and v == minimum))
        if (low or (maximum is not None and v > maximum)) and minimum is not None and maximum is not None:
            raise ParameterError(f"{name} must be in {'(' if strict else '['}{minimum}, {maximum}], got {v!r}")
        if low:
            op = ">" if strict else ">="
            raise ParameterError(f"{name} must be {op} {minimum}, got {v!r}")
        if maximum is not None and v > maximum:
            raise ParameterError(f"{name} must be <= {maximum}, got {v!r}")
    return arr


def binomial_levels(n: int, cap: int | None = None):
    """Levels ``k`` and degeneracies ``C(n, k)``, ``k = 0..n`` (``n`` two-level units).

    ``cap`` clips the degeneracies (default ``n + 1``, the dimension of the
    symmetric sector): a passive state of a state with ``d`` nonzero
    eigenvalues never uses more than ``d`` copies of a level, and ``C(n, k)``
    itself overflows a float beyond ``n ~ 1000``.
    """
    cap = n + 1 if cap is None else cap
    k = np.arange(n + 1)
    deg = np.array([min(math.comb(n, int(i)), cap) if min(i, n - i) < 64 else cap for i in k], dtype=float)
    return k.astype(float), deg
