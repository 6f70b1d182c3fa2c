"""Reading the YouTube-VIS file formats: annotation files (ground truth) and submissions (results).

Both become `Track`s whose per-frame masks are pycocotools compressed RLEs, checking every field on the way: a bad
record raises a `UserInputError` (a `ValueError`) that names it, nothing is dropped silently. The training reader and
the metric both read through this module.
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
from .rle import decode_rle_strings, inner_zero_runs, rle_areas

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
    because pycocotools compares two such masks differently (see `rle.inner_zero_runs`). `avg_area` decides the
    area range (small / medium / large): for ground truth the mean of the annotation's non-zero `areas` field,
    for results the mean of the non-zero mask areas, as the official code computes them. `ann_id` is the
    annotation id of ground truth, and for a result its position in the results list plus one, the id the
    official code gives it.
    """

    video_id: int
    category_id: int
    rles: list[dict | None]
    areas: np.ndarray
    zero_runs: np.ndarray
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
    zero_run_places = _check_compressed_strings(data["annotations"], _annotation_where, videos)
    tracks, seen_ids = [], set()
    for i, ann in enumerate(data["annotations"]):
        track = _parse_annotation(ann, i, videos, categories, zero_run_places)
        _require(track.ann_id not in seen_ids, _annotation_where(i, ann), "duplicate annotation id")
        seen_ids.add(track.ann_id)
        tracks.append(track)
    return GroundTruth(videos=videos, categories=categories, tracks=tracks)


def parse_results(results: JsonSource, ground_truth: GroundTruth) -> list[Track]:
    """Parse and check a submission (a list of result records or the path of a JSON file).

    Unlike the official code, uncompressed RLE (a list of run lengths) is accepted, and a result whose
    category is not in the ground truth raises instead of being dropped.
    """
    data = read_json(results, "results")
    _require(isinstance(data, list), "results", "must be a JSON list of result records")
    zero_run_places = _check_compressed_strings(data, _result_where, ground_truth.videos)
    return [_parse_result(record, i, ground_truth, zero_run_places) for i, record in enumerate(data)]


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


def _parse_annotation(
    ann: Any, index: int, videos: dict[int, Video], categories: dict[int, str], zero_run_places: set[tuple[int, int]]
) -> Track:
    _require(isinstance(ann, dict), f"ground truth annotations[{index}]", "must be an object")
    where = _annotation_where(index, ann)
    _require(_is_int(ann.get("id")), where, "'id' must be an integer")
    video = _known_video(ann.get("video_id"), videos, where)
    _require(ann.get("category_id") in categories, where, f"unknown category id {ann.get('category_id')!r}")
    _require(ann.get("iscrowd", 0) in (0, 1), where, "'iscrowd' must be 0 or 1")
    for key, size in (("height", video.height), ("width", video.width)):
        _require(ann.get(key, size) == size, where, f"'{key}' {ann.get(key)} disagrees with video {video.id}")
    rles = track_rles(ann.get("segmentations"), video, where, polygons=True)
    areas = rle_areas(rles)
    return Track(
        video_id=video.id,
        category_id=ann["category_id"],
        rles=rles,
        areas=areas,
        zero_runs=_zero_run_frames(ann["segmentations"], rles, index, zero_run_places),
        avg_area=_annotated_avg_area(ann, video, areas, where),
        ann_id=ann["id"],
        iscrowd=bool(ann.get("iscrowd", 0)),
    )


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


def _parse_result(record: Any, index: int, ground_truth: GroundTruth, zero_run_places: set[tuple[int, int]]) -> Track:
    _require(isinstance(record, dict), f"results[{index}]", "must be an object")
    where = _result_where(index, record)
    video = _known_video(record.get("video_id"), ground_truth.videos, where)
    category_id = record.get("category_id")
    _require(category_id in ground_truth.categories, where, f"category id {category_id!r} not in the ground truth")
    score = record.get("score")
    _require(_is_number(score) and math.isfinite(score), where, "'score' must be a finite number")
    rles = track_rles(record.get("segmentations"), video, where, polygons=False)
    areas = rle_areas(rles)
    nonzero = areas[areas > 0]
    return Track(
        video_id=video.id,
        category_id=category_id,
        rles=rles,
        areas=areas,
        zero_runs=_zero_run_frames(record["segmentations"], rles, index, zero_run_places),
        avg_area=float(nonzero.mean()) if nonzero.size else 0.0,
        score=float(score),
        ann_id=index + 1,
    )


