"""`m2f-video predict`: segment videos and write YouTube-VIS results, overlay videos and contact sheets.

Over many videos the work is split across processes: run the same command under `accelerate launch` (for
example `accelerate launch --num_processes 2 -m modeling_m2f_video.cli predict ...` on two GPUs; on a machine
without GPUs add `--multi_gpu`, which starts the processes with torchrun and the gloo backend). Each process segments its share of the videos (Accelerate's
`split_between_processes`) and draws their pictures; the main process gathers the predictions and writes
the JSON files. With several machines, OUT must be on a shared file system.

Files written to OUT:
- `results.json`: the YouTube-VIS submission, `[{video_id, category_id, score, segmentations}]`, one
  compressed RLE per frame (null where the mask is empty); `video_id` is the video's index in the input list
  and `category_id` the model's label id + 1;
- `videos.json`: the index -> video mapping (`id`, `name`, `path`, size and length, picture files, the
  process that segmented it, and the error for a video that could not be read) and the categories;
- `<video>_overlay.mp4` and `<video>_sheet.png`: each instance in its own colour with its label and score.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from accelerate import PartialState
from accelerate.utils import gather_object
from pycocotools import mask as mask_utils
from tqdm.auto import tqdm
from transformers import pipeline

from ..model_paths import resolve_model_path
from ..pipeline_video_instance_segmentation import TASK, register_pipeline
from ..video_io import list_videos, open_video
from ..visualization import select_for_display, write_contact_sheet, write_overlay_video


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the `predict` subcommand."""
    parser = subparsers.add_parser(
        "predict",
        help="segment videos; write YouTube-VIS JSON, overlay videos and contact sheets",
        description=(
            "Segment one or more videos (files, folders of frames, folders of videos, or .txt lists of paths) "
            "and write OUT/results.json (YouTube-VIS format), OUT/videos.json (video_id -> video), "
            "OUT/<video>_overlay.mp4 and OUT/<video>_sheet.png. Under `accelerate launch` the videos are split "
            "across the processes."
        ),
    )
    parser.add_argument("inputs", nargs="+", metavar="VIDEO_OR_FOLDER", help="video files, frame folders or lists")
    parser.add_argument("--model", required=True, help="model folder, or 'demo' for the shipped demo model")
    parser.add_argument("--output", required=True, help="folder to write the results into")
    parser.add_argument("--top-k", type=int, default=10, help="most instances per video (default 10)")
    parser.add_argument("--threshold", type=float, default=0.0, help="keep instances scoring above this (default 0)")
    parser.add_argument(
        "--mode",
        choices=("auto", "whole", "clip"),
        help="whole video at once, clip by clip, or auto: clip by clip above --long-video-threshold frames "
        "(default auto; clip when --clip-length is given)",
    )
    parser.add_argument("--clip-length", type=int, help="window length of clip-by-clip inference (default 32)")
    parser.add_argument("--clip-overlap", type=int, default=8, help="frames shared by windows (default 8)")
    parser.add_argument(
        "--long-video-threshold", type=int, default=64, help="auto mode: clip by clip above this length (default 64)"
    )
    parser.add_argument("--frame-stride", type=int, default=1, help="use every n-th frame (default 1)")
    parser.add_argument("--max-frames", type=int, help="use at most this many frames per video")
    parser.add_argument("--device", help="device for the model (default: the process's accelerator or cpu)")
    parser.add_argument("--dtype", choices=("float32", "float16", "bfloat16"), help="model dtype (default float32)")
    parser.add_argument("--fps", type=float, default=10.0, help="frame rate of the overlay videos (default 10)")
    parser.add_argument(
        "--overlay-threshold",
        type=float,
        default=0.5,
        help=(
            "draw only instances scoring at least this in the pictures (default 0.5), and of several instances with"
            " the same mask only the best; results.json keeps all"
        ),
    )
    parser.add_argument("--sheet-frames", type=int, default=8, help="frames on the contact sheet (default 8)")
    parser.add_argument("--no-pictures", action="store_true", help="write only the JSON files")
    parser.add_argument("--no-progress", action="store_true", help="do not show progress bars")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Run `predict_videos` on the inputs and print where the results are (on the main process)."""
    try:
        videos = [video for path in args.inputs for video in list_videos(path)]
        mode = args.mode or ("clip" if args.clip_length is not None else "auto")
        summary = predict_videos(
            videos,
            model=args.model,
            output=args.output,
            top_k=args.top_k,
            threshold=args.threshold,
            mode=mode,
            clip_length=args.clip_length or 32,
            clip_overlap=args.clip_overlap,
            long_video_threshold=args.long_video_threshold,
            frame_stride=args.frame_stride,
            max_frames=args.max_frames,
            device=args.device,
            dtype=args.dtype,
            fps=args.fps,
            overlay_threshold=args.overlay_threshold,
            sheet_frames=args.sheet_frames,
            pictures=not args.no_pictures,
            progress=not args.no_progress,
        )
    except (ValueError, FileNotFoundError) as error:
        print(f"predict: error: {error}", file=sys.stderr)
        return 2
    if summary is None:  # not the main process
        return 0
    print_summary(summary)
    return 1 if any(video.get("error") for video in summary["videos"]) else 0


def print_summary(summary: dict) -> None:
    """Where the files are, and which videos failed."""
    output = Path(summary["output"])
    print(f"results: {output / 'results.json'} ({len(summary['results'])} instances)")
    print(f"videos:  {output / 'videos.json'}")
    for video in summary["videos"]:
        if video.get("error"):
            print(f"error: {video['error']}", file=sys.stderr)
        for key in ("overlay", "sheet"):
            if video.get(key):
                print(f"{key}: {output / video[key]}")


def predict_videos(
    videos: Sequence[Any],
    model: str,
    output: str | Path,
    names: Sequence[str] | None = None,
    top_k: int = 10,
    threshold: float = 0.0,
    mode: str = "auto",
    clip_length: int = 32,
    clip_overlap: int = 8,
    long_video_threshold: int = 64,
    frame_stride: int = 1,
    max_frames: int | None = None,
    device: str | None = None,
    dtype: str | None = None,
    fps: float = 10.0,
    overlay_threshold: float = 0.5,
    sheet_frames: int = 8,
    pictures: bool = True,
    progress: bool = True,
) -> dict | None:
    """Segment `videos` (anything `open_video` accepts), split across the Accelerate processes.

    Writes `results.json` and `videos.json` (main process) and the pictures of each video (the process that
    segmented it) into `output`. A video that cannot be read is reported in `videos.json` with its error and
    does not stop the others. Returns the summary `{"output", "videos", "results"}` on the main process and
    None on the others.
    """
    state = _process_state(device)
    output = Path(output)
    output.mkdir(parents=True, exist_ok=True)
    names = unique_names(videos) if names is None else list(names)
    segmenter = _build_pipeline(resolve_model_path(model), device or str(state.device), dtype)
    call_options = {
        "top_k": top_k,
        "threshold": threshold,
        "mode": mode,
        "clip_length": clip_length,
        "clip_overlap": clip_overlap,
        "long_video_threshold": long_video_threshold,
        "return_rle": True,
        "progress": progress and state.is_local_main_process,
    }
    picture_options = {"fps": fps, "overlay_threshold": overlay_threshold, "sheet_frames": sheet_frames}
    work = list(enumerate(zip(videos, names)))
    outcomes = []
    with state.split_between_processes(work) as share:
        bar = tqdm(share, desc="videos", disable=not progress or not state.is_local_main_process)
        for index, (video, name) in bar:
            outcomes.append(
                _predict_one(
                    segmenter,
                    index,
                    video,
                    name,
                    output,
                    frame_stride,
                    max_frames,
                    call_options,
                    picture_options if pictures else None,
                )
            )
    outcomes = gather_object(outcomes)
    summary = None
    if state.is_main_process:
        summary = _write_json(output, sorted(outcomes, key=lambda o: o["video"]["id"]), segmenter.model.config)
    state.wait_for_everyone()
    return summary


def unique_names(videos: Sequence[Any]) -> list[str]:
    """A file-name-safe name per video: its file or folder stem, with `_<index>` added where stems repeat."""
    stems = [
        Path(str(video)).stem if isinstance(video, (str, Path)) else f"video_{i}" for i, video in enumerate(videos)
    ]
    counts = Counter(stems)
    return [stem if counts[stem] == 1 else f"{stem}_{i}" for i, stem in enumerate(stems)]


def to_records(video_id: int, instances: list[dict]) -> list[dict]:
    """YouTube-VIS result records of one video's instances (masks as RLEs; null where a mask is empty)."""
    return [
        {
            "video_id": video_id,
            "category_id": instance["label_id"] + 1,
            "score": instance["score"],
            "segmentations": [rle if _rle_area(rle) > 0 else None for rle in instance["masks"]],
        }
        for instance in instances
    ]


