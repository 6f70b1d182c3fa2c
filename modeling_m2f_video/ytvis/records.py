"""YouTube-VIS result records: what every path that writes predictions (batch prediction, training evaluation,
the metric's callers) turns instances into, and the submission zip of the evaluation server.

A record is `{video_id, category_id, score, segmentations}` with one compressed RLE per frame, null where the
mask is empty. One rule maps a model label to a category id: through `label_to_category` when the data set
gives its own ids, else `label + 1` (the YouTube-VIS convention: categories numbered from 1 in label order).
"""

from __future__ import annotations

import json
import zipfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from .rle import encode_track

SUBMISSION_MEMBER = "results.json"  # the file the YouTube-VIS server reads from a submission zip

LabelToCategory = Mapping[int, int] | Sequence[int] | None


def category_id(label: int, label_to_category: LabelToCategory = None, video_id: Any = None) -> int:
    """The data set's category id of a 0-based model label (`label + 1` without a mapping)."""
    if label_to_category is None:
        return int(label) + 1
    try:
        return int(label_to_category[int(label)])
    except (KeyError, IndexError) as error:
        raise ValueError(f"video {video_id}: label {label} has no category id") from error


def result_record(
    video_id: int,
    label: int,
    score: float,
    segmentations: list[dict | None],
    label_to_category: LabelToCategory = None,
) -> dict:
    """One instance as a YouTube-VIS result record (`segmentations`: an RLE or None per frame)."""
    return {
        "video_id": video_id,
        "category_id": category_id(label, label_to_category, video_id),
        "score": float(score),
        "segmentations": segmentations,
    }


def predictions_to_records(
    prediction: Mapping[str, Any], video_id: int, label_to_category: LabelToCategory = None
) -> list[dict]:
    """One video's post-processing output (`scores` (K,), `labels` (K,), `masks` (K, T, H, W) bool, as tensors or
    arrays) as YouTube-VIS result records."""
    scores, labels, masks = (_to_numpy(prediction[key]) for key in ("scores", "labels", "masks"))
    if masks.ndim != 4 or len(scores) != len(masks) or len(labels) != len(masks):
        raise ValueError(f"video {video_id}: expected scores (K,), labels (K,) and masks (K, T, H, W)")
    return [
        result_record(video_id, int(label), score, encode_track(track), label_to_category)
        for score, label, track in zip(scores, labels, masks)
    ]


def write_submission_zip(records: list[dict], path: str | Path) -> Path:
    """Write `records` as `results.json` inside the zip file `path` (what the YouTube-VIS server expects)."""
    path = Path(path)
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        archive.writestr(SUBMISSION_MEMBER, json.dumps(records))
    return path


def _to_numpy(value: Any) -> np.ndarray:
    if hasattr(value, "detach"):
        value = value.detach().cpu().numpy()
    return np.asarray(value)
