"""Time the YouTube-VIS metric on the realistic_medium fixture, against a straightforward baseline.

Ours: `evaluate_ytvis` (run-length masks, each track one RLE of all its frames, one pycocotools `iou` per
compared pair, matching vectorised over area ranges and thresholds). Baseline: the same code with the IoU stage
swapped for the obvious one, which decodes both masks of every (detection, ground truth) pair in every frame to
numpy (without pycocotools) and counts intersection and union pixels. Both must give the same numbers. The
comparison with the official `ytvoseval` on a 300-video case is `bench_metric_official.py`.

    python benchmarks/bench_metric.py [--repeats 7]
"""

import argparse
import json
import os
import statistics
import time
from pathlib import Path
from unittest import mock

import numpy as np

from modeling_m2f_video.evaluation import metric as ytvis_eval
from modeling_m2f_video.ytvis.reader import Track
from modeling_m2f_video.ytvis.rle import decode_rle_strings

FIXTURE = Path(__file__).resolve().parents[1] / "tests/fixtures/ytvis_metric/realistic_medium"


def decode(rle: dict | None, height: int, width: int) -> np.ndarray:
    """A compressed RLE as a (height, width) bool array, decoded with numpy only."""
    if rle is None:
        return np.zeros((height, width), dtype=bool)
    counts = rle["counts"]
    runs, _, _ = decode_rle_strings([counts.encode() if isinstance(counts, str) else counts])
    values = np.arange(len(runs)) % 2 == 1  # runs alternate background / foreground
    return np.repeat(values, runs).reshape(width, height).T


def naive_track_ious(detections: list[Track], gts: list[Track]) -> np.ndarray:
    """Per pair and per frame: decode both masks and count pixels."""
    ious = np.zeros((len(detections), len(gts)))
    for i, det in enumerate(detections):
        for j, gt in enumerate(gts):
            intersection = union = 0
            for d_rle, g_rle in zip(det.rles, gt.rles, strict=True):
                if d_rle is None and g_rle is None:
                    continue
                height, width = (d_rle or g_rle)["size"]
                d, g = decode(d_rle, height, width), decode(g_rle, height, width)
                intersection += int(np.logical_and(d, g).sum())
                union += int(np.logical_or(d, g).sum())
            ious[i, j] = intersection / union if union else 0.0
    return ious


def naive_plan_ious(plan: ytvis_eval._IoUPlan) -> np.ndarray:
    """The baseline's IoU stage for one video and category: every pair, decoded naively."""
    return naive_track_ious(plan.detections, plan.gts)


def median_seconds(run, repeats: int) -> tuple[float, object]:
    times, result = [], None
    for _ in range(repeats):
        start = time.perf_counter()
        result = run()
        times.append(time.perf_counter() - start)
    return statistics.median(times), result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args()
    gt = json.loads((FIXTURE / "gt.json").read_text())
    results = json.loads((FIXTURE / "results.json").read_text())
    expected = json.loads((FIXTURE / "expected.json").read_text())["stats_dict"]

    ours, ours_result = median_seconds(lambda: ytvis_eval.evaluate_ytvis(gt, results), args.repeats)
    with mock.patch.object(ytvis_eval._IoUPlan, "ious", naive_plan_ious):
        baseline, baseline_result = median_seconds(lambda: ytvis_eval.evaluate_ytvis(gt, results), args.repeats)

    assert baseline_result.stats == ours_result.stats
    assert max(abs(ours_result.stats[k] - v) for k, v in expected.items()) < 1e-9
    print(f"realistic_medium: {len(gt['videos'])} videos, {len(gt['annotations'])} GT tracks, {len(results)} results")
    print(f"cpus (os.cpu_count): {os.cpu_count()}, repeats: {args.repeats}")
    print(f"ours (whole-track RLEs, pycocotools): median {ours * 1e3:.1f} ms")
    print(f"baseline (per-pair numpy decode):   median {baseline * 1e3:.1f} ms")
    print(f"speed-up: {baseline / ours:.1f}x; all 12 numbers equal the official ones to 1e-9")


if __name__ == "__main__":
    main()
