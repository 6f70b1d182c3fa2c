"""Peak memory and time of whole-video vs clip-by-clip inference as videos get longer, and their agreement.

For each length, a synthetic video is generated once and segmented in a fresh process per mode, so that each
peak-memory reading (the process's peak resident set size, minus its size just before inference) belongs to
one run:
- `whole`: the whole video at once, as the official code does;
- `whole-chunked`: the same, with the backbone and pixel decoder run 8 frames at a time (`frame_chunk_size`);
- `clip`: clip by clip (`--clip-length` frames per window, `--clip-overlap` shared).
Agreement: mask AP (the project's YouTube-VIS metric) of the clip-by-clip instances, taking the whole-video
instances that score above `--reference-threshold` as the ground truth.

    python benchmarks/bench_long_video.py --model demo --lengths 50,100,250,500,1000

Without `--model`, the demo model is used if it is installed, else a tiny random model (its instances are
noise, so its agreement numbers say little). Writes a Markdown table to `--output`.
"""

from __future__ import annotations

import argparse
import json
import resource
import shlex
import subprocess
import sys
import tempfile
import time
from pathlib import Path

MODES = ("whole", "whole-chunked", "clip")
SEGMENT_FRAMES = 250


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", help="model folder or 'demo' (default: demo if installed, else a tiny random one)")
    parser.add_argument("--lengths", default="25,50,100,250,500,1000", help="comma-separated frame counts")
    parser.add_argument("--height", type=int, default=96, help="frame height of the generated videos")
    parser.add_argument("--width", type=int, default=128, help="frame width of the generated videos")
    parser.add_argument("--shortest-edge", type=int, default=96, help="processor resize (shortest side)")
    parser.add_argument("--clip-length", type=int, default=32)
    parser.add_argument("--clip-overlap", type=int, default=8)
    parser.add_argument("--reference-threshold", type=float, default=0.5)
    parser.add_argument("--threads", type=int, default=1, help="torch threads per run")
    parser.add_argument("--timeout", type=float, default=1800, help="seconds before a run counts as failed")
    parser.add_argument("--output", default="docs/fragments/long_video_results.md")
    parser.add_argument("--work", help="folder for videos and predictions (default: a temporary one)")
    parser.add_argument("--child", nargs=3, metavar=("MODE", "VIDEO_NPY", "RESULT_JSON"), help=argparse.SUPPRESS)
    parser.add_argument("--model-path", help=argparse.SUPPRESS)
    return parser.parse_args(argv)


# ----------------------------------------------------------------------------------------------- one run


