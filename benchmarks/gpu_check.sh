#!/usr/bin/env bash
# GPU check of issue 8, in about 8 minutes on one CUDA GPU:
#   1. SDPA vs eager attention parity on the GPU (benchmarks/gpu_parity.py);
#   2. inference, R50 and Swin-L, 360x640 and 480x854, T = 20 and 60, in fp32 and bf16 autocast, with the image
#      model frame by frame and the official-style path's memory as baselines;
#   3. the same in bf16 autocast + torch.compile (no baselines: compiling the image model too would not fit);
#   4. a training step on a batch of 2-frame clips, R50 and Swin-L, fp32 and bf16;
#   5. one table of everything.
# Each step runs under `timeout`; a failed or timed-out step is reported and the others still run. The exit code
# is non-zero if any step failed.
#
# Usage: bash benchmarks/gpu_check.sh [RESULTS_DIR]    (default benchmarks/results/gpu; PYTHON=... to choose python)
set -euo pipefail

cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python}
RESULTS_DIR=${1:-benchmarks/results/gpu}
mkdir -p "$RESULTS_DIR"

"$PYTHON" - <<'EOF'
import sys

import torch

if not torch.cuda.is_available():
    sys.exit("gpu_check.sh needs a CUDA GPU, but torch.cuda.is_available() is False (torch %s)" % torch.__version__)
props = torch.cuda.get_device_properties(0)
print(f"device: {props.name}, {props.total_memory / 2**30:.0f} GiB, torch {torch.__version__}, CUDA {torch.version.cuda}")
EOF

FAILED=()
# step NAME SECONDS COMMAND...: run COMMAND under a time limit, log it, remember a failure.
step() {
    local name=$1 limit=$2
    shift 2
    echo
    echo "=== $name (limit ${limit} s)"
    local start=$SECONDS status=0
    timeout --kill-after=15 "$limit" "$@" 2>&1 | tee "$RESULTS_DIR/$name.log" || status=$?
    echo "=== $name: exit $status after $((SECONDS - start)) s"
    if [[ $status -ne 0 ]]; then
        FAILED+=("$name (exit $status$([[ $status -eq 124 ]] && echo ', timed out'))")
    fi
}

INFERENCE=("$PYTHON" benchmarks/bench_inference.py --device cuda --sizes 360x640 480x854 --frames 20 60)

step parity 60 "$PYTHON" benchmarks/gpu_parity.py --device cuda
step inference_r50 80 "${INFERENCE[@]}" --presets r50 --precisions fp32 bf16 --repeats 3 --warmup 1 \
    --image-baseline --official-style --output "$RESULTS_DIR/inference_r50.json"
step inference_swin_l 120 "${INFERENCE[@]}" --presets swin-l --precisions fp32 bf16 --repeats 3 --warmup 1 \
    --image-baseline --official-style --output "$RESULTS_DIR/inference_swin_l.json"
step inference_compile 130 "${INFERENCE[@]}" --presets r50 swin-l --precisions bf16-compile --repeats 3 --warmup 1 \
    --output "$RESULTS_DIR/inference_compile.json"
step training 60 "$PYTHON" benchmarks/bench_training.py --device cuda --presets r50 swin-l --size 384x640 \
    --precisions fp32 bf16 --repeats 5 --warmup 2 --output "$RESULTS_DIR/training.json"

echo
echo "=== summary"
"$PYTHON" benchmarks/summarize.py "$RESULTS_DIR"/inference_r50.json "$RESULTS_DIR"/inference_swin_l.json \
    "$RESULTS_DIR"/inference_compile.json "$RESULTS_DIR"/training.json
grep -h "checks passed" "$RESULTS_DIR/parity.log" || true
echo "total: $SECONDS s"
if [[ ${#FAILED[@]} -gt 0 ]]; then
    echo "FAILED steps: ${FAILED[*]}"
    exit 1
fi
echo "all steps passed"
