"""Reading the YouTube-VIS file formats: annotation files (ground truth) and submissions (results).

Both become `Track`s whose per-frame masks are pycocotools compressed RLEs, checking every field on the way: a bad
record raises a `UserInputError` (a `ValueError`) that names it, nothing is dropped silently. The training reader and
the metric both read through this module. The records are checked one by one, then all compressed strings of a file
at once, with numpy (`rle.read_tracks`); a compressed RLE as the file has it is kept as the very object (files hold
hundreds of thousands of them), so reading costs little memory beyond the parsed JSON.
"""

from __future__ import annotations

import json
import math
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from pycocotools import mask as mask_utils

from ..errors import UserInputError
from .records import SUBMISSION_MEMBER
from .rle import InvalidRLEString, TrackMasks, read_tracks

JsonSource = dict | list | str | Path


@dataclass(frozen=True)
class Video:
    """A video of the ground truth: its frame size and number of frames."""

    id: int
    height: int
    width: int
    length: int


@dataclass
class Track:
    """One object track: a ground-truth annotation or a predicted result.

    `rles[t]` is frame t's mask as a pycocotools compressed RLE, or None where the object is absent;
    `areas[t]` is that mask's pixel count (0 where absent). `zero_runs[t]` says that frame's RLE has an empty
    run after its first one (valid, but never written by pycocotools' `encode`); the metric needs to know,
    because pycocotools compares two such masks differently (see `rle.inner_zero_runs`). `spans[t]` are the
    first and one past the last pixel that frame's mask may cover (column-major). `whole` is the RLE of all
    frames side by side, with which the metric compares two tracks in one pycocotools call (None for videos
    too large for it, see `rle.TrackMasks`). `avg_area` decides the area range (small / medium / large): for
    ground truth the mean of the annotation's non-zero `areas` field, for results the mean of the non-zero mask
    areas, as the official code computes them. `ann_id` is the annotation id of ground truth, and for a result
    its position in the results list plus one, the id the official code gives it.
    """

    video_id: int
    category_id: int
    rles: list[dict | None]
    areas: np.ndarray
    zero_runs: np.ndarray
    spans: np.ndarray
    whole: dict | None
    avg_area: float
    score: float = 0.0
    ann_id: int = 0
    iscrowd: bool = False


@dataclass
class GroundTruth:
    """A parsed annotation file: videos and category names by id, and the tracks in file order."""

    videos: dict[int, Video]
    categories: dict[int, str]
    tracks: list[Track]


# ----------------------------------------------------------------------------------------------- reading


def read_json(source: JsonSource, what: str) -> Any:
    """Return `source` itself if it is already parsed, else the JSON content of the file it names.

    A `.zip` file is read as a YouTube-VIS submission: the JSON is its `results.json`.
    """
    if isinstance(source, dict | list):
        return source
    try:
        if Path(source).suffix.lower() == ".zip":
            with zipfile.ZipFile(source) as archive:
                return json.loads(archive.read(SUBMISSION_MEMBER))
        with open(source, encoding="utf-8") as handle:
            return json.load(handle)
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise UserInputError(f"{what} file {source}: malformed JSON ({error})") from error
    except (zipfile.BadZipFile, KeyError) as error:
        raise UserInputError(f"{what} file {source}: not a zip holding {SUBMISSION_MEMBER} ({error})") from error


def split_by_video(gt: JsonSource, results: JsonSource) -> tuple[list[list[dict]], list[dict]]:
    """Split an annotation file and a submission into per-video examples for the `evaluate` module.

    Returns `(predictions, references)` in the annotation file's video order: `predictions[i]` is the list of
    result records of video i, `references[i]` is `{"video": ..., "annotations": [...]}`.
    """
    gt_data = read_json(gt, "ground truth")
    results_data = read_json(results, "results")
    parse_ground_truth(gt_data)  # only to report malformed ground truth by record
    _require(isinstance(results_data, list), "results", "must be a JSON list of result records")
    references = {video["id"]: {"video": video, "annotations": []} for video in gt_data["videos"]}
    predictions: dict[Any, list[dict]] = {video_id: [] for video_id in references}
    for annotation in gt_data["annotations"]:
        references[annotation["video_id"]]["annotations"].append(annotation)
    for index, record in enumerate(results_data):
        _require(isinstance(record, dict), f"results[{index}]", "must be an object")
        _require(record.get("video_id") in predictions, _result_where(index, record), "unknown video id")
        predictions[record["video_id"]].append(record)
    return list(predictions.values()), list(references.values())


