"""CPU inference time and peak memory against the official Mask2Former video code, side by side.

Both sides get the same task: one video of random uint8 RGB frames already at the model-side size (default
360x640), the whole evaluation call timed: normalisation, padding to a multiple of 32, the model, and the top-10
post-processing to masks at the frame size. Same architecture on both sides with random weights (no checkpoint):

- **official**: facebookresearch/Mask2Former's `VideoMaskFormer`, built by detectron2's `build_model` from the
  official YouTube-VIS 2019 config file of the backbone (`configs/youtubevis_2019/...`), `MODEL.DEVICE=cpu`,
  called as its evaluator calls it, `model([{"image": [T frames (3, H, W) uint8], "height": H, "width": W}])`.
  Its multi-scale deformable attention imports the compiled CUDA op, which a CPU-only install does not have; the
  worker registers an empty `MultiScaleDeformableAttention` module first, so that the import succeeds and the
  layer takes its own PyTorch fallback (`ms_deform_attn_core_pytorch`), as the official code does on a CPU;
- **ours**: `Mask2FormerVideoProcessor(frames, do_resize=False)`, the model of the preset (`r50-ytvis2019`,
  `swin-tiny-ytvis2019`) with its default configuration, and `post_process_video_instance_segmentation`.

Every run is a fresh process (a worker: this file with `--worker`); workers of the two sides alternate, round by
round (official, ours, official, ours, ...), so that load changes on a shared machine hit both. A worker builds
the model, runs `--warmup` untimed calls and `--runs` timed ones, and reports their wall times and its peak
resident set size (Linux `VmHWM`, the whole process: libraries, weights, input and the runs). The table gives
medians over all timed runs of a side, the ratio ours / official of the medians, the median of the per-round
ratios ("paired"), and the ratio of the peak memories.

The official code needs its own Python environment (detectron2 built for the CPU, Mask2Former's requirements):
`--official-python` is that interpreter and `--official-path` (repeatable) the folders to put on its `sys.path`
(a detectron2 checkout built in place, the Mask2Former checkout, which also holds the config files). Nothing of
the official code is part of this project.

    python benchmarks/bench_official_inference.py --official-python /path/to/venv/bin/python \\
        --official-path /path/to/detectron2 --official-path /path/to/Mask2Former \\
        --backbones r50 swin-t --frames 5 20 --rounds 3 --output benchmarks/results/cpu_official.json

This file runs under the official Python too (as the worker), so it imports only the standard library at the top.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import statistics
import subprocess
import sys
import time
import types
from pathlib import Path
from typing import Any

MARKER = "BENCH_OFFICIAL_INFERENCE_RESULT "  # the line a worker prints before its JSON answer
# backbone -> (our preset, the official config file under the Mask2Former checkout)
BACKBONES = {
    "r50": ("r50-ytvis2019", "configs/youtubevis_2019/video_maskformer2_R50_bs16_8ep.yaml"),
    "r101": ("r101-ytvis2019", "configs/youtubevis_2019/video_maskformer2_R101_bs16_8ep.yaml"),
    "swin-t": ("swin-tiny-ytvis2019", "configs/youtubevis_2019/swin/video_maskformer2_swin_tiny_bs16_8ep.yaml"),
    "swin-s": ("swin-small-ytvis2019", "configs/youtubevis_2019/swin/video_maskformer2_swin_small_bs16_8ep.yaml"),
}
SIDES = ("official", "ours")


# ------------------------------------------------------------------------------------------------ workers


def random_frames(num_frames: int, height: int, width: int, seed: int) -> Any:
    """`(T, H, W, 3)` uint8 RGB frames, the same on both sides (numpy's seeded generator)."""
    import numpy as np

    return np.random.default_rng(seed).integers(0, 256, (num_frames, height, width, 3), dtype=np.uint8)


def build_official(backbone: str, official_paths: list[str]) -> Any:
    """The official `VideoMaskFormer` of the backbone's YouTube-VIS 2019 config, random weights, eval mode."""
    sys.path[:0] = official_paths
    # The compiled deformable-attention op is CUDA-only; an empty module makes its import succeed, and the layer's
    # `try: MSDeformAttnFunction.apply(...) except: ms_deform_attn_core_pytorch(...)` takes the PyTorch fallback.
    sys.modules.setdefault("MultiScaleDeformableAttention", types.ModuleType("MultiScaleDeformableAttention"))
    from detectron2.config import get_cfg
    from detectron2.modeling import build_model
    from detectron2.projects.deeplab import add_deeplab_config
    from mask2former import add_maskformer2_config
    from mask2former_video import add_maskformer2_video_config

    config_file = next(
        (
            Path(path) / BACKBONES[backbone][1]
            for path in official_paths
            if (Path(path) / BACKBONES[backbone][1]).is_file()
        ),
        None,
    )
    if config_file is None:
        raise FileNotFoundError(f"{BACKBONES[backbone][1]} is in none of --official-path {official_paths}")
    cfg = get_cfg()
    add_deeplab_config(cfg)
    add_maskformer2_config(cfg)
    add_maskformer2_video_config(cfg)
    cfg.merge_from_file(str(config_file))
    cfg.MODEL.DEVICE = "cpu"
    cfg.MODEL.WEIGHTS = ""
    cfg.freeze()
    return build_model(cfg).eval()


def official_call(model: Any, frames: Any) -> Any:
    """One evaluation call as the official evaluator makes it: the frames as (3, H, W) uint8 tensors."""
    import torch

    height, width = frames.shape[1:3]
    images = [torch.from_numpy(frame).permute(2, 0, 1) for frame in frames]
    return model([{"image": images, "height": height, "width": width}])


def build_ours(backbone: str) -> tuple[Any, Any]:
    """Our model of the backbone's preset with its default configuration (random weights), and its processor."""
    from modeling_m2f_video import (
        Mask2FormerVideoConfig,
        Mask2FormerVideoForVideoInstanceSegmentation,
        Mask2FormerVideoProcessor,
    )

    config = Mask2FormerVideoConfig.from_preset(BACKBONES[backbone][0])
    model = Mask2FormerVideoForVideoInstanceSegmentation(config).eval()
    return model, Mask2FormerVideoProcessor.from_model_config(config)


def ours_call(model: Any, processor: Any, frames: Any) -> Any:
    """One evaluation call: normalise and pad (no resize: the frames are at the model-side size), the model, the
    top-k post-processing to masks at the frame size."""
    inputs = processor(frames, do_resize=False, return_tensors="pt")
    outputs = model(pixel_values_videos=inputs["pixel_values_videos"])
    return processor.post_process_video_instance_segmentation(
        outputs,
        target_sizes=inputs["original_sizes"],
        resized_sizes=inputs["resized_sizes"],
        top_k=model.config.test_top_k,
    )


def peak_rss_bytes() -> int:
    """This process's peak resident set size (`VmHWM`)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def worker(task: dict[str, Any]) -> dict[str, Any]:
    """Build one side's model, warm up, time `runs` calls; report the times and the process's peak RSS."""
    import torch

    torch.set_num_threads(task["threads"])
    torch.manual_seed(task["seed"])
    frames = random_frames(task["frames"], *task["size"], seed=task["seed"])
    if task["side"] == "official":
        model = build_official(task["backbone"], task["official_paths"])

        def call() -> Any:
            return official_call(model, frames)
    else:
        model, processor = build_ours(task["backbone"])

        def call() -> Any:
            return ours_call(model, processor, frames)

    times = []
    with torch.no_grad():
        for _ in range(task["warmup"]):
            call()
        for _ in range(task["runs"]):
            start = time.perf_counter()
            call()
            times.append(time.perf_counter() - start)
    return {
        "times_s": times,
        "peak_rss_bytes": peak_rss_bytes(),
        "parameters": sum(parameter.numel() for parameter in model.parameters()),
        "torch": torch.__version__,
    }


def run_worker(python: str, task: dict[str, Any]) -> dict[str, Any]:
    """Run `python <this file> --worker <task>` in a fresh process and return its answer."""
    command = [python, str(Path(__file__).resolve()), "--worker", json.dumps(task)]
    completed = subprocess.run(command, capture_output=True, text=True)
    for line in reversed(completed.stdout.splitlines()):
        if line.startswith(MARKER):
            return json.loads(line[len(MARKER) :])
    raise RuntimeError(f"worker failed (exit code {completed.returncode}): {task}\n{completed.stderr[-4000:]}")


# ------------------------------------------------------------------------------------------------ main


def machine() -> dict[str, Any]:
    cpu = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if "model name" in line
        ),
        platform.processor(),
    )
    return {
        "cpu": cpu,
        "nproc": os.cpu_count(),
        "python": platform.python_version(),
        "load_average_start": os.getloadavg(),
        "date": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC"),
    }


def measure_case(args: argparse.Namespace, backbone: str, num_frames: int) -> dict[str, Any]:
    """Alternate the two sides' workers for `--rounds` rounds; medians, ratios and peak memory."""
    task = {
        "backbone": backbone,
        "frames": num_frames,
        "size": list(args.size),
        "threads": args.threads,
        "warmup": args.warmup,
        "runs": args.runs,
        "seed": args.seed,
        "official_paths": args.official_path,
    }
    answers: dict[str, list[dict[str, Any]]] = {side: [] for side in SIDES}
    loads = []
    for _ in range(args.rounds):
        for side in SIDES:
            python = args.official_python if side == "official" else sys.executable
            answers[side].append(run_worker(python, {**task, "side": side}))
            loads.append(os.getloadavg()[0])
    summary = {}
    for side in SIDES:
        times = [t for answer in answers[side] for t in answer["times_s"]]
        summary[side] = {
            "median_s": statistics.median(times),
            "times_s": times,
            "peak_rss_bytes": max(answer["peak_rss_bytes"] for answer in answers[side]),
            "parameters": answers[side][0]["parameters"],
        }
    paired = [
        statistics.median(ours["times_s"]) / statistics.median(official["times_s"])
        for official, ours in zip(answers["official"], answers["ours"])
    ]
    return {
        "backbone": backbone,
        "frames": num_frames,
        "size": list(args.size),
        **summary,
        "time_ratio": summary["ours"]["median_s"] / summary["official"]["median_s"],
        "paired_time_ratio": statistics.median(paired),
        "memory_ratio": summary["ours"]["peak_rss_bytes"] / summary["official"]["peak_rss_bytes"],
        "load_average_1min": loads,
    }


def table(records: list[dict[str, Any]]) -> str:
    header = "| backbone | T | official (median) | ours (median) | time ratio (paired) | official peak RSS | ours peak RSS | memory ratio |"
    lines = [header, "|" + "---|" * 8]
    for record in records:
        lines.append(
            f"| {record['backbone']} | {record['frames']} | {record['official']['median_s']:.2f} s "
            f"| {record['ours']['median_s']:.2f} s | {record['time_ratio']:.2f} ({record['paired_time_ratio']:.2f}) "
            f"| {record['official']['peak_rss_bytes'] / 1e9:.2f} GB | {record['ours']['peak_rss_bytes'] / 1e9:.2f} GB "
            f"| {record['memory_ratio']:.2f} |"
        )
    return "\n".join(lines)


def parse_size(text: str) -> tuple[int, int]:
    height, width = (int(side) for side in text.lower().split("x"))
    return height, width


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--official-python", help="the Python of the environment with detectron2 and Mask2Former")
    parser.add_argument("--official-path", action="append", default=[], help="folder for its sys.path (repeatable)")
    parser.add_argument("--backbones", nargs="+", default=["r50"], choices=sorted(BACKBONES))
    parser.add_argument("--frames", nargs="+", type=int, default=[5, 20])
    parser.add_argument("--size", type=parse_size, default=(360, 640), help="frame size HxW (default 360x640)")
    parser.add_argument("--rounds", type=int, default=3, help="worker processes per side, alternating")
    parser.add_argument("--warmup", type=int, default=1, help="untimed calls per worker")
    parser.add_argument("--runs", type=int, default=1, help="timed calls per worker")
    parser.add_argument("--threads", type=int, default=2, help="torch CPU threads on both sides")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--output", type=Path, help="write every record as JSON")
    args = parser.parse_args(argv)
    if args.worker:
        print(MARKER + json.dumps(worker(json.loads(args.worker))), flush=True)
        return 0
    if not args.official_python or not args.official_path:
        parser.error("--official-python and --official-path are required")

    machine_at_start = machine()
    records = []
    for backbone in args.backbones:
        for num_frames in args.frames:
            records.append(measure_case(args, backbone, num_frames))
            print(table(records[-1:]).splitlines()[-1], flush=True)
    print(table(records))
    if args.output:
        args.output.parent.mkdir(parents=True, exist_ok=True)
        document = {
            "benchmark": "official_inference",
            "command": " ".join(sys.argv),
            "machine": machine_at_start,
            "records": records,
        }
        args.output.write_text(json.dumps(document, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
