#!/usr/bin/env bash
# GPU check of issue 5 (training to high AP), with the short part of issue 8's check, in about 6 minutes:
#   1. two synthetic data sets: 1000 videos of 8 frames at 192x256 (6 classes) and at 96x128 (3 classes);
#   2. three training runs side by side (these models leave the GPU mostly idle, so they share it), each for
#      MINUTES minutes (benchmarks/train_synthetic.py --minutes probes the speed first), evaluated on the
#      held-out videos: the large model at two learning rates, and the small demo model. Meanwhile, the SDPA vs
#      eager attention parity check (correctness only, no timing);
#   3. after training, if every run succeeded, with the GPU to itself: inference (R50, 360x640, T = 20 and 60,
#      fp32 and bf16, with the image model and the official-style path as baselines) and a training step (R50 and
#      Swin-L, fp32 and bf16).
# Results go to RESULTS_DIR: each run's benchmark.json and log, the demo run's model folder as a tar, the tables.
#
# Usage: bash benchmarks/gpu_train.sh [RESULTS_DIR]   (default benchmarks/results/gpu_train; PYTHON, MINUTES, WORK)
set -uo pipefail

cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python}
RESULTS_DIR=${1:-benchmarks/results/gpu_train}
MINUTES=${MINUTES:-3}
WORK=${WORK:-/tmp/m2f-gpu-train}
mkdir -p "$RESULTS_DIR" "$WORK"
"$PYTHON" -c "import torch; print('device:', torch.cuda.get_device_name(0), 'torch', torch.__version__)" || exit 1

make_data() {  # make_data NAME VIDEOS CLASSES HEIGHT WIDTH
    "$PYTHON" -m modeling_m2f_video.cli make-synthetic --output "$WORK/$1" --videos "$2" --frames 8 --classes "$3" \
        --height "$4" --width "$5" --no-progress 2>&1 | tail -1
}
make_data data_large 1000 6 192 256 &
make_data data_small 1000 3 96 128 &
wait

# Each run gets 2 minutes beyond MINUTES for the speed probe, start-up and evaluation.
RUN_LIMIT=$("$PYTHON" -c "print(round(float('$MINUTES') * 60 + 120))")
train_run() {  # train_run NAME DATA OPTIONS...: a run in WORK/NAME on the data set WORK/DATA
    local name=$1 data=$2
    shift 2
    mkdir -p "$WORK/$name"
    ln -sfn "$WORK/$data" "$WORK/$name/data"
    OMP_NUM_THREADS=2 timeout --kill-after=15 "$RUN_LIMIT" "$PYTHON" benchmarks/train_synthetic.py \
        --work "$WORK/$name" --minutes "$MINUTES" --frames 8 --clip-frames 3 --num-workers 3 "$@" \
        >"$RESULTS_DIR/$name.log" 2>&1
    local status=$?
    echo "=== $name: exit $status"
    cp "$WORK/$name/benchmark.json" "$RESULTS_DIR/$name.json"
    return $status
}
LARGE=(--model large --videos 1000 --classes 6 --height 192 --width 256 --size 192 --queries 20 --batch-size 16)
RUNS=()
train_run large_lr1e-3 data_large "${LARGE[@]}" --lr 1e-3 &
RUNS+=($!)
train_run large_lr4e-4 data_large "${LARGE[@]}" --lr 4e-4 &
RUNS+=($!)
train_run small data_small --model small --videos 1000 --classes 3 --batch-size 8 --lr 1e-3 &
RUNS+=($!)
timeout 90 "$PYTHON" benchmarks/gpu_parity.py --device cuda >"$RESULTS_DIR/parity.log" 2>&1
echo "=== parity: exit $?"
FAILED=0
for run in "${RUNS[@]}"; do wait "$run" || FAILED=1; done
tar -C "$WORK/small" -cf "$RESULTS_DIR/small_run.tar" benchmark.json model/config.json model/model.safetensors \
    model/video_preprocessor_config.json model/eval.json
if [[ $FAILED -ne 0 ]]; then
    echo "a training run failed: skipping the benchmarks (see $RESULTS_DIR/*.log)"
    exit 1
fi

timeout 100 "$PYTHON" benchmarks/bench_inference.py --device cuda --sizes 360x640 --frames 20 60 --presets r50 \
    --precisions fp32 bf16 --repeats 3 --warmup 1 --image-baseline --official-style \
    --output "$RESULTS_DIR/inference_r50.json" >"$RESULTS_DIR/bench.log" 2>&1
echo "=== inference: exit $?"
timeout 80 "$PYTHON" benchmarks/bench_training.py --device cuda --presets r50 swin-l --size 384x640 \
    --precisions fp32 bf16 --repeats 5 --warmup 2 --output "$RESULTS_DIR/training_step.json" >>"$RESULTS_DIR/bench.log" 2>&1
echo "=== training step: exit $?"

"$PYTHON" - "$RESULTS_DIR" <<'EOF'
import json, sys
from pathlib import Path
for path in sorted(Path(sys.argv[1]).glob("*.json")):
    report = json.loads(path.read_text())
    if "metrics" in report:
        metrics = report["metrics"] or {}
        print(f"{path.stem}: {report['steps']} steps in {report['wall_time_s']} s, "
              f"probe {report['probe_seconds_per_step']:.3f} s/step, AP {metrics.get('AP', -1):.3f} "
              f"AP50 {metrics.get('AP50', -1):.3f} AP75 {metrics.get('AP75', -1):.3f} AR10 {metrics.get('AR10', -1):.3f}")
EOF
"$PYTHON" benchmarks/summarize.py "$RESULTS_DIR"/inference_r50.json "$RESULTS_DIR"/training_step.json
grep -h "checks passed" "$RESULTS_DIR/parity.log"
echo "total: $SECONDS s"