def parse_ground_truth(gt: JsonSource) -> GroundTruth:
    """Parse and check a YouTube-VIS annotation file (a dict or the path of a JSON file)."""
    data = read_json(gt, "ground truth")
    _require(isinstance(data, dict), "ground truth", "must be a JSON object")
    for key in ("videos", "categories", "annotations"):
        _require(isinstance(data.get(key), list), "ground truth", f"needs a list under '{key}'")
    videos = _parse_videos(data["videos"])
    categories = _parse_categories(data["categories"])
    annotations = data["annotations"]
    rles, track_videos, seen_ids = [], [], set()
    for i, ann in enumerate(annotations):
        video = _annotation_video(ann, i, videos, categories)
        where = _annotation_where(i, ann)
        _require(ann["id"] not in seen_ids, where, "duplicate annotation id")
        seen_ids.add(ann["id"])
        rles.append(track_rles(ann.get("segmentations"), video, where, polygons=True))
        track_videos.append(video)
    masks = _read_masks(rles, track_videos, lambda i: _annotation_where(i, annotations[i]))
    tracks = [
        Track(
            video_id=ann["video_id"],
            category_id=ann["category_id"],
            rles=frames,
            areas=mask.areas,
            zero_runs=mask.zero_runs,
            spans=mask.spans,
            whole=mask.whole,
            avg_area=_annotated_avg_area(ann, video, mask.areas, _annotation_where(i, ann)),
            ann_id=ann["id"],
            iscrowd=bool(ann.get("iscrowd", 0)),
        )
        for i, (ann, frames, video, mask) in enumerate(zip(annotations, rles, track_videos, masks, strict=True))
    ]
    return GroundTruth(videos=videos, categories=categories, tracks=tracks)


def parse_results(results: JsonSource, ground_truth: GroundTruth) -> list[Track]:
    """Parse and check a submission (a list of result records or the path of a JSON file).

    Unlike the official code, uncompressed RLE (a list of run lengths) is accepted, and a result whose
    category is not in the ground truth raises instead of being dropped.
    """
    data = read_json(results, "results")
    _require(isinstance(data, list), "results", "must be a JSON list of result records")
    rles, track_videos = [], []
    for i, record in enumerate(data):
        video = _result_video(record, i, ground_truth)
        rles.append(track_rles(record.get("segmentations"), video, _result_where(i, record), polygons=False))
        track_videos.append(video)
    masks = _read_masks(rles, track_videos, lambda i: _result_where(i, data[i]))
    tracks = []
    for i, (record, frames, mask) in enumerate(zip(data, rles, masks, strict=True)):
        nonzero = mask.areas[mask.areas > 0]
        tracks.append(
            Track(
                video_id=record["video_id"],
                category_id=record["category_id"],
                rles=frames,
                areas=mask.areas,
                zero_runs=mask.zero_runs,
                spans=mask.spans,
                whole=mask.whole,
                avg_area=float(nonzero.mean()) if nonzero.size else 0.0,
                score=float(record["score"]),
                ann_id=i + 1,
            )
        )
    return tracks


def _annotation_video(ann: Any, index: int, videos: dict[int, Video], categories: dict[int, str]) -> Video:
    """Check the fields of ground-truth annotation `index` but its masks; return its video."""
    _require(isinstance(ann, dict), f"ground truth annotations[{index}]", "must be an object")
    where = _annotation_where(index, ann)
    _require(_is_int(ann.get("id")), where, "'id' must be an integer")
    video = _known_video(ann.get("video_id"), videos, where)
    _require(ann.get("category_id") in categories, where, f"unknown category id {ann.get('category_id')!r}")
    _require(ann.get("iscrowd", 0) in (0, 1), where, "'iscrowd' must be 0 or 1")
    for key, size in (("height", video.height), ("width", video.width)):
        _require(ann.get(key, size) == size, where, f"'{key}' {ann.get(key)} disagrees with video {video.id}")
    return video


