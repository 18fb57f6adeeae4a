"""Shared output helpers for figure modules: folders, JSON data, progress."""

from __future__ import annotations

import json
import os
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from tqdm.auto import tqdm  # noqa: E402


def outdir(path: str) -> str:
    os.makedirs(path, exist_ok=True)
    return os.path.abspath(path)


def save(fig, data: dict, out: str, name: str) -> dict:
    """Write ``name.png`` and ``name.json``; return their paths."""
    png, js = os.path.join(out, name + ".png"), os.path.join(out, name + ".json")
    fig.savefig(png, dpi=130, bbox_inches="tight")
    plt.close(fig)
    with open(js, "w") as f:
        json.dump(data, f, indent=1)
    return {"png": png, "data": js}


def progress(items, desc: str, verbose: bool):
    return tqdm(list(items), desc=desc, disable=not verbose, file=sys.stderr, leave=False)
