"""``qbjax reproduce [FIGURE]``: the seed papers' figures."""

from __future__ import annotations

from .common import UsageError, base_parser, check_output


def cmd_reproduce(argv):
    from ..figures import FIGURES

    p = base_parser("qbjax reproduce")
    p.add_argument("figure", nargs="?", default=None, help="figure name; none lists them")
    p.add_argument("--out", default="qbjax-figures", help="output folder (created)")
    p.add_argument("--quick", action="store_true", help="small sizes (for tests)")
    args = p.parse_args(argv)
    check_output(args.out, folder=True)
    params = {"figure": args.figure, "out": args.out, "quick": bool(args.quick)}
    if args.figure is None:
        return {"params": params, "figures": {k: v.__doc__.strip().splitlines()[0] for k, v in FIGURES.items()}}
    if args.figure not in FIGURES:
        raise UsageError(f"unknown figure {args.figure!r}; allowed: {', '.join(FIGURES)}")
    out = FIGURES[args.figure](args.out, quick=args.quick, verbose=True)  # progress on stderr
    if isinstance(out, dict):
        out.setdefault("params", params)
    return out