def _predict_one(
    segmenter,
    index: int,
    video: Any,
    name: str,
    output: Path,
    frame_stride: int,
    max_frames: int | None,
    call_options: dict,
    picture_options: dict | None,
) -> dict:
    """Segment one video and draw its pictures; a video that cannot be read gives an entry with its error."""
    entry = {"id": index, "name": name, "path": str(video) if isinstance(video, (str, Path)) else None}
    entry["process"] = PartialState().process_index  # the state `predict_videos` set up
    try:
        source = open_video(video, frame_stride=frame_stride, max_frames=max_frames, name=name)
        entry.update(length=source.num_frames, height=source.height, width=source.width)
        instances = segmenter(source, **call_options)
        if picture_options is not None:
            shown = select_for_display(instances, min_score=picture_options["overlay_threshold"])
            overlay = write_overlay_video(
                output / f"{name}_overlay.mp4",
                source,
                shown,
                fps=picture_options["fps"],
                progress=call_options["progress"],
            )
            sheet = write_contact_sheet(
                output / f"{name}_sheet.png", source, shown, num_frames=picture_options["sheet_frames"]
            )
            entry.update(overlay=overlay.name, sheet=sheet.name)
    except ValueError as error:
        return {"video": {**entry, "error": str(error)}, "records": []}
    return {"video": entry, "records": to_records(index, instances)}


