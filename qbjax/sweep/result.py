"""The result of a sweep: values on the grid, a DataFrame, CSV and JSON."""

from __future__ import annotations

import json
import math

import numpy as np


class SweepResult:
    """Labelled results of a sweep.

    Attributes:
        frame: a :class:`pandas.DataFrame`, one row per grid point (C order),
            one column per parameter (scalar parameters; array-valued ones as
            lists) and per metric (plus ``top_population`` for models with
            truncated modes).
        grid_shape: the grid's shape (``values(metric)`` reshapes to it).
        info: model, parameters, metrics, devices, chunk sizes, compile and wall times.
    """

    def __init__(self, frame, grid_shape, info):
        self.frame, self.grid_shape, self.info = frame, tuple(grid_shape), info

    def values(self, column: str) -> np.ndarray:
        """A column as an array of the grid's shape."""
        return np.asarray(self.frame[column].to_numpy()).reshape(self.grid_shape)

    def to_csv(self, path) -> None:
        self.frame.to_csv(path, index=False, float_format="%.17g")

    def to_json(self, path=None) -> str:
        """``{"info": ..., "columns": {name: [values]}}``; written to ``path`` if given."""
        cols = {c: [_jsonable(x) for x in self.frame[c].tolist()] for c in self.frame.columns}
        text = json.dumps({"info": self.info, "columns": cols})
        if path is not None:
            with open(path, "w") as f:
                f.write(text)
        return text

    def __repr__(self):
        return f"SweepResult({len(self.frame)} points, columns={list(self.frame.columns)})"


def _jsonable(x):
    if isinstance(x, (np.floating, float)):
        x = float(x)
        return x if math.isfinite(x) else None
    if isinstance(x, np.integer):
        return int(x)
    if isinstance(x, np.ndarray):
        return x.tolist()
    return x
