"""Inference benchmark: time per video and per frame, split by part, and peak memory, against two baselines.

For every (preset, input size, number of frames, precision) it measures, on random weights of the preset's size:

- **ours**: the video model on the whole clip (backbone + pixel decoder in chunks of `--chunk-size` frames, only
  the last mask volume kept) followed by the processor's post-processing (upsamples only the top-k queries);
  the time is split into backbone, pixel decoder, transformer decoder, post-processing and the rest;
- **image per frame** (`--image-baseline`): the same weights loaded into transformers' image
  `Mask2FormerForUniversalSegmentation`, run on one frame at a time: what a user would try without a video model.
  Forward passes only (its post-processing is not counted, which favours the baseline); the ratio is measured in
  the same run;
- **official-style** (`--official-style`): the path whose memory the official code has: backbone and pixel
  decoder on all frames at once, every decoder layer's mask volume kept (`output_auxiliary_logits=True`), and
  [`official_style_post_process`], which upsamples every query's mask volume to the padded size before choosing
  the top-k. Peak memory (and the time of that one run).

Peak memory is measured per configuration in a fresh process on the CPU (peak RSS, which includes weights,
inputs and libraries), and in process on CUDA (`torch.cuda.max_memory_allocated`).

    python benchmarks/bench_inference.py --presets r50 --sizes 360x640 --frames 20 --image-baseline
    python benchmarks/bench_inference.py --quick    # tiny configs, seconds: checks the code paths
"""

from __future__ import annotations

import argparse
import contextlib
import json
import statistics
import sys
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from benchmark_utils import (
    PartTimer,
    answer_as_worker,
    autocast_context,
    compile_forwards,
    gigabytes,
    machine_info,
    markdown_table,
    measure_peak_memory,
    run_worker,
    seconds,
    time_runs_interleaved,
    write_records,
)
from transformers import Mask2FormerConfig, Mask2FormerForUniversalSegmentation

from modeling_m2f_video import (
    Mask2FormerVideoConfig,
    Mask2FormerVideoForVideoInstanceSegmentation,
    Mask2FormerVideoProcessor,
)

PRESET_ALIASES = {
    "r50": "r50-ytvis2019",
    "swin-t": "swin-tiny-ytvis2019",
    "swin-l": "swin-large-ytvis2019",
}
TINY_BACKBONES = {"tiny-r50": "resnet", "tiny-swin": "swin"}
TINY_PRESETS = tuple(TINY_BACKBONES)
PRECISIONS = ("fp32", "bf16", "bf16-compile")
PARTS = ("backbone", "pixel_decoder", "transformer_decoder", "post_processing", "other")
OURS, OFFICIAL_STYLE = "ours", "official-style"
QUICK_SETTINGS = {"presets": list(TINY_PRESETS), "sizes": ["64x96"], "frames": [1, 3], "repeats": 1, "warmup": 0}


# ------------------------------------------------------------------------------------------------ models


def model_config(preset: str, chunk_size: int | None) -> Mask2FormerVideoConfig:
    """The configuration of a preset (`r50`, `swin-t`, `swin-l`, a full preset name, or `tiny-r50`/`tiny-swin`)."""
    config = (
        Mask2FormerVideoConfig.tiny(TINY_BACKBONES[preset])
        if preset in TINY_PRESETS
        else Mask2FormerVideoConfig.from_preset(PRESET_ALIASES.get(preset, preset))
    )
    config.frame_chunk_size = chunk_size
    return config


def build_video_model(
    preset: str, chunk_size: int | None, device: str, compiled: bool = False, seed: int = 0
) -> Mask2FormerVideoForVideoInstanceSegmentation:
    """The video model with seeded random weights (every process gets the same ones), in eval mode."""
    torch.manual_seed(seed)
    model = Mask2FormerVideoForVideoInstanceSegmentation(model_config(preset, chunk_size)).eval().to(device)
    if compiled:
        compile_forwards(list(video_parts(model).values()))
    return model


def build_image_model(
    video_model: Mask2FormerVideoForVideoInstanceSegmentation, compiled: bool = False
) -> Mask2FormerForUniversalSegmentation:
    """transformers' image Mask2Former holding exactly the video model's weights (the state-dict keys match)."""
    settings = video_model.config.to_dict()
    settings.pop("model_type")
    model = Mask2FormerForUniversalSegmentation(Mask2FormerConfig(**settings))
    model.load_state_dict(video_model.state_dict())
    model = model.eval().to(video_model.device)
    if compiled:
        compile_forwards(list(image_parts(model).values()))
    return model


