#!/usr/bin/env bash
# The prepared GPU check (a few minutes on one GPU), for a machine with CUDA and this checkout:
#   the CUDA tests of the fast paths (graph capture, no host sync, GradScaler's fused route), then the step-time
#   benchmark with CUDA events on every shape, as a table and as JSON. Results go to $OUT (default: .).
#   PYTHON=/path/to/python OUT=/tmp/gpu benchmarks/gpu_check.sh
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python}
OUT=${OUT:-.}
export PYTHONPATH=$PWD/src${PYTHONPATH:+:$PYTHONPATH}
mkdir -p "$OUT"
"$PY" -c "import torch; assert torch.cuda.is_available(), 'no CUDA here'; print(torch.__version__, torch.cuda.get_device_name())"
timeout 300 "$PY" -m pytest -q -p no:cacheprovider tests/pytorch/test_fused_speedpaths.py tests/pytorch/test_innaprop_cloop.py -k "cuda or compiled_route" \
    2>&1 | tee "$OUT/gpu_tests.txt"
timeout 600 "$PY" benchmarks/step_time.py --device cuda --rounds 50 --json "$OUT/gpu_step_time.json" \
    2>&1 | tee "$OUT/gpu_step_time.txt"
