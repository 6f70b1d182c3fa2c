"""Write a realistic YouTube-VIS evaluation case to a folder: `gt.json` (annotation file) and `results.json`.

The default is the size the metric is benchmarked on: 300 videos of 36 frames at 360x640, 5 ground-truth tracks
and 20 results per video, every mask a pycocotools compressed RLE. Objects are blobs (ellipses with a wobbly
outline) that move, turn and change size; about a third of the ground-truth tracks enter late or leave early.
Per video, the results are what a video instance segmenter outputs: for each ground-truth track one close
prediction of the right category (mostly empty where the track is not annotated) and one rougher one (larger,
shifted, often of another category), plus ten noise tracks, so 2 x (ground-truth tracks) + 10 results; every
result has a mask in every frame, an empty one where the blob is outside the frame. The ground truth carries
`areas` and `bboxes` as the YouTube-VIS files do. Same seed, same files (17.8 MB of ground truth and 82.4 MB of
results for the default case: strings of about 340 characters per mask).

    python benchmarks/make_metric_case.py OUT_DIR [--videos 300] [--frames 36] [--seed 0]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
from pycocotools import mask as mask_utils

from modeling_m2f_video.ytvis.rle import encode_rle, rle_to_json

NUM_CATEGORIES = 40  # as in YouTube-VIS 2019
NOISE_RESULTS = 10  # per video; the other results are two per ground-truth track
OUTLINE_POINTS = 64  # vertices of a blob's outline polygon


def blob_rles(rng: np.random.Generator, frames: int, height: int, width: int, like: dict | None = None) -> tuple:
    """Per-frame compressed RLEs of one moving blob, and its motion parameters (to make predictions `like` it).

    A blob is an ellipse whose radius is modulated by a few low harmonics of the angle; its centre moves at a
    slowly changing velocity, its axes and orientation drift. Each frame's outline is a polygon that pycocotools
    rasterises straight to RLE (clipped to the frame; empty where the blob is outside), which is fast and is how
    polygon annotations become masks. `like` (the parameters of another blob) gives a perturbed copy of it: a
    slightly shifted, resized and re-shaped trajectory.
    """
    if like is None:
        params = {
            "centre": rng.uniform([0.15 * width, 0.15 * height], [0.85 * width, 0.85 * height]),
            "velocity": rng.normal(0, 4, 2),
            "axes": np.exp(rng.uniform(np.log(20), np.log(220), 2)),
            "angle": rng.uniform(0, np.pi),
            "spin": rng.normal(0, 0.03),
            "harmonics": rng.uniform(0, 0.12, 4),
            "phases": rng.uniform(0, 2 * np.pi, 4),
        }
    else:
        params = dict(like)
        params["centre"] = like["centre"] + rng.normal(0, 0.05, 2) * like["axes"]
        params["axes"] = like["axes"] * rng.uniform(0.85, 1.15, 2)
        params["phases"] = like["phases"] + rng.normal(0, 0.6, 4)
    theta = np.linspace(0, 2 * np.pi, OUTLINE_POINTS, endpoint=False)
    polygons = []
    for t in range(frames):
        cx, cy = params["centre"] + t * params["velocity"] + 0.02 * t * t * np.sin(params["phases"][:2])
        a, b = params["axes"] * (1 + 0.1 * np.sin(0.2 * t + params["phases"][2:]))
        radius = a * b / np.hypot(b * np.cos(theta), a * np.sin(theta))
        for k, (amplitude, phase) in enumerate(zip(params["harmonics"], params["phases"], strict=True)):
            radius *= 1 + amplitude * np.cos((k + 2) * theta + phase + 0.1 * t)
        turn = theta + params["angle"] + t * params["spin"]
        polygons.append(np.stack([cx + radius * np.cos(turn), cy + radius * np.sin(turn)], axis=1).ravel().tolist())
    return [rle_to_json(rle) for rle in mask_utils.frPyObjects(polygons, height, width)], params


def make_case(videos: int, frames: int, height: int, width: int, gt_tracks: int, seed: int) -> tuple[dict, list]:
    """The annotation file (a dict) and the results (a list of records) of the case."""
    rng = np.random.default_rng(seed)
    gt = {
        "info": {"description": "synthetic YouTube-VIS metric benchmark case", "seed": seed},
        "licenses": [],
        "categories": [
            {"id": k + 1, "name": f"category_{k + 1}", "supercategory": "object"} for k in range(NUM_CATEGORIES)
        ],
        "videos": [],
        "annotations": [],
    }
    results = []
    empty = encode_rle(np.zeros((height, width), dtype=bool))
    for video_id in range(1, videos + 1):
        gt["videos"].append(
            {
                "id": video_id,
                "height": height,
                "width": width,
                "length": frames,
                "file_names": [f"{video_id:05d}/{t:05d}.jpg" for t in range(frames)],
            }
        )
        video_categories = rng.choice(np.arange(1, NUM_CATEGORIES + 1), size=rng.integers(1, 4), replace=False)
        for _ in range(gt_tracks):
            present = np.zeros(frames, dtype=bool)
            while not present.any():  # a track is annotated in at least one frame
                rles, params = blob_rles(rng, frames, height, width)
                first, last = 0, frames
                if rng.random() < 0.35:  # enters late or leaves early
                    first, last = sorted(rng.integers(0, frames + 1, 2))
                    last = max(last, first + 4)
                areas = mask_utils.area(rles)
                present = (areas > 0) & (np.arange(frames) >= first) & (np.arange(frames) < last)
            category = int(rng.choice(video_categories))
            boxes = mask_utils.toBbox(rles).tolist()
            gt["annotations"].append(
                {
                    "id": len(gt["annotations"]) + 1,
                    "video_id": video_id,
                    "category_id": category,
                    "iscrowd": 0,
                    "height": height,
                    "width": width,
                    "length": 1,
                    "segmentations": [rle if present[t] else None for t, rle in enumerate(rles)],
                    "areas": [int(areas[t]) if present[t] else None for t in range(frames)],
                    "bboxes": [boxes[t] if present[t] else None for t in range(frames)],
                }
            )
            close, _ = blob_rles(rng, frames, height, width, like=params)
            if rng.random() < 0.7:  # most predictions are empty where the object is not annotated
                close = [rle if present[t] else empty for t, rle in enumerate(close)]
            results.append(result_record(video_id, category, rng.uniform(0.5, 0.99), close))
            rough, _ = blob_rles(rng, frames, height, width, like={**params, "axes": params["axes"] * 1.3})
            rough_category = category if rng.random() < 0.4 else int(rng.integers(1, NUM_CATEGORIES + 1))
            results.append(result_record(video_id, rough_category, rng.uniform(0.1, 0.6), rough))
        for _ in range(NOISE_RESULTS):
            noise, _ = blob_rles(rng, frames, height, width)
            category = (
                int(rng.choice(video_categories)) if rng.random() < 0.5 else int(rng.integers(1, NUM_CATEGORIES + 1))
            )
            results.append(result_record(video_id, category, rng.uniform(0.01, 0.4), noise))
    return gt, results


def result_record(video_id: int, category_id: int, score: float, rles: list[dict]) -> dict:
    """A submission record with a compressed RLE in every frame (empty masks included), as segmenters write."""
    return {"video_id": video_id, "category_id": category_id, "score": round(float(score), 6), "segmentations": rles}


def main(argv: list[str] | None = None) -> None:
    """Write the case given on the command line and print the file sizes."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out_dir", type=Path)
    parser.add_argument("--videos", type=int, default=300)
    parser.add_argument("--frames", type=int, default=36)
    parser.add_argument("--height", type=int, default=360)
    parser.add_argument("--width", type=int, default=640)
    parser.add_argument("--gt-tracks", type=int, default=5, help="ground-truth tracks per video")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    gt, results = make_case(args.videos, args.frames, args.height, args.width, args.gt_tracks, args.seed)
    args.out_dir.mkdir(parents=True, exist_ok=True)
    for name, content in (("gt.json", gt), ("results.json", results)):
        path = args.out_dir / name
        with open(path, "w", encoding="utf-8") as handle:
            json.dump(content, handle)
        print(f"{path}: {path.stat().st_size / 1e6:.1f} MB")
    print(f"{len(gt['videos'])} videos, {len(gt['annotations'])} ground-truth tracks, {len(results)} results")


if __name__ == "__main__":
    main()
