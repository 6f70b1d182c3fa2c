"""Achieved GFLOP/s of CPU inference, whole model and per part, against the fp32 GEMM peak of the same cores.

For a preset, a frame size and a number of frames (random uint8 frames at the model-side size, the processor's
normalisation and padding, default model configuration, top-k post-processing), in one process:

- **FLOPs** of every part (backbone, pixel decoder, transformer decoder; the class head counts with the whole
  model) from torch's `FlopCounterMode` on one run, with the CPU fast paths switched off for the count
  (`reference_cpu_paths`: the same matrix products and convolutions, in transformers' operators, which the counter
  knows). As in `/work/shared/ANCHORS.md`, only matrix products, convolutions and attention count; elementwise
  work, normalisation, interpolation and the deformable bilinear sampling (about 0.7 GFLOP per 384x640 frame)
  do not. Post-processing therefore counts (almost) zero FLOPs; its time is reported;
- **time** of every part: median over `--repeats` runs after `--warmup`, through forward hooks
  (`benchmark_utils.PartTimer`);
- **peak**: the median GFLOP/s of a `--gemm-size`² fp32 matrix product with the same torch threads, through
  `torch.matmul` and through oneDNN, measured before and after the model runs; the largest median is the peak
  (all are recorded, and the utilisation of the `torch.matmul` peak too: on AMD CPUs MKL's product reaches about
  half of oneDNN's);
- **utilisation** = achieved GFLOP/s / peak, per part and overall.

    python benchmarks/bench_utilisation.py --presets r50 --frames 5 20 --output benchmarks/results/cpu_utilisation.json
    python benchmarks/bench_utilisation.py --quick     # tiny config, seconds: checks the code path
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from typing import Any

import numpy as np
import torch
from benchmark_utils import PartTimer, machine_info, markdown_table, time_runs, write_records
from torch.utils.flop_counter import FlopCounterMode

from modeling_m2f_video import (
    Mask2FormerVideoConfig,
    Mask2FormerVideoForVideoInstanceSegmentation,
    Mask2FormerVideoProcessor,
)
from modeling_m2f_video.deformable_attention import reference_cpu_paths

PRESET_ALIASES = {"r50": "r50-ytvis2019", "swin-t": "swin-tiny-ytvis2019", "tiny": None}
PARTS = ("backbone", "pixel_decoder", "transformer_decoder")
MODULE_PATHS = {
    "backbone": "model.pixel_level_module.encoder",
    "pixel_decoder": "model.pixel_level_module.decoder",
    "transformer_decoder": "model.transformer_module",
}


def gemm_peak_gflops(size: int, repeats: int = 7) -> dict[str, float]:
    """Median GFLOP/s of an fp32 `size x size` by `size x size` matrix product (2·size³ FLOPs), after one warm-up,
    through `torch.matmul` (MKL on x86) and through oneDNN (the library of the convolutions and of the pixel
    decoder's fused linears); on AMD CPUs the two differ by about 2x, and the faster one is the cores' peak."""
    left, right = torch.randn(size, size), torch.randn(size, size)
    products = {"matmul": lambda: left @ right}
    if torch.backends.mkldnn.is_available():
        products["onednn"] = lambda: torch.ops.mkldnn._linear_pointwise(left, right, None, "none", [], "")
    rates = {}
    for name, product in products.items():
        product()
        samples = []
        for _ in range(repeats):
            start = time.perf_counter()
            product()
            samples.append(2 * size**3 / (time.perf_counter() - start) / 1e9)
        rates[name] = statistics.median(samples)
    return rates


def build(preset: str) -> tuple[Mask2FormerVideoForVideoInstanceSegmentation, Mask2FormerVideoProcessor]:
    torch.manual_seed(0)
    name = PRESET_ALIASES.get(preset, preset)
    config = Mask2FormerVideoConfig.tiny("resnet") if name is None else Mask2FormerVideoConfig.from_preset(name)
    model = Mask2FormerVideoForVideoInstanceSegmentation(config).eval()
    return model, Mask2FormerVideoProcessor.from_model_config(config)


def count_flops(model: Mask2FormerVideoForVideoInstanceSegmentation, pixel_values: torch.Tensor) -> dict[str, int]:
    """FLOPs of the whole model and of each part on one forward pass (transformers' operators: see the module doc)."""
    with torch.no_grad(), reference_cpu_paths(), FlopCounterMode(display=False) as counter:
        model(pixel_values_videos=pixel_values)
    counts = {name: sum(per_op.values()) for name, per_op in counter.get_flop_counts().items()}
    prefix = type(model).__name__
    flops = {part: counts.get(f"{prefix}.{path}", 0) for part, path in MODULE_PATHS.items()}
    flops["model"] = counts.get(prefix, counts.get("Global", 0))
    return flops


def measure(preset: str, num_frames: int, size: tuple[int, int], args: argparse.Namespace) -> dict[str, Any]:
    model, processor = build(preset)
    frames = np.random.default_rng(0).integers(0, 256, (num_frames, *size, 3), dtype=np.uint8)
    peak_before = gemm_peak_gflops(args.gemm_size)
    flops = count_flops(model, processor(frames, do_resize=False, return_tensors="pt")["pixel_values_videos"])
    timer = PartTimer({part: model.get_submodule(path) for part, path in MODULE_PATHS.items()})

    def run() -> None:
        with torch.no_grad():
            with timer.part("preprocessing"):
                inputs = processor(frames, do_resize=False, return_tensors="pt")
            outputs = model(pixel_values_videos=inputs["pixel_values_videos"])
            with timer.part("post_processing"):
                processor.post_process_video_instance_segmentation(
                    outputs, target_sizes=inputs["original_sizes"], resized_sizes=inputs["resized_sizes"]
                )

    with timer:
        timing = time_runs(run, args.repeats, args.warmup, timer)
    peak_after = gemm_peak_gflops(args.gemm_size)
    peak = max(*peak_before.values(), *peak_after.values())
    matmul_peak = max(peak_before["matmul"], peak_after["matmul"])
    parts = {}
    for part in (*PARTS, "post_processing", "preprocessing"):
        seconds = timing["parts_s"].get(part, 0.0)
        part_flops = flops.get(part, 0)
        rate = part_flops / seconds / 1e9 if seconds else 0.0
        parts[part] = {"seconds": seconds, "gflop": part_flops / 1e9, "gflops_per_s": rate, "utilisation": rate / peak}
    whole_rate = flops["model"] / timing["total_s"] / 1e9
    return {
        "preset": preset,
        "frames": num_frames,
        "size": list(size),
        "total_s": timing["total_s"],
        "runs_s": timing["runs_s"],
        "gflop": flops["model"] / 1e9,
        "gflop_per_frame": flops["model"] / 1e9 / num_frames,
        "gflops_per_s": whole_rate,
        "utilisation": whole_rate / peak,
        "gemm_peak_gflops_per_s": peak,
        "matmul_peak_gflops_per_s": matmul_peak,
        "utilisation_of_matmul_peak": whole_rate / matmul_peak,
        "gemm_peak_before_after": [peak_before, peak_after],
        "parts": parts,
    }


def report(records: list[dict[str, Any]]) -> str:
    header = ["preset", "T", "time", "GFLOP", "GFLOP/s (util.)", "GEMM peak (matmul peak, util.)"] + [
        f"{part} s / GFLOP/s (util.)" for part in (*PARTS, "post_processing")
    ]
    rows = []
    for record in records:
        row = [
            record["preset"],
            record["frames"],
            f"{record['total_s']:.2f} s",
            f"{record['gflop']:.0f}",
            f"{record['gflops_per_s']:.0f} ({record['utilisation']:.0%})",
            f"{record['gemm_peak_gflops_per_s']:.0f} ({record['matmul_peak_gflops_per_s']:.0f}, "
            f"{record['utilisation_of_matmul_peak']:.0%})",
        ]
        for part in (*PARTS, "post_processing"):
            entry = record["parts"][part]
            row.append(f"{entry['seconds']:.2f} / {entry['gflops_per_s']:.0f} ({entry['utilisation']:.0%})")
        rows.append(row)
    return markdown_table(header, rows)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--presets", nargs="+", default=["r50"], help="r50, swin-t, tiny or a preset name")
    parser.add_argument("--frames", nargs="+", type=int, default=[5, 20])
    parser.add_argument("--size", default="360x640", help="frame size HxW (not resized; padded to a multiple of 32)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--threads", type=int, default=2, help="torch CPU threads")
    parser.add_argument("--gemm-size", type=int, default=2048)
    parser.add_argument("--quick", action="store_true", help="tiny config, 2 frames of 64x96, one run")
    parser.add_argument("--output", help="write every record as JSON")
    args = parser.parse_args(argv)
    if args.quick:
        args.presets, args.frames, args.size, args.repeats, args.warmup, args.gemm_size = (
            ["tiny"],
            [2],
            "64x96",
            1,
            0,
            256,
        )
    torch.set_num_threads(args.threads)
    size = tuple(int(side) for side in args.size.lower().split("x"))
    records = [measure(preset, num_frames, size, args) for preset in args.presets for num_frames in args.frames]
    print(report(records))
    write_records(args.output, "utilisation", records, machine=machine_info())
    return 0


if __name__ == "__main__":
    sys.exit(main())
