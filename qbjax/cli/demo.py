"""``qbjax demo``: the main job on its defaults (a report folder of figures and a table)."""

from __future__ import annotations

from .common import base_parser, check_output


def cmd_demo(argv):
    p = base_parser("qbjax demo")
    p.add_argument("--out", default="qbjax-report", help="report folder (created)")
    p.add_argument("--quick", action="store_true", help="smaller sizes (for tests)")
    args = p.parse_args(argv)
    check_output(args.out, folder=True)
    from ..figures import demo

    out = demo.run(args.out, quick=args.quick, verbose=True, table=not args.json)
    if isinstance(out, dict):
        out.setdefault("params", {"out": args.out, "quick": bool(args.quick)})
    return out
