"""Batch prediction: segment many videos, split across Accelerate processes, and write YouTube-VIS results,
overlay videos and contact sheets (the library behind `m2f-video predict`).

Over many videos the work is split across processes: run the same command under `accelerate launch` (for
example `accelerate launch --num_processes 2 -m modeling_m2f_video.cli predict ...` on two GPUs; on a machine
without GPUs add `--multi_gpu`, which starts the processes with torchrun and the gloo backend). Each process
segments its share of the videos (Accelerate's `split_between_processes`) and draws their pictures; the main
process gathers the predictions and writes the JSON files. With several machines, OUT must be on a shared file
system.

Files written to OUT:
- `results.json`: the YouTube-VIS submission, `[{video_id, category_id, score, segmentations}]`, one
  compressed RLE per frame (null where the mask is empty); `video_id` is the video's index in the input list
  and `category_id` the model's label id + 1 (`ytvis.records`);
- `videos.json`: the index -> video mapping (`id`, `name`, `path`, size and length, picture files, the
  process that segmented it, and the error for a video that could not be read) and the categories;
- `<video>_overlay.mp4` and `<video>_sheet.png`: each instance in its own colour with its label and score.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from accelerate import PartialState
from accelerate.utils import gather_object
from tqdm.auto import tqdm
from transformers import pipeline

from .demo import resolve_model_path
from .pipeline_video_instance_segmentation import TASK
from .processing.video_io import open_video
from .registration import register
from .visualization import select_for_display, write_contact_sheet, write_overlay_video
from .ytvis.records import result_record
from .ytvis.rle import rle_areas


def predict_videos(
    videos: Sequence[Any],
    model: str,
    output: str | Path,
    names: Sequence[str] | None = None,
    top_k: int | None = None,
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
    """YouTube-VIS result records of one video's pipeline instances (masks as RLEs; null where a mask is empty)."""
    return [
        result_record(
            video_id,
            instance["label_id"],
            instance["score"],
            [rle if area else None for rle, area in zip(instance["masks"], rle_areas(instance["masks"]))],
        )
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
    register()
    return pipeline(TASK, model=model_path, device=device, dtype=getattr(torch, dtype) if dtype else None)