def _result_video(record: Any, index: int, ground_truth: GroundTruth) -> Video:
    """Check the fields of result record `index` but its masks; return its video."""
    _require(isinstance(record, dict), f"results[{index}]", "must be an object")
    where = _result_where(index, record)
    video = _known_video(record.get("video_id"), ground_truth.videos, where)
    category_id = record.get("category_id")
    _require(category_id in ground_truth.categories, where, f"category id {category_id!r} not in the ground truth")
    score = record.get("score")
    _require(_is_number(score) and math.isfinite(score), where, "'score' must be a finite number")
    return video


def _read_masks(rles: list[list[dict | None]], videos: list[Video], where: Callable[[int], str]) -> list[TrackMasks]:
    """`rle.read_tracks` of a file's tracks (track k's per-frame RLEs `rles[k]`, of video `videos[k]`).

    Every present frame's compressed RLE string (as the file has it, or as pycocotools wrote it from
    uncompressed counts or polygons) is decoded once: that checks the strings of the file and gives each track
    its mask areas, empty-run flags and whole-track RLE. Raises `UserInputError` for the first string, in file
    order, that is not ASCII, is malformed or whose runs do not cover its frame exactly, naming its record with
    `where(track index)`.
    """
    try:
        return read_tracks(rles, [(video.height, video.width) for video in videos])
    except InvalidRLEString as error:
        place = f"{where(error.track)}: segmentations[{error.frame}]"
        if not error.ascii:
            raise UserInputError(f"{place}: RLE counts are not ASCII") from None
        raise UserInputError(
            f"{place}: invalid compressed RLE counts {rles[error.track][error.frame]['counts']!r} "
            f"(malformed, or runs not summing to the {error.pixels} pixels of the frame)"
        ) from None


def _parse_videos(records: list) -> dict[int, Video]:
    videos = {}
    for i, record in enumerate(records):
        where = f"ground truth videos[{i}]"
        _require(isinstance(record, dict), where, "must be an object")
        where += f" (id {record.get('id')!r})"
        length = record.get("length", len(record.get("file_names") or []))
        for key, value in (("id", record.get("id")), ("height", record.get("height")), ("width", record.get("width"))):
            _require(_is_int(value), where, f"'{key}' must be an integer")
        _require(_is_int(length) and length > 0, where, "needs a positive 'length' (or 'file_names')")
        _require(record["id"] not in videos, where, "duplicate video id")
        videos[record["id"]] = Video(record["id"], record["height"], record["width"], length)
    return videos


def _parse_categories(records: list) -> dict[int, str]:
    categories = {}
    for i, record in enumerate(records):
        where = f"ground truth categories[{i}]"
        _require(isinstance(record, dict) and _is_int(record.get("id")), where, "needs an integer 'id'")
        _require(record["id"] not in categories, where, f"duplicate category id {record['id']}")
        categories[record["id"]] = str(record.get("name", record["id"]))
    return categories


def _annotated_avg_area(ann: dict, video: Video, mask_areas: np.ndarray, where: str) -> float:
    """Mean of the non-null, non-zero entries of the `areas` field (0 if none), as the official code does.

    The official code needs the field; when it is missing, the mask areas stand in for it.
    """
    areas = ann.get("areas")
    if areas is None:
        areas = mask_areas.tolist()
    _require(isinstance(areas, list) and len(areas) == video.length, where, f"'areas' needs {video.length} entries")
    _require(all(a is None or _is_number(a) for a in areas), where, "'areas' entries must be numbers or null")
    counted = [a for a in areas if a]
    return float(np.array(counted).mean()) if counted else 0.0


def _annotation_where(index: int, ann: dict) -> str:
    """How error messages name a ground-truth annotation."""
    return f"ground truth annotations[{index}] (id {ann.get('id')!r})"


def _result_where(index: int, record: dict) -> str:
    """How error messages name a result record."""
    return f"results[{index}] (video_id {record.get('video_id')!r}, category_id {record.get('category_id')!r})"


def _known_video(video_id: Any, videos: dict[int, Video], where: str) -> Video:
    _require(_is_int(video_id) and video_id in videos, where, f"unknown video id {video_id!r}")
    return videos[video_id]


# ------------------------------------------------------------------------------------------------- masks


