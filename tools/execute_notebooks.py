"""Execute the seed notebooks in place and store their outputs (the one command of issue 19, item 2).

    python tools/execute_notebooks.py                 # every notebook, paper sizes (minutes each)
    python tools/execute_notebooks.py --quick 004     # quick mode (QBJAX_NOTEBOOK_QUICK=1), one notebook

Notebooks run with the notebooks folder as their working directory, as a reader's Jupyter would; each
prints how long it took.  The tests run the same notebooks in quick mode without storing them.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import nbformat
from nbclient import NotebookClient

HERE = Path(__file__).resolve().parent.parent / "notebooks"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("names", nargs="*", help="notebook prefixes (000 .. 004); default: all")
    parser.add_argument("--quick", action="store_true", help="QBJAX_NOTEBOOK_QUICK=1 (small sizes)")
    parser.add_argument("--timeout", type=int, default=3600, help="seconds per cell (default 3600)")
    args = parser.parse_args(argv)
    paths = sorted(HERE.glob("*.ipynb"))
    if args.names:
        paths = [p for p in paths if any(p.name.startswith(n) for n in args.names)]
        if not paths:
            parser.error(f"no notebook matches {args.names}")
    if args.quick:
        os.environ["QBJAX_NOTEBOOK_QUICK"] = "1"
    else:
        os.environ.pop("QBJAX_NOTEBOOK_QUICK", None)
    for path in paths:
        t0 = time.perf_counter()
        print(f"{path.name}: executing ({'quick' if args.quick else 'full'} mode) ...", flush=True)
        nb = nbformat.read(path, as_version=4)
        NotebookClient(nb, timeout=args.timeout, kernel_name="python3",
                       resources={"metadata": {"path": str(HERE)}}).execute()
        nbformat.write(nb, path)
        print(f"{path.name}: stored with outputs in {time.perf_counter() - t0:.0f} s", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