def _zero_run_frames(
    segmentations: list, rles: list[dict | None], index: int, zero_run_places: set[tuple[int, int]]
) -> np.ndarray:
    """`Track.zero_runs` of record `index`: per frame, whether its RLE has an empty run after the first.

    Compressed strings were decoded by `_check_compressed_strings`, which lists the (record, frame) places of
    those that have one; uncompressed counts (kept as they are when pycocotools compresses them) are looked at
    directly, and polygon rasters are decoded here.
    """
    flags = np.zeros(len(rles), dtype=bool)
    polygon_frames = []
    for t, (segm, rle) in enumerate(zip(segmentations, rles, strict=True)):
        if rle is None:
            continue
        if isinstance(segm, list):
            polygon_frames.append(t)
        elif isinstance(segm["counts"], list):
            flags[t] = 0 in segm["counts"][1:]
        else:
            flags[t] = (index, t) in zero_run_places
    if polygon_frames:
        runs, owner, _ = decode_rle_strings([rles[t]["counts"] for t in polygon_frames])
        flags[polygon_frames] = inner_zero_runs(runs, owner, len(polygon_frames))
    return flags


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

    A falsy entry (null, [] or {}) means "absent", as in the official code. Uncompressed RLEs and polygons
    are converted with pycocotools; compressed strings are checked all at once before pycocotools reads them.
    """
    _require(
        isinstance(segmentations, list) and len(segmentations) == video.length,
        where,
        f"'segmentations' must be a list of {video.length} entries, one per frame of video {video.id}",
    )
    rles: list[dict | None] = []
    for t, segm in enumerate(segmentations):
        frame = f"{where}: segmentations[{t}]"
        if not segm:
            rles.append(None)
        elif isinstance(segm, dict):
            rles.append(_frame_rle(segm, video, frame))
        elif polygons and isinstance(segm, list):
            rles.append(_polygon_rle(segm, video, frame))
        else:
            allowed = "an RLE object, a polygon list or null" if polygons else "an RLE object or null"
            raise UserInputError(f"{frame}: must be {allowed}")
    return rles


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


def _check_compressed_strings(
    records: list, where: Callable[[int, dict], str], videos: dict[int, Video]
) -> set[tuple[int, int]]:
    """Check every compressed RLE string of a file with one vectorised decode, before pycocotools reads any.

    A string must be well formed and its runs must cover its video's frame exactly. Records whose structure
    is wrong are skipped here: the record-by-record parsing reports them. Returns the (record index, frame)
    places of the strings that have an empty run after the first (see `Track.zero_runs`).
    """
    strings, totals, places = [], [], []
    for i, record in enumerate(records):
        video = (
            videos.get(record.get("video_id"))
            if isinstance(record, dict) and _is_int(record.get("video_id"))
            else None
        )
        segmentations = record.get("segmentations") if video else None
        for t, segm in enumerate(segmentations if isinstance(segmentations, list) else []):
            if isinstance(segm, dict) and isinstance(segm.get("counts"), str | bytes) and _fits(segm, video):
                strings.append(segm["counts"])
                totals.append(video.height * video.width)
                places.append((i, t))
    encoded = []
    for string, (i, t) in zip(strings, places, strict=True):
        try:
            encoded.append(string.encode("ascii") if isinstance(string, str) else string)
        except UnicodeEncodeError as error:
            raise UserInputError(f"{where(i, records[i])}: segmentations[{t}]: RLE counts are not ASCII") from error
    runs, owner, well_formed = decode_rle_strings(encoded)
    covered = np.bincount(owner, weights=runs, minlength=len(encoded)) == np.array(totals)
    bad = np.flatnonzero(~(well_formed & covered))
    if bad.size:
        i, t = places[bad[0]]
        raise UserInputError(
            f"{where(i, records[i])}: segmentations[{t}]: invalid compressed RLE counts {strings[bad[0]]!r} "
            f"(malformed, or runs not summing to the {totals[bad[0]]} pixels of the frame)"
        )
    zero_runs = inner_zero_runs(runs, owner, len(encoded))
    return {places[k] for k in np.flatnonzero(zero_runs)}


# ----------------------------------------------------------------------------------------------- helpers


def _require(condition: bool, where: str, message: str) -> None:
    """Raise the `UserInputError` "where: message" unless `condition` holds."""
    if not condition:
        raise UserInputError(f"{where}: {message}")


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)