def video_parts(model: Mask2FormerVideoForVideoInstanceSegmentation) -> dict[str, torch.nn.Module]:
    """The timed submodules of the video model."""
    return {
        "backbone": model.model.pixel_level_module.encoder,
        "pixel_decoder": model.model.pixel_level_module.decoder,
        "transformer_decoder": model.model.transformer_module,
    }


def image_parts(model: Mask2FormerForUniversalSegmentation) -> dict[str, torch.nn.Module]:
    """The timed submodules of the image model (same names as the video model's)."""
    return {
        "backbone": model.model.pixel_level_module.encoder,
        "pixel_decoder": model.model.pixel_level_module.decoder,
        "transformer_decoder": model.model.transformer_module,
    }


# ------------------------------------------------------------------------------------------------ inputs


def parse_size(text: str) -> tuple[int, int]:
    """`"360x640"` -> (360, 640) (height x width)."""
    height, width = (int(side) for side in text.lower().split("x"))
    return height, width


def make_inputs(num_frames: int, height: int, width: int, device: str, seed: int = 0) -> dict[str, torch.Tensor]:
    """A random (T, H, W, 3) uint8 video through the processor, not resized: normalised and padded to a multiple of 32."""
    video = np.random.default_rng(seed).integers(0, 256, (num_frames, height, width, 3), dtype=np.uint8)
    inputs = Mask2FormerVideoProcessor()(video, do_resize=False, return_tensors="pt")
    return {name: tensor.to(device) for name, tensor in inputs.items()}


# ------------------------------------------------------------------------------------------------ post-processing


def official_style_post_process(
    outputs: Any, target_sizes: torch.Tensor, resized_sizes: torch.Tensor, top_k: int = 10
) -> list[dict[str, torch.Tensor]]:
    """BASELINE, for memory comparison only: the official code's order of post-processing.

    Every query's mask volume is first upsampled to the padded input size (Q x T x Hp x Wp floats), then the top-k
    (query, class) pairs are chosen and only their volumes are cropped to the resized size, resized to the target
    size and thresholded. The result equals [`Mask2FormerVideoProcessor.post_process_video_instance_segmentation`]
    (the tests check it); only the memory and time differ.
    """
    class_logits, mask_logits = outputs.class_queries_logits, outputs.masks_queries_logits
    num_classes = class_logits.shape[-1] - 1
    padded_size = (4 * mask_logits.shape[-2], 4 * mask_logits.shape[-1])
    results = []
    for index in range(len(class_logits)):
        all_volumes = F.interpolate(mask_logits[index].float(), size=padded_size, mode="bilinear", align_corners=False)
        scores = class_logits[index].float().softmax(-1)[:, :-1].flatten()
        top_scores, top_indices = scores.topk(min(top_k, scores.numel()), sorted=True)
        query_indices = top_indices // num_classes
        resized_height, resized_width = (int(side) for side in resized_sizes[index])
        kept = all_volumes[query_indices, :, :resized_height, :resized_width]
        height, width = (int(side) for side in target_sizes[index])
        kept = F.interpolate(kept, size=(height, width), mode="bilinear", align_corners=False)
        results.append(
            {
                "scores": top_scores,
                "labels": top_indices % num_classes,
                "query_indices": query_indices,
                "masks": kept > 0,
            }
        )
    return results


def run_video(
    model: Mask2FormerVideoForVideoInstanceSegmentation,
    inputs: dict[str, torch.Tensor],
    path: str = OURS,
    precision: str = "fp32",
    timer: PartTimer | None = None,
) -> tuple[Any, list[dict[str, torch.Tensor]]]:
    """One video through the model and post-processing, the `ours` or the `official-style` way."""
    official = path == OFFICIAL_STYLE
    with torch.no_grad(), autocast_context(precision, model.device):
        outputs = model(inputs["pixel_values_videos"], output_auxiliary_logits=official or None)
    post_process = (
        official_style_post_process
        if official
        else Mask2FormerVideoProcessor().post_process_video_instance_segmentation
    )
    with timer.part("post_processing") if timer is not None else contextlib.nullcontext(), torch.no_grad():
        results = post_process(
            outputs,
            target_sizes=inputs["original_sizes"],
            resized_sizes=inputs["resized_sizes"],
            top_k=model.config.test_top_k,
        )
    return outputs, results


def run_image_per_frame(
    model: Mask2FormerForUniversalSegmentation, inputs: dict[str, torch.Tensor], precision: str = "fp32"
) -> list[Any]:
    """The image model on one frame at a time (forward passes only)."""
    with torch.no_grad(), autocast_context(precision, model.device):
        return [model(pixel_values=frame[None]) for frame in inputs["pixel_values_videos"][0]]