def _write_json(output: Path, outcomes: list[dict], config) -> dict:
    """Write results.json and videos.json; return the summary."""
    results = [record for outcome in outcomes for record in outcome["records"]]
    videos = [outcome["video"] for outcome in outcomes]
    categories = [{"id": label + 1, "name": name} for label, name in sorted(config.id2label.items())]
    (output / "results.json").write_text(json.dumps(results))
    (output / "videos.json").write_text(json.dumps({"videos": videos, "categories": categories}, indent=1))
    return {"output": str(output), "videos": videos, "results": results}


def _process_state(device: str | None) -> PartialState:
    """Accelerate's view of the launched processes.

    Without an accelerator (or with `--device cpu`) it must be asked for the CPU state: only that one joins
    the processes that `accelerate launch` started (with the gloo backend); otherwise each would run alone.
    """
    return PartialState(cpu=device == "cpu" or not torch.accelerator.is_available())


def _build_pipeline(model_path: str, device: str, dtype: str | None):
    """The video instance segmentation pipeline of a model folder."""
    register_pipeline()
    return pipeline(TASK, model=model_path, device=device, dtype=getattr(torch, dtype) if dtype else None)


def _rle_area(rle: dict) -> int:
    return int(mask_utils.area({"size": rle["size"], "counts": rle["counts"].encode("ascii")}))
