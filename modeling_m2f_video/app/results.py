"""The web app's work on one video, on what the pipeline returns: the checks of an upload, the table of instances,
the overlay video and contact sheet of the instances shown, and `results.json`.

The video is segmented with the pipeline call of `m2f-video predict` (masks as compressed RLEs) and drawn with the
`visualization` functions it uses, so the app and `predict` give the same instances, pictures and records. This
module imports only modules that a folder written by `m2f-video export-hub` also holds (see `app.space`), so that
the folder runs the app as a Hugging Face Space without the package.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import UserInputError
from ..processing.video_io import VideoSource, open_video
from ..visualization import caption, select_for_display, write_contact_sheet, write_overlay_video
from ..ytvis.records import result_record
from ..ytvis.rle import rle_areas

TABLE_HEADERS = ["#", "label", "score", "frames", "mean mask area (px)"]
RESULTS_FILE = "results.json"
OVERLAY_FPS = 10.0  # as `m2f-video predict` draws its overlays
SHEET_FRAMES = 8


@dataclass
class Segmentation:
    """One segmented video: its file, the video as read for drawing, and its instances as the pipeline returns them
    (best first; `masks` one compressed RLE per frame)."""

    video: Path
    source: VideoSource
    instances: list[dict[str, Any]]


def open_upload(path: str | Path, max_frames: int) -> VideoSource:
    """The uploaded video, checked before the model runs: a readable video of at most `max_frames` frames.

    Raises a `UserInputError` that names the file as the user knows it (its name, not the upload folder).
    """
    path = Path(path)
    try:
        source = open_video(path, name=path.stem)
    except ValueError as error:
        raise UserInputError(str(error).replace(str(path), path.name)) from error
    if source.num_frames > max_frames:
        raise UserInputError(
            f"{path.name}: the video is too long ({source.num_frames} frames); this app segments videos of at most "
            f"{max_frames} frames (`m2f-video app --max-frames N` raises the limit)"
        )
    return source


def segment_upload(
    segmenter: Callable[..., list[dict[str, Any]]],
    path: str | Path,
    max_frames: int,
    top_k: int,
    threshold: float,
    mode: str,
    progress: bool = False,
) -> Segmentation:
    """Check the uploaded video and segment it with the pipeline `segmenter`, as `m2f-video predict` does.

    The pipeline is given the file, not the opened video: a Space's pipeline is the folder's remote code, which has
    its own video classes.
    """
    source = open_upload(path, max_frames)
    instances = segmenter(str(path), top_k=top_k, threshold=threshold, mode=mode, return_rle=True, progress=progress)
    return Segmentation(Path(path), source, instances)


def default_shown(segmentation: Segmentation) -> list[int]:
    """The instances drawn at first: those `select_for_display` keeps (of several with one mask, the best)."""
    kept = {id(instance) for instance in select_for_display(segmentation.instances, min_score=0.0)}
    return [index for index, instance in enumerate(segmentation.instances) if id(instance) in kept]


def instance_choices(segmentation: Segmentation) -> list[tuple[str, int]]:
    """(name, index) of each instance for the show / hide boxes: its table number, label and score."""
    return [(f"#{index + 1} {caption(instance)}", index) for index, instance in enumerate(segmentation.instances)]


def instance_rows(segmentation: Segmentation) -> list[list[Any]]:
    """The table of instances: number, label, score, the frames where its mask is not empty, mean mask area there."""
    rows = []
    for index, instance in enumerate(segmentation.instances):
        areas = rle_areas(instance["masks"])
        present = np.flatnonzero(areas)
        mean_area = round(float(areas[present].mean()), 1) if len(present) else 0.0
        rows.append([index + 1, instance["label"], round(instance["score"], 3), frame_ranges(present), mean_area])
    return rows


def frame_ranges(frames: np.ndarray) -> str:
    """Sorted frame numbers as ranges: [0, 1, 2, 5, 7, 8] -> "0-2, 5, 7-8" ("none" when empty)."""
    if len(frames) == 0:
        return "none"
    breaks = np.flatnonzero(np.diff(frames) > 1)
    starts, stops = np.r_[frames[0], frames[breaks + 1]], np.r_[frames[breaks], frames[-1]]
    return ", ".join(str(start) if start == stop else f"{start}-{stop}" for start, stop in zip(starts, stops))


def draw(segmentation: Segmentation, shown: list[int], folder: Path) -> tuple[Path, Path]:
    """Write the overlay video and the contact sheet of the `shown` instances (indices) into `folder`."""
    instances = [segmentation.instances[index] for index in sorted(set(shown))]
    stem = segmentation.video.stem
    overlay = write_overlay_video(folder / f"{stem}_overlay.mp4", segmentation.source, instances, fps=OVERLAY_FPS)
    sheet = write_contact_sheet(folder / f"{stem}_sheet.png", segmentation.source, instances, num_frames=SHEET_FRAMES)
    return overlay, sheet


def write_results(segmentation: Segmentation, folder: Path) -> Path:
    """Write the video's `results.json`: every instance as a YouTube-VIS result record, as `m2f-video predict` writes
    it for a run on this one video (`video_id` 0, null where a mask is empty)."""
    records = [
        result_record(
            0,
            instance["label_id"],
            instance["score"],
            [rle if area else None for rle, area in zip(instance["masks"], rle_areas(instance["masks"]))],
        )
        for instance in segmentation.instances
    ]
    path = folder / RESULTS_FILE
    path.write_text(json.dumps(records), encoding="utf-8")
    return path
