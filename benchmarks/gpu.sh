#!/usr/bin/env bash
# The GPU benchmark: one command, under 8 minutes on one H100/H200, writes a table.
#
#   benchmarks/gpu.sh            # on the device machine (results in benchmarks/results/gpu/)
#   benchmarks/gpu.sh --dry      # tiny sizes on any machine (a smoke run; the test suite runs it)
#
# Workloads: the closed Dicke battery (N = 20, 40; single trajectories and 64-point sweeps; complex128
# and complex64), and bench_sweep.py's R(g) sweep, heat-engine charging times and the Lindblad
# right-hand side against the memory-bandwidth roofline (complex128 and complex64).
set -euo pipefail
cd "$(dirname "$0")/.."
DRY=""
[ "${1:-}" = "--dry" ] && DRY="--dry"
OUT="${QBJAX_GPU_OUT:-benchmarks/results/gpu}"
mkdir -p "$OUT"
start=$(date +%s)
python -c "import jax; print('devices:', jax.devices())"
for dtype in complex128 complex64; do
  timeout 200 python benchmarks/gpu_closed.py --dtype "$dtype" $DRY --out "$OUT/closed_$dtype.json" \
    || echo "gpu_closed.py --dtype $dtype failed or timed out" >&2
done
if [ -n "$DRY" ]; then
  SWEEP=(--dicke-n 2 --dicke-points 4 --he-max-n 10 --he-points 2 --lindblad-n 4 --lindblad-batch 2
         --lindblad-seconds 0.2 --quiet)
else
  SWEEP=(--dicke-n 20 --dicke-points 256 --he-max-n 100000 --he-points 4 --lindblad-n 64,256,1024
         --lindblad-batch 256 --lindblad-seconds 2)
fi
timeout 240 python benchmarks/bench_sweep.py "${SWEEP[@]}" --out "$OUT/sweep.json" \
  || echo "bench_sweep.py failed or timed out" >&2
python - "$OUT" <<'PY'
import json, pathlib, sys
out = pathlib.Path(sys.argv[1])
lines = ["| workload | dtype | N | first call (s) | warm (s) | method |", "|---|---|---|---|---|---|"]
device = None
for dtype in ("complex128", "complex64"):
    f = out / f"closed_{dtype}.json"
    if not f.exists():
        lines.append(f"| closed Dicke | {dtype} | - | missing | | |")
        continue
    d = json.loads(f.read_text())
    for r in d["rows"]:
        fmt = lambda k: f"{r[k]:.4g}" if k in r else r.get(k.split('_')[0] + "_error", "-")  # noqa: E731
        lines.append(f"| single trajectory | {dtype} | {r['n']} | {fmt('single_first_s')} | {fmt('single_warm_s')} "
                     f"| {r.get('single_method', '-')} |")
        lines.append(f"| 64-point sweep, per trajectory | {dtype} | {r['n']} | {fmt('sweep_first_s_per_traj')} "
                     f"| {fmt('sweep_warm_s_per_traj')} | {r.get('sweep_closed_method', '-')} |")
    device = f"device: {d['device_kind']} ({d['platform']})\n"
table = "\n".join(([device] if device else []) + lines)
(out / "table.md").write_text(table + "\n")
print(table)
PY
echo "gpu.sh: $(( $(date +%s) - start )) s"
