"""Parameter grids of a sweep: products and zips of value lists, and the command line's ranges."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping, Sequence

import numpy as np


class SweepError(ValueError):
    """A bad sweep request (unknown parameter, metric or model; bad grid)."""


@dataclasses.dataclass(frozen=True)
class Grid:
    """The points of a sweep: an outer product of axes, each axis a zip of parameters.

    Build with :func:`product` (every parameter its own axis), :func:`zipped`
    (parameters varied together along one axis) and ``*`` (outer product of
    two grids).  Points are enumerated in C order (the last axis fastest).

    Attributes:
        axes: ``(((name, values), ...), ...)``; the parameters of one axis
            have the same number of values.  ``values`` has shape
            ``(num, *leaf_shape)`` (a scalar leaf: ``(num,)``).
    """

    axes: tuple[tuple[tuple[str, np.ndarray], ...], ...]

    def __post_init__(self):
        seen = set()
        for axis in self.axes:
            lengths = {len(v) for _, v in axis}
            if len(lengths) != 1:
                raise SweepError(f"zipped parameters {[n for n, _ in axis]} need the same number of values, "
                                 f"got {[len(v) for _, v in axis]}")
            if lengths.pop() < 1:
                raise SweepError(f"parameter {axis[0][0]!r} has no values (num must be >= 1)")
            for name, _ in axis:
                if name in seen:
                    raise SweepError(f"parameter {name!r} appears twice in the grid")
                seen.add(name)

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(n for axis in self.axes for n, _ in axis)

    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(len(axis[0][1]) for axis in self.axes)

    @property
    def size(self) -> int:
        return math.prod(self.shape)

    def __mul__(self, other: Grid) -> Grid:
        return Grid(self.axes + as_grid(other).axes)

    def points(self) -> dict[str, np.ndarray]:
        """``{name: values}`` with ``values[i]`` the parameter at point ``i`` (C order)."""
        shape = self.shape
        idx = np.indices(shape).reshape(len(shape), -1) if shape else np.zeros((0, 1), int)
        out = {}
        for k, axis in enumerate(self.axes):
            for name, values in axis:
                out[name] = values[idx[k]]
        return out


def _values(name: str, values) -> np.ndarray:
    arr = np.asarray(values)
    if arr.ndim == 0:
        arr = arr[None]
    if arr.dtype.kind not in "biuf" and arr.dtype != object:
        if arr.dtype.kind not in "U":
            raise SweepError(f"parameter {name!r}: values must be numbers (or strings for a static choice)")
    return arr


def product(**values) -> Grid:
    """Outer product: ``product(g=gs, omega0=ws)`` has ``len(gs) * len(ws)`` points."""
    return Grid(tuple(((k, _values(k, v)),) for k, v in values.items()))


def zipped(**values) -> Grid:
    """One axis along which the parameters vary together: ``zipped(g=gs, omega0=ws)`` has ``len(gs)`` points."""
    return Grid((tuple((k, _values(k, v)) for k, v in values.items()),))


def as_grid(obj) -> Grid:
    """A :class:`Grid` from a grid, a mapping (product) or a sequence of those (product)."""
    if isinstance(obj, Grid):
        return obj
    if isinstance(obj, Mapping):
        return product(**obj)
    if isinstance(obj, Sequence) and not isinstance(obj, str):
        g = Grid(())
        for part in obj:
            g = g * as_grid(part)
        return g
    raise SweepError(f"a grid must be a Grid, a mapping name -> values or a list of those, got {type(obj).__name__}")


def parse_range(text: str, name: str = "parameter") -> np.ndarray:
    """``"start:stop:num"`` (``linspace``, ``num >= 1``), or a comma-separated list ``"1,2,5"``.

    Raises :class:`SweepError` naming the parameter and the accepted syntax.
    """
    syntax = f"--{name} takes start:stop:num (num an integer >= 1) or a comma-separated list of numbers"
    parts = text.split(":")
    try:
        if len(parts) == 3:
            start, stop = float(parts[0]), float(parts[1])
            num = float(parts[2])
            if not num.is_integer() or num < 1:
                raise SweepError(f"{syntax}; num must be an integer >= 1, got {parts[2]!r}")
            values = np.linspace(start, stop, int(num))
        elif len(parts) == 1:
            values = np.array([float(x) for x in text.split(",")])
        else:
            raise SweepError(f"{syntax}; got {text!r}")
    except SweepError:
        raise
    except ValueError:
        raise SweepError(f"{syntax}; got {text!r}") from None
    if not np.all(np.isfinite(values)):
        raise SweepError(f"{syntax}; values must be finite, got {text!r}")
    return values
