"""`m2f-video demo`: segment a generated video with the shipped demo model, with no downloads.

The video is drawn by the project's synthetic generator with a seed the demo model was not trained on; the
command writes the same files as `m2f-video predict` (plus the input video) and prints where they are,
and how well each generated object was found (its mask IoU with the best predicted instance).
"""

from __future__ import annotations

import argparse
import itertools
import sys
from pathlib import Path

import numpy as np
from transformers import AutoConfig

from ..model_paths import resolve_model_path
from ..pipeline_video_instance_segmentation import decode_rle
from ..processing.synthetic import SyntheticVideo, category_names, generate_video
from ..video_io import write_video
from .predict import predict_videos, print_summary

DEMO_SEED = 20240917  # not a seed of the demo model's training data
DEMO_VIDEO_NAME = "demo_video"
DEMO_MIN_OBJECTS = 3  # the default demo video shows several objects, so tracking and occlusion are visible


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the `demo` subcommand."""
    parser = subparsers.add_parser(
        "demo",
        help="segment a generated video with the shipped demo model (no downloads)",
        description=(
            "Generate a synthetic video, segment it with the demo model that ships with the package, and write "
            "OUTPUT/demo_video.mp4 (the input), OUTPUT/results.json, OUTPUT/videos.json, "
            "OUTPUT/demo_video_overlay.mp4 and OUTPUT/demo_video_sheet.png."
        ),
    )
    parser.add_argument("--output", default="m2f-video-demo", help="folder to write into (default m2f-video-demo)")
    parser.add_argument("--frames", type=int, default=24, help="frames of the generated video (default 24)")
    # The demo model was trained on 96x128 synthetic videos (see demo_model/README.md).
    parser.add_argument("--height", type=int, default=96, help="frame height (default 96)")
    parser.add_argument("--width", type=int, default=128, help="frame width (default 128)")
    parser.add_argument(
        "--video-index",
        type=int,
        help=f"which generated video to use (default: the first with at least {DEMO_MIN_OBJECTS} objects)",
    )
    parser.add_argument("--threshold", type=float, default=0.5, help="keep instances scoring above this (default 0.5)")
    parser.add_argument("--device", help="device for the model (default cpu, or the accelerator)")
    parser.add_argument("--no-progress", action="store_true", help="do not show progress bars")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Generate, segment, write, and print where everything is."""
    try:
        model_path = resolve_model_path("demo")
    except FileNotFoundError as error:
        print(f"demo: error: {error}", file=sys.stderr)
        return 2
    num_classes = AutoConfig.from_pretrained(model_path).num_labels
    video = demo_video(
        args.video_index, num_frames=args.frames, height=args.height, width=args.width, num_classes=num_classes
    )
    output = Path(args.output)
    output.mkdir(parents=True, exist_ok=True)
    input_path = write_video(output / f"{DEMO_VIDEO_NAME}.mp4", video.frames)
    summary = predict_videos(
        [video.frames],
        model=model_path,
        output=output,
        names=[DEMO_VIDEO_NAME],
        threshold=args.threshold,
        overlay_threshold=args.threshold,
        device=args.device,
        progress=not args.no_progress,
    )
    print(f"input:   {input_path}")
    print_summary(summary)
    print_ground_truth_match(video, summary["results"], category_names(num_classes))
    return 0


def demo_video(index: int | None, **video_options) -> SyntheticVideo:
    """Generated video `index`, or by default the first one with at least `DEMO_MIN_OBJECTS` objects."""
    if index is not None:
        return generate_video(index, seed=DEMO_SEED, **video_options)
    return next(
        video
        for video in (generate_video(i, seed=DEMO_SEED, **video_options) for i in itertools.count())
        if len(video.labels) >= DEMO_MIN_OBJECTS
    )


def print_ground_truth_match(video: SyntheticVideo, results: list[dict], names: list[str]) -> None:
    """For each generated object, the predicted instance that covers it best and their mask IoU."""
    predictions = [_decode_track(record, video.masks.shape[1:]) for record in results]
    print(f"ground truth: {len(video.labels)} objects")
    for index, (mask, label) in enumerate(zip(video.masks, video.labels)):
        ious = [volume_iou(mask, predicted) for predicted in predictions]
        best = int(np.argmax(ious)) if ious else None
        found = (
            f"best instance: {names[results[best]['category_id'] - 1]} (score {results[best]['score']:.2f}), "
            f"mask IoU {ious[best]:.2f}"
            if best is not None
            else "no instance predicted"
        )
        print(f"  object {index} ({names[label]}): {found}")


def volume_iou(first: np.ndarray, second: np.ndarray) -> float:
    """IoU of two (T, H, W) bool mask volumes (0 when both are empty)."""
    union = np.logical_or(first, second).sum()
    return float(np.logical_and(first, second).sum() / union) if union else 0.0


def _decode_track(record: dict, shape: tuple[int, int, int]) -> np.ndarray:
    """A result record's (T, H, W) bool masks (empty where the segmentation is null)."""
    masks = np.zeros(shape, dtype=bool)
    for frame, rle in enumerate(record["segmentations"]):
        if rle is not None:
            masks[frame] = decode_rle(rle)
    return masks