# ------------------------------------------------------------------------------------------------ parity


def topk_parity(
    reference: tuple[Any, list[dict[str, torch.Tensor]]], candidate: tuple[Any, list[dict[str, torch.Tensor]]]
) -> dict[str, float]:
    """How close a bf16 / compiled run is to the fp32 one: class-logit difference and top-k agreement.

    `topk_agreement` is the fraction of the reference's (query, label) pairs also in the candidate's top-k;
    `score_max_diff` and `mask_iou_min` compare the shared pairs.
    """
    (reference_outputs, (reference_result, *_)), (outputs, (result, *_)) = reference, candidate
    logit_diff = (outputs.class_queries_logits.float() - reference_outputs.class_queries_logits.float()).abs().max()
    reference_pairs = _pairs(reference_result)
    pairs = _pairs(result)
    shared = [pair for pair in reference_pairs if pair in pairs]
    score_diffs = [abs(reference_pairs[pair][0] - pairs[pair][0]) for pair in shared]
    ious = [_iou(reference_pairs[pair][1], pairs[pair][1]) for pair in shared]
    return {
        "class_logits_max_abs_diff": float(logit_diff),
        "topk_agreement": len(shared) / max(len(reference_pairs), 1),
        "score_max_diff": max(score_diffs, default=0.0),
        "mask_iou_min": min(ious, default=1.0),
    }


def _pairs(result: dict[str, torch.Tensor]) -> dict[tuple[int, int], tuple[float, torch.Tensor]]:
    """(query, label) -> (score, mask volume) of one video's result."""
    keys = zip(result["query_indices"].tolist(), result["labels"].tolist())
    return {key: (float(score), masks) for key, score, masks in zip(keys, result["scores"], result["masks"])}


def _iou(first: torch.Tensor, second: torch.Tensor) -> float:
    union = (first | second).sum()
    return float((first & second).sum() / union) if union else 1.0


# ------------------------------------------------------------------------------------------------ measurement


def memory_payload(case: dict[str, Any], path: str) -> dict[str, Any]:
    """What a memory worker needs to rebuild one configuration."""
    return {**case, "path": path, "threads": torch.get_num_threads()}


def measure_memory_here(payload: dict[str, Any]) -> dict[str, Any]:
    """Build the configuration, run it once, and report its peak memory and the time of that run."""
    torch.set_num_threads(payload["threads"])
    model = build_video_model(
        payload["preset"],
        payload["chunk_size"] if payload["path"] == OURS else payload["num_frames"],  # official-style: all at once
        payload["device"],
        compiled=payload["precision"].endswith("compile"),
    )
    inputs = make_inputs(payload["num_frames"], *payload["size"], payload["device"])
    return measure_run_memory(model, inputs, payload["path"], payload["precision"])


def measure_run_memory(model, inputs: dict[str, torch.Tensor], path: str, precision: str) -> dict[str, Any]:
    """Peak memory (see `measure_peak_memory`) and wall time of one run of `path`."""
    memory: dict[str, Any] = {}
    timer = PartTimer({}, model.device)
    with timer.part("run"), measure_peak_memory(model.device, memory):
        run_video(model, inputs, path, precision)
    return {**memory, "run_s": timer.seconds["run"]}


def measure_memory(case: dict[str, Any], path: str, mode: str, model=None, inputs=None) -> dict[str, Any] | None:
    """Peak memory of `path` for `case`: in a fresh process (`subprocess`), in this one (`inprocess`), or none.

    A run that fails (out of memory, most likely) gives `{"error": ...}` instead of stopping the benchmark.
    """
    if mode == "off":
        return None
    try:
        if mode == "subprocess":
            return run_worker(Path(__file__), memory_payload(case, path))
        model.config.frame_chunk_size = case["chunk_size"] if path == OURS else case["num_frames"]
        return measure_run_memory(model, inputs, path, case["precision"])
    except RuntimeError as error:  # includes torch.OutOfMemoryError
        if torch.cuda.is_available():
            torch.cuda.empty_cache()
        return {"error": str(error).strip().splitlines()[-1][:300]}
    finally:
        if model is not None:
            model.config.frame_chunk_size = case["chunk_size"]


