"""Run a dozen CLI commands against two checkouts and compare every JSON leaf (a before/after table).

    git worktree add /tmp/before <commit>
    python benchmarks/cli_compare.py /tmp/before .
"""

import json
import os
import subprocess
import sys
import tempfile

BEFORE, AFTER = (os.path.abspath(p) for p in ((sys.argv[1], sys.argv[2]) if len(sys.argv) > 2 else ("/tmp/before", ".")))
COMMANDS = ['charge dicke --n 4 --g 0.5', 'charge oscillator --n 4 --g 0.2', 'charge spins --n 3 --grad g', 'charge dicke --n 3 --classical', 'charge heat-engine --n 100 --beta-omega -0.8 --rate 0.1', 'charge spin-chain --n 6 --b 1 --g 2 --field 3', 'charge reservoirs --n-charger 8 --n-battery 2 --batteries 1 --pump 1 --t-max 5', 'advantage oscillator --n 16', 'collide --levels 50 --time 5', 'collide --protocol greedy --levels 40 --time 10 --q 0', 'sweep dicke --n 3 --g 0.1:0.3:4 --out OUT.csv --no-progress', 'reproduce']
cmds = [c.split() for c in COMMANDS]
def run(root, args):
    d = tempfile.mkdtemp()
    args = [a.replace("OUT.csv", os.path.join(d, "out.csv")) for a in args]
    env = dict(os.environ, PYTHONPATH=root, JAX_PLATFORMS="cpu")
    p = subprocess.run([sys.executable, "-m", "qbjax.cli", *args, "--json"], cwd=d, env=env, capture_output=True, text=True, timeout=600)
    return p.returncode, p.stdout, p.stderr
VOLATILE = {"wall_s", "compile_s", "seconds", "out", "bytes_per_device"}
def flat(x, pre=""):
    if isinstance(x, dict):
        for k, v in x.items():
            if k in VOLATILE: continue
            yield from flat(v, f"{pre}.{k}" if pre else k)
    elif isinstance(x, list):
        for i, v in enumerate(x): yield from flat(v, f"{pre}[{i}]")
    else:
        yield pre, x
rows = []
for args in cmds:
    a = run(BEFORE, args); b = run(AFTER, args)
    try:
        ja, jb = dict(flat(json.loads(a[1]))), dict(flat(json.loads(b[1])))
    except Exception as e:
        rows.append((" ".join(args), a[0], b[0], f"parse error {e} {a[2][-200:]} {b[2][-200:]}")); continue
    keys = set(ja) | set(jb)
    diff = []
    worst = 0.0
    for k in sorted(keys):
        va, vb = ja.get(k, "<missing>"), jb.get(k, "<missing>")
        if isinstance(va, float) and isinstance(vb, float):
            d = abs(va - vb) / max(1e-300, abs(va)) if va != vb else 0.0
            worst = max(worst, d)
            if d > 1e-9: diff.append(f"{k}: {va} -> {vb}")
        elif va != vb:
            diff.append(f"{k}: {va!r} -> {vb!r}")
    rows.append((" ".join(args), a[0], b[0], f"{len(keys)} keys, worst rel diff {worst:.1e}; " + ("; ".join(diff[:4]) or "identical")))
for r in rows: print(f"| `qbjax {r[0]} --json` | {r[1]} | {r[2]} | {r[3]} |")
