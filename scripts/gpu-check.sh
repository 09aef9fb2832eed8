#!/usr/bin/env bash
# The GPU check, from a bundle (`bench bundle DIR`) on a node that has torch and no network, in a few minutes:
#   1. install cloakbench from the bundle's wheels if it is not installed (the bundle's install.sh: pip
#      --no-index, nothing is fetched; --no-deps for a run-only bundle);
#   2. `bench perf` on the device: target, method and run rates as ratios (JSON);
#   3. the smoke suite on the device and on the CPU, with the bundle's weights (BENCH_HOME=DIR/home);
#   4. every PSR cell of the device run must equal the CPU run's within rounding (0.1 percentage point).
# Usage: scripts/gpu-check.sh BUNDLE_DIR [DEVICE (cuda)] [OUT_DIR (gpu-check)]
# With DEVICE=cpu it checks the bundle itself (install, weights, both commands) where no GPU is at hand.
set -euo pipefail
BUNDLE=$(cd "${1:?usage: scripts/gpu-check.sh BUNDLE_DIR [DEVICE] [OUT_DIR]}" && pwd)
DEVICE=${2:-cuda}
OUT=${3:-gpu-check}
mkdir -p "$OUT"
if ! python -c "import bench.cli" 2>/dev/null; then
    if [ -f "$BUNDLE/install.sh" ]; then
        sh "$BUNDLE/install.sh"
    else  # a bundle made before install.sh: every requirement is there
        python -m pip install --no-index --find-links "$BUNDLE/wheels" cloakbench
    fi
fi
export BENCH_HOME="$BUNDLE/home"
start=$(date +%s)
bench perf --device "$DEVICE" --json > "$OUT/perf-$DEVICE.json"
echo "bench perf --device $DEVICE: $OUT/perf-$DEVICE.json ($(( $(date +%s) - start )) s)"
bench run --suite smoke --device "$DEVICE" --out "$OUT/smoke-$DEVICE" > "$OUT/smoke-$DEVICE.log"
if [ "$DEVICE" != cpu ]; then
    bench run --suite smoke --device cpu --out "$OUT/smoke-cpu" > "$OUT/smoke-cpu.log"
fi
python - "$OUT/smoke-$DEVICE" "$OUT/smoke-cpu" <<'PY'
import json, sys
from pathlib import Path

def cells(run):
    board = json.loads((Path(run) / "leaderboard.json").read_text())
    return {(e["method"], e["scenario"], t, a): c["top1"] for e in board["entries"]
            for t, per_adv in e["psr"].items() for a, c in per_adv.items()}, board["entries"][0].get("device")

device, cpu = cells(sys.argv[1]), cells(sys.argv[2])
differ = {k: (v, cpu[0].get(k)) for k, v in device[0].items() if cpu[0].get(k) is None
          or round(100 * v, 1) != round(100 * cpu[0][k], 1)}
for (method, scenario, target, adversary), psr in sorted(device[0].items()):
    print(f"{method} {scenario} {target}/{adversary}: PSR@1 {100 * psr:.1f}% on {device[1]}, "
          f"{100 * cpu[0].get((method, scenario, target, adversary), float('nan')):.1f}% on {cpu[1]}")
if differ or not device[0]:
    sys.exit(f"PSR differs between {device[1]} and {cpu[1]}: {differ or 'no cells'}")
print(f"PSR equal on {device[1]} and {cpu[1]} within rounding ({len(device[0])} cells)")
PY
echo "gpu check done in $(( $(date +%s) - start )) s"