def split_parts(timing: dict[str, Any]) -> dict[str, float]:
    """The measured parts plus `other` (class head, input checks, glue): the median total minus the parts' medians,
    at least 0 (medians do not add up exactly over several runs)."""
    parts = {name: timing["parts_s"].get(name, 0.0) for name in PARTS[:-1]}
    parts["other"] = max(timing["total_s"] - sum(parts.values()), 0.0)
    return parts


def benchmark_case(case: dict[str, Any], models: ModelCache, args: argparse.Namespace) -> dict[str, Any]:
    """Every measurement of one (preset, size, frames, precision) configuration, as one record."""
    device, precision, num_frames = case["device"], case["precision"], case["num_frames"]
    model = models.video(case["preset"], precision)
    inputs = make_inputs(num_frames, *case["size"], device)
    runs = {OURS: lambda: run_video(model, inputs, OURS, precision, timers[OURS])}
    timers = {OURS: PartTimer(video_parts(model), device)}
    if args.image_baseline:
        image_model = models.image(case["preset"], precision)
        runs["image"] = lambda: run_image_per_frame(image_model, inputs, precision)
        timers["image"] = PartTimer(image_parts(image_model), device)
    with contextlib.ExitStack() as hooks:
        for timer in timers.values():
            hooks.enter_context(timer)
        timings = time_runs_interleaved(runs, args.repeats, args.warmup, timers, device)
    record = {
        **case,
        "padded_size": list(inputs["pixel_values_videos"].shape[-2:]),
        "repeats": args.repeats,
        "warmup": args.warmup,
        **summarise(timings[OURS], num_frames),
    }
    if precision != "fp32":
        reference = run_video(models.video(case["preset"], "fp32"), inputs)
        record["parity"] = topk_parity(reference, run_video(model, inputs, OURS, precision))
    if args.image_baseline:
        record["image_per_frame"] = summarise(timings["image"], num_frames)
        forward_s = record["total_s"] - record["parts_s"]["post_processing"]
        record["ratio_to_image"] = record["total_s"] / record["image_per_frame"]["total_s"]
        record["forward_ratio_to_image"] = forward_s / record["image_per_frame"]["total_s"]
        # Each run of ours is paired with the image run that followed it: robust to load that drifts between pairs.
        record["paired_ratio_to_image"] = statistics.median(
            ours / image for ours, image in zip(record["runs_s"], record["image_per_frame"]["runs_s"])
        )
    record["memory"] = measure_memory(case, OURS, args.memory, model, inputs)
    if args.official_style:
        record["official_style"] = measure_memory(case, OFFICIAL_STYLE, args.memory, model, inputs)
        if "peak_bytes" in (record["memory"] or {}) and "peak_bytes" in record["official_style"]:
            record["memory_ratio_to_official_style"] = (
                record["memory"]["peak_bytes"] / record["official_style"]["peak_bytes"]
            )
    return record


def summarise(timing: dict[str, Any], num_frames: int) -> dict[str, Any]:
    """Median total, per frame, per part (with `other`), and every run's time."""
    return {
        "total_s": timing["total_s"],
        "per_frame_s": timing["total_s"] / num_frames,
        "parts_s": split_parts(timing),
        "runs_s": timing["runs_s"],
    }


class ModelCache:
    """Builds each (preset, eager or compiled) video model and each image model once per process."""

    def __init__(self, chunk_size: int | None, device: str):
        self.chunk_size, self.device = chunk_size, device
        self._video: dict[tuple[str, bool], Any] = {}
        self._image: dict[tuple[str, bool], Any] = {}

    def video(self, preset: str, precision: str) -> Mask2FormerVideoForVideoInstanceSegmentation:
        key = (preset, precision.endswith("compile"))
        if key not in self._video:
            self._video[key] = build_video_model(preset, self.chunk_size, self.device, compiled=key[1])
        return self._video[key]

    def image(self, preset: str, precision: str) -> Mask2FormerForUniversalSegmentation:
        key = (preset, precision.endswith("compile"))
        if key not in self._image:
            self._image[key] = build_image_model(self.video(preset, "fp32"), compiled=key[1])
        return self._image[key]


# ------------------------------------------------------------------------------------------------ report