def track_rles(segmentations: Any, video: Video, where: str, polygons: bool) -> list[dict | None]:
    """Check a track's per-frame segmentations and return them as compressed RLEs (None where absent).

    A falsy entry (null, [] or {}) means "absent", as in the official code. A compressed RLE whose `size` is the
    video's, as plain ints, is returned as it is (the very object: files hold hundreds of thousands of them);
    other RLE objects become new ones with the video's size, and uncompressed RLEs and polygons are converted
    with pycocotools. Compressed strings are not decoded here: the caller checks them (see `_read_masks`).
    """
    _require(
        isinstance(segmentations, list) and len(segmentations) == video.length,
        where,
        f"'segmentations' must be a list of {video.length} entries, one per frame of video {video.id}",
    )
    size = [video.height, video.width]
    rles: list[dict | None] = []
    for t, segm in enumerate(segmentations):
        if not segm:
            rles.append(None)
        elif type(segm) is dict and type(segm.get("counts")) is str and _is_size(segm.get("size"), size):
            rles.append(segm)
        elif isinstance(segm, dict):
            rles.append(_frame_rle(segm, video, f"{where}: segmentations[{t}]"))
        elif polygons and isinstance(segm, list):
            rles.append(_polygon_rle(segm, video, f"{where}: segmentations[{t}]"))
        else:
            allowed = "an RLE object, a polygon list or null" if polygons else "an RLE object or null"
            raise UserInputError(f"{where}: segmentations[{t}]: must be {allowed}")
    return rles


def _is_size(value: Any, size: list[int]) -> bool:
    """Whether `value` is the list `size` of two plain ints (not floats or bools that compare equal)."""
    return type(value) is list and value == size and type(value[0]) is int and type(value[1]) is int


def _frame_rle(segm: dict, video: Video, where: str) -> dict:
    """Check one RLE object's size and counts type; convert uncompressed counts to a compressed RLE."""
    size, counts = segm.get("size"), segm.get("counts")
    _require(
        _fits(segm, video), where, f"RLE size {size!r} disagrees with video {video.id} ({video.height}x{video.width})"
    )
    if isinstance(counts, str | bytes):
        return {"size": [video.height, video.width], "counts": counts}
    _require(isinstance(counts, list), where, "RLE 'counts' must be a string or a list of run lengths")
    runs = np.asarray(counts)
    total = video.height * video.width
    _require(
        runs.ndim == 1 and (runs.size == 0 or runs.dtype.kind in "iu"),
        where,
        "RLE 'counts' must be a flat list of integers",
    )
    _require(bool(np.all(runs >= 0)) and int(runs.sum()) == total, where, f"RLE runs must sum to {total} pixels")
    return mask_utils.frPyObjects({"size": [video.height, video.width], "counts": counts}, video.height, video.width)


def _fits(segm: dict, video: Video) -> bool:
    """Whether an RLE object's `size` is the video's [height, width]."""
    size = segm.get("size")
    return isinstance(size, list | tuple) and list(size) == [video.height, video.width]


# The largest polygon coordinate, in multiples of the frame's larger side (see `_polygon_rle`).
_POLYGON_REACH = 10


def _polygon_rle(polygons: list, video: Video, where: str) -> dict:
    """Rasterise a frame's polygons (a list of [x0, y0, x1, y1, ...] lists) into one compressed RLE.

    Each polygon needs at least 3 points (6 numbers), all finite and of magnitude at most `_POLYGON_REACH` times
    the frame's larger side. What pycocotools (and so the official code) does otherwise is no mask one would
    want: a first polygon of 4 numbers is taken for a box and fails with a TypeError, one of 2 with a bare
    Exception; a later short polygon, or an odd last number, is rasterised as a line or dropped; an infinite
    coordinate loops forever and a huge one exhausts memory (the outline is sampled densely). Rejecting these
    names the record instead.
    """
    reach = _POLYGON_REACH * max(video.height, video.width)
    _require(
        all(
            isinstance(p, list)
            and len(p) >= 6
            and len(p) % 2 == 0
            and all(_is_number(c) and math.isfinite(c) and abs(c) <= reach for c in p)
            for p in polygons
        ),
        where,
        f"polygons must be lists of an even number (>= 6) of finite coordinates, each in [-{reach}, {reach}]",
    )
    return mask_utils.merge(mask_utils.frPyObjects(polygons, video.height, video.width))


# ----------------------------------------------------------------------------------------------- helpers


def _require(condition: bool, where: str, message: str) -> None:
    """Raise the `UserInputError` "where: message" unless `condition` holds."""
    if not condition:
        raise UserInputError(f"{where}: {message}")


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)