def _rss_mb(field: str) -> float:
    """A memory field of /proc/self/status (VmRSS, VmHWM) in MiB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"{field} not in /proc/self/status")


def run_child(args: argparse.Namespace) -> None:
    """Segment one video in one mode; write time, memory and the YouTube-VIS records to a JSON file."""
    import numpy as np
    import torch
    from transformers import pipeline

    import modeling_m2f_video  # noqa: F401  (registers the Auto classes)
    from modeling_m2f_video.batch_prediction import to_records
    from modeling_m2f_video.pipeline_video_instance_segmentation import TASK
    from modeling_m2f_video.processing.video_processing_m2f_video import Mask2FormerVideoProcessor
    from modeling_m2f_video.registration import register

    mode, video_path, result_path = args.child
    torch.set_num_threads(args.threads)
    register()
    processor = Mask2FormerVideoProcessor.from_pretrained(
        args.model_path, size={"shortest_edge": args.shortest_edge, "longest_edge": 1333}
    )
    segmenter = pipeline(TASK, model=args.model_path, video_processor=processor, device="cpu")
    frames = np.load(video_path)
    options = {"mode": "clip" if mode == "clip" else "whole", "return_rle": True, "top_k": 10}
    options.update(clip_length=args.clip_length, clip_overlap=args.clip_overlap)
    if mode == "whole-chunked":
        options["frame_chunk_size"] = 8
    before = _rss_mb("VmRSS")
    start = time.perf_counter()
    instances = segmenter(frames, **options)
    seconds = time.perf_counter() - start
    peak = max(_rss_mb("VmHWM"), resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
    result = {"seconds": seconds, "peak_mb": peak - before, "records": to_records(0, instances)}
    Path(result_path).write_text(json.dumps(result))


# ----------------------------------------------------------------------------------------------- the sweep


def resolve_benchmark_model(name: str | None, work: Path) -> tuple[str, str]:
    """(model folder, description): the given model, the demo model if installed, or a tiny random one."""
    from modeling_m2f_video.demo import DEMO_MODEL_DIR, resolve_model_path

    if name is not None:
        return resolve_model_path(name), name
    if (DEMO_MODEL_DIR / "config.json").is_file():
        return str(DEMO_MODEL_DIR), "demo"
    return str(save_tiny_random_model(work / "tiny_model")), "tiny random (ResNet, 6 queries, 3 classes)"


def save_tiny_random_model(folder: Path) -> Path:
    """A randomly initialised tiny video Mask2Former and its processor, saved to `folder`."""
    import torch

    from modeling_m2f_video import Mask2FormerVideoForVideoInstanceSegmentation
    from modeling_m2f_video.configuration import Mask2FormerVideoConfig
    from modeling_m2f_video.processing.video_processing_m2f_video import Mask2FormerVideoProcessor

    torch.manual_seed(0)
    config = Mask2FormerVideoConfig.tiny()
    Mask2FormerVideoForVideoInstanceSegmentation(config).eval().save_pretrained(folder)
    Mask2FormerVideoProcessor.from_model_config(config).save_pretrained(folder)
    return folder


def generate(work: Path, length: int, args: argparse.Namespace, num_classes: int) -> Path:
    """The synthetic video of `length` frames, saved as a (T, H, W, 3) uint8 .npy file."""
    import numpy as np

    from modeling_m2f_video.processing.synthetic import generate_video

    path = work / f"video_{length}.npy"
    if not path.exists():
        video = generate_video(
            0, seed=7, num_frames=length, height=args.height, width=args.width, num_classes=num_classes
        )
        np.save(path, video.frames)
    return path


def run_one(args: argparse.Namespace, model: str, mode: str, video: Path, result: Path) -> dict:
    """One measurement in a fresh process: its JSON result, or the reason it failed (reused if already in --work)."""
    if result.is_file():
        return json.loads(result.read_text())
    command = [sys.executable, __file__, "--child", mode, str(video), str(result), "--model-path", model]
    for option in ("shortest_edge", "clip_length", "clip_overlap", "threads"):
        command += [f"--{option.replace('_', '-')}", str(getattr(args, option))]
    try:
        completed = subprocess.run(command, capture_output=True, text=True, timeout=args.timeout)
    except subprocess.TimeoutExpired:
        return {"error": f"timeout ({args.timeout:.0f} s)"}
    if completed.returncode != 0:
        return {"error": f"failed (exit {completed.returncode}): {completed.stderr.strip().splitlines()[-1:]}"}
    return json.loads(result.read_text())


def agreement(reference: dict, clip: dict, length: int, args: argparse.Namespace, num_classes: int) -> dict | None:
    """Mask AP / AP50 / AP75 of the clip-by-clip records against the confident whole-video records."""
    from modeling_m2f_video.evaluation.metric import evaluate_ytvis

    kept = [r for r in reference["records"] if r["score"] > args.reference_threshold]
    if not kept:
        return None
    segments = range(0, length, SEGMENT_FRAMES)
    ground_truth = {
        "videos": [
            {"id": i, "height": args.height, "width": args.width, "length": min(SEGMENT_FRAMES, length - start)}
            for i, start in enumerate(segments)
        ],
        "categories": [{"id": i + 1, "name": str(i)} for i in range(num_classes)],
        "annotations": [
            {"id": i + 1, "iscrowd": 0, "height": args.height, "width": args.width, **_without_score(record)}
            for i, record in enumerate(_split_tracks(kept, segments))
        ],
    }
    stats = evaluate_ytvis(ground_truth, _split_tracks(clip["records"], segments)).stats
    return {"AP": stats["AP"], "AP50": stats["AP50"], "AP75": stats["AP75"], "references": len(kept)}


def _without_score(record: dict) -> dict:
    return {key: value for key, value in record.items() if key != "score"}


def _split_tracks(records: list[dict], segments: range) -> list[dict]:
    """Records cut into segments of at most SEGMENT_FRAMES frames, segment i becoming video i; empty parts dropped.

    pycocotools' `area` fails on more than 255 masks at once under numpy 2, which the metric hits on longer
    tracks, so long videos are scored as consecutive segments (one segment below that length).
    """
    parts = []
    for record in records:
        for index, start in enumerate(segments):
            segmentations = record["segmentations"][start : start + segments.step]
            if any(rle is not None for rle in segmentations):
                parts.append({**record, "video_id": index, "segmentations": segmentations})
    return parts


def sweep(args: argparse.Namespace) -> str:
    """Run every (length, mode) and return the Markdown report."""
    from transformers import AutoConfig

    import modeling_m2f_video  # noqa: F401

    work = Path(args.work or tempfile.mkdtemp(prefix="bench_long_video_"))
    work.mkdir(parents=True, exist_ok=True)
    model, model_name = resolve_benchmark_model(args.model, work)
    num_classes = AutoConfig.from_pretrained(model).num_labels
    rows = []
    for length in (int(value) for value in args.lengths.split(",")):
        video = generate(work, length, args, num_classes)
        runs = {mode: run_one(args, model, mode, video, work / f"{mode}_{length}.json") for mode in MODES}
        agree = None
        if "error" not in runs["whole"] and "error" not in runs["clip"]:
            agree = agreement(runs["whole"], runs["clip"], length, args, num_classes)
        rows.append((length, runs, agree))
        print(_row(length, runs, agree), flush=True)
    return _report(args, model_name, rows)


def _cell(run: dict) -> str:
    if "error" in run:
        return run["error"]
    return f"{run['peak_mb']:.0f} MiB, {run['seconds']:.1f} s"


def _agreement_cell(agree: dict | None) -> str:
    if agree is None:
        return "n/a"
    return f"{agree['AP']:.3f} / {agree['AP50']:.3f} / {agree['AP75']:.3f} ({agree['references']})"


def _row(length: int, runs: dict, agree: dict | None) -> str:
    return f"| {length} | " + " | ".join(_cell(runs[mode]) for mode in MODES) + f" | {_agreement_cell(agree)} |"


def _report(args: argparse.Namespace, model_name: str, rows: list) -> str:
    header = [
        "## Long videos: measured memory and time",
        "",
        f"Synthetic videos of {args.height}x{args.width} (resized to shortest side {args.shortest_edge}), model: "
        f"{model_name}, CPU, {args.threads} torch thread(s), each run in a fresh process. Memory is the peak "
        "resident set size during inference minus the size just before it (model and frames already loaded). "
        f"Clip-by-clip: windows of {args.clip_length} frames overlapping by {args.clip_overlap}. Agreement: mask "
        "AP / AP50 / AP75 of the clip-by-clip instances against the whole-video instances scoring above "
        f"{args.reference_threshold} (their count in brackets), with the project's YouTube-VIS metric.",
        "",
        f"Command: `python benchmarks/bench_long_video.py {shlex.join(sys.argv[1:])}`",
        "",
        "| frames | whole video | whole, frame_chunk_size=8 | clip by clip | agreement AP / AP50 / AP75 |",
        "| ---: | --- | --- | --- | --- |",
    ]
    return "\n".join(header + [_row(length, runs, agree) for length, runs, agree in rows]) + "\n"


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.child:
        run_child(args)
        return 0
    report = sweep(args)
    Path(args.output).parent.mkdir(parents=True, exist_ok=True)
    Path(args.output).write_text(report)
    print(f"wrote {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