def table(records: list[dict[str, Any]]) -> str:
    """The records as one markdown table."""
    header = [
        "preset", "input", "T", "precision", "total", "per frame", "backbone", "pixel dec.", "transf. dec.",
        "post-proc.", "image per frame", "ratio (paired)", "peak mem", "official-style peak", "mem ratio",
    ]  # fmt: skip
    rows = []
    for record in records:
        parts, image = record["parts_s"], record.get("image_per_frame")
        ratio = f"{record['ratio_to_image']:.2f} ({record['paired_ratio_to_image']:.2f})" if image else ""
        official = record.get("official_style")
        rows.append(
            [
                record["preset"], "x".join(map(str, record["size"])), record["num_frames"], record["precision"],
                seconds(record["total_s"]), seconds(record["per_frame_s"]), seconds(parts["backbone"]),
                seconds(parts["pixel_decoder"]), seconds(parts["transformer_decoder"]),
                seconds(parts["post_processing"]), seconds(image["total_s"]) if image else "", ratio,
                memory_cell(record.get("memory")),
                memory_cell(official),
                f"{record['memory_ratio_to_official_style']:.2f}" if "memory_ratio_to_official_style" in record else "",
            ]
        )  # fmt: skip
    return markdown_table(header, rows)


def memory_cell(memory: dict[str, Any] | None) -> str:
    """Peak memory and, in brackets, its increase during the run; `failed` for a run that raised."""
    if not memory:
        return ""
    if "error" in memory:
        return "failed"
    return f"{gigabytes(memory['peak_bytes'])} (+{gigabytes(memory['peak_bytes'] - memory['baseline_bytes'])})"


# ------------------------------------------------------------------------------------------------ entry points


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], allow_abbrev=False)
    parser.add_argument("--quick", action="store_true", help="tiny configs, one run each: checks the code paths")
    parser.add_argument("--presets", nargs="+", default=["r50"], help="r50, swin-t, swin-l, a preset name, tiny-r50")
    parser.add_argument("--sizes", nargs="+", default=["360x640"], help="frame sizes HxW (not resized; padded to /32)")
    parser.add_argument("--frames", nargs="+", type=int, default=[1, 5, 20, 60], help="numbers of frames T")
    parser.add_argument("--precisions", nargs="+", choices=PRECISIONS, default=["fp32"])
    parser.add_argument("--repeats", type=int, default=5, help="measured runs per case (median; >= 5 for results)")
    parser.add_argument("--warmup", type=int, default=1, help="unmeasured runs before them")
    parser.add_argument(
        "--chunk-size", type=int, default=4, help="frame_chunk_size of ours (0: the model's default for the device)"
    )
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--threads", type=int, help="torch CPU threads (default: torch's)")
    parser.add_argument("--image-baseline", action="store_true", help="also time the image model frame by frame")
    parser.add_argument("--official-style", action="store_true", help="also measure the official-style path's memory")
    parser.add_argument(
        "--memory", choices=["auto", "subprocess", "inprocess", "off"], default="auto",
        help="peak memory: fresh process per case (CPU default), in process (CUDA and --quick default), or off",
    )  # fmt: skip
    parser.add_argument("--output", help="write the records as JSON here")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    return parser


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Parse the command line; `--quick` makes tiny presets, sizes, frames and one run the defaults."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.quick:  # tiny settings become the defaults; options given explicitly still win
        parser.set_defaults(**QUICK_SETTINGS)
        args = parser.parse_args(argv)
    if args.memory == "auto":  # quick runs stay in process: a fresh process per tiny case costs more than it
        fresh = torch.device(args.device).type == "cpu" and not args.quick
        args.memory = "subprocess" if fresh else "inprocess"
    if args.threads:
        torch.set_num_threads(args.threads)
    return args


def cases(args: argparse.Namespace) -> list[dict[str, Any]]:
    """The configurations to measure, grouped by preset and precision so that each model is built once."""
    return [
        {
            "preset": preset,
            "size": list(parse_size(size)),
            "num_frames": num_frames,
            "precision": precision,
            "device": args.device,
            "chunk_size": args.chunk_size or None,
        }
        for preset in args.presets
        for precision in args.precisions
        for size in args.sizes
        for num_frames in args.frames
    ]


def run(args: argparse.Namespace) -> list[dict[str, Any]]:
    """Measure every case, print the table and write the records; returns the records."""
    if torch.device(args.device).type == "cuda" and not torch.cuda.is_available():
        raise SystemExit("--device cuda was asked for, but CUDA is not available")
    models = ModelCache(args.chunk_size or None, args.device)
    machine = machine_info(args.device)
    records = []
    for case in cases(args):
        records.append(benchmark_case(case, models, args))
        print(table(records[-1:]).splitlines()[-1], flush=True)
        write_records(args.output, "inference", records, machine=machine)  # after every case: survives a timeout
    print(f"\n{machine}\n\n{table(records)}")
    return records


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.worker:
        answer_as_worker(measure_memory_here(json.loads(args.worker)))
        return 0
    run(args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
