"""ONNX Runtime vs PyTorch on the CPU: the same model, the same input, forward passes taken in turn.

For a preset (random weights of its real size, seeded) the script exports the model with `m2f-video`'s exporter
(`deployment.onnx_export`, timed once), loads the folder in an ONNX Runtime session on the CPU execution
provider and, for every number of frames, times the PyTorch forward and the ONNX Runtime forward on the same
processor output, alternating (A B A B ...) so that load changes on a shared machine hit both alike. Reported:
the median of each, their ratio, the median of the per-pair ratios, and the largest absolute difference of the
class and mask logits. Both use `--threads` CPU threads.

    python benchmarks/bench_onnx.py --preset r50 --size 360x640 --frames 5 20 --repeats 5
    python benchmarks/bench_onnx.py --preset r50 --size 192x320 --frames 5 --repeats 3   # reduced size
    python benchmarks/bench_onnx.py --quick    # tiny model, 64x96, seconds of runtime: checks the code path
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import onnxruntime
import torch
from bench_inference import PRESET_ALIASES, TINY_PRESETS, build_video_model, make_inputs, parse_size
from benchmark_utils import machine_info, markdown_table, seconds, time_runs_interleaved, write_records

from modeling_m2f_video import Mask2FormerVideoProcessor
from modeling_m2f_video.configuration import Mask2FormerVideoConfig
from modeling_m2f_video.deployment import OnnxVideoInstanceSegmentationModel, export_onnx_folder
from modeling_m2f_video.deployment.onnx_folder import ONNX_FILE, read_manifest

QUICK_SETTINGS = {"preset": "tiny-r50", "size": "64x96", "frames": [2], "repeats": 1, "warmup": 0}
HEADER = ("preset", "input", "T", "PyTorch (median)", "ONNX Runtime (median)", "ratio", "paired ratio", "max abs diff")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--preset", default="r50", help=f"{', '.join([*PRESET_ALIASES, *TINY_PRESETS])} or a preset")
    parser.add_argument("--size", default="360x640", help="frame size HxW, not resized (padded to a multiple of 32)")
    parser.add_argument("--frames", type=int, nargs="+", default=[5, 20], help="numbers of frames (default 5 20)")
    parser.add_argument("--repeats", type=int, default=5, help="timed runs of each runtime (default 5)")
    parser.add_argument("--warmup", type=int, default=1, help="untimed runs of each runtime first (default 1)")
    parser.add_argument("--threads", type=int, default=os.cpu_count(), help="CPU threads of both runtimes")
    parser.add_argument("--chunk-size", type=int, help="PyTorch frame_chunk_size (default: all frames at once)")
    parser.add_argument("--opset", type=int, default=18, help="ONNX opset of the export (default 18)")
    parser.add_argument("--output", help="write the records as JSON here")
    parser.add_argument("--quick", action="store_true", help="tiny model, 64x96, T=2, one run")
    args = parser.parse_args(argv)
    if args.quick:
        for name, value in QUICK_SETTINGS.items():
            setattr(args, name, value)
    return args


def export_and_load(
    model: torch.nn.Module, folder: Path, opset: int, threads: int
) -> tuple[OnnxVideoInstanceSegmentationModel, float]:
    """Save `model` to `folder/model`, export it to `folder/onnx` and load that on the CPU execution provider with
    `threads` threads. Returns the ONNX model and the export time in seconds."""
    model_dir = folder / "model"
    model.save_pretrained(model_dir)
    Mask2FormerVideoProcessor.from_model_config(model.config).save_pretrained(model_dir)
    start = time.perf_counter()
    onnx_dir = export_onnx_folder(model_dir, folder / "onnx", opset=opset)
    export_seconds = time.perf_counter() - start
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = threads
    options.log_severity_level = 3
    session = onnxruntime.InferenceSession(
        str(onnx_dir / ONNX_FILE), sess_options=options, providers=["CPUExecutionProvider"]
    )
    read_manifest(onnx_dir)
    config = Mask2FormerVideoConfig.from_pretrained(onnx_dir)
    return OnnxVideoInstanceSegmentationModel(onnx_dir, session, config, torch.float32), export_seconds


def max_abs_diff(first: Any, second: Any) -> float:
    """The largest absolute difference of the class and mask logits of two outputs."""
    return max(
        (getattr(first, name).float() - getattr(second, name).float()).abs().max().item()
        for name in ("class_queries_logits", "masks_queries_logits")
    )


def measure(
    torch_model: torch.nn.Module, onnx_model: OnnxVideoInstanceSegmentationModel, args: argparse.Namespace, frames: int
) -> dict[str, Any]:
    """One record: both runtimes on the same `frames`-frame input, timed in turn."""
    height, width = parse_size(args.size)
    pixel_values = make_inputs(frames, height, width, "cpu")["pixel_values_videos"]
    last_outputs = {}  # of the last run of each runtime, for the difference

    def run_torch() -> None:
        with torch.no_grad():
            last_outputs["torch"] = torch_model(pixel_values_videos=pixel_values, frame_chunk_size=args.chunk_size)

    def run_onnx() -> None:
        last_outputs["onnx"] = onnx_model(pixel_values_videos=pixel_values)

    timings = time_runs_interleaved({"torch": run_torch, "onnx": run_onnx}, args.repeats, args.warmup)
    pairs = [onnx / torch_ for onnx, torch_ in zip(timings["onnx"]["runs_s"], timings["torch"]["runs_s"])]
    return {
        "preset": args.preset,
        "size": [height, width],
        "padded_size": list(pixel_values.shape[-2:]),
        "num_frames": frames,
        "torch_s": timings["torch"]["total_s"],
        "onnx_s": timings["onnx"]["total_s"],
        "ratio_onnx_to_torch": timings["onnx"]["total_s"] / timings["torch"]["total_s"],
        "paired_ratio_onnx_to_torch": statistics.median(pairs),
        "torch_runs_s": timings["torch"]["runs_s"],
        "onnx_runs_s": timings["onnx"]["runs_s"],
        "max_abs_diff": max_abs_diff(last_outputs["torch"], last_outputs["onnx"]),
    }


def run(args: argparse.Namespace) -> list[dict[str, Any]]:
    """Export once, then one record per number of frames; prints a markdown table and writes `--output`."""
    torch.set_num_threads(args.threads)
    torch_model = build_video_model(args.preset, None, "cpu")
    with tempfile.TemporaryDirectory() as folder:
        onnx_model, export_seconds = export_and_load(torch_model, Path(folder), args.opset, args.threads)
        print(f"export: {export_seconds:.1f} s (opset {args.opset})", flush=True)
        records = [measure(torch_model, onnx_model, args, frames) for frames in args.frames]
    for record in records:
        record["export_s"] = export_seconds
    rows = [
        (
            record["preset"],
            "x".join(map(str, record["size"])),
            record["num_frames"],
            seconds(record["torch_s"]),
            seconds(record["onnx_s"]),
            f"{record['ratio_onnx_to_torch']:.2f}",
            f"{record['paired_ratio_onnx_to_torch']:.2f}",
            f"{record['max_abs_diff']:.1e}",
        )
        for record in records
    ]
    print(markdown_table(HEADER, rows))
    machine = {**machine_info(), "onnxruntime": onnxruntime.__version__, "threads": args.threads}
    write_records(args.output, "onnx", records, machine=machine, repeats=args.repeats, warmup=args.warmup)
    return records


def main(argv: list[str] | None = None) -> int:
    run(parse_args(argv))
    return 0


if __name__ == "__main__":
    sys.exit(main())
