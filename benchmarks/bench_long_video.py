"""Long videos: ground-truth AP and identity by length for whole-video, clip-by-clip and online inference.

For each length, bounded-motion synthetic videos (`generate_video(..., motion="bounded")`: objects bounce, their
sizes oscillate within the training range, they leave, come back and disappear for a while, so that a long video
stays in the distribution of a short one) are written as MP4 files, `--frames-per-length` frames' worth of them,
and segmented by each mode in a fresh process per (length, mode), so that each peak-memory reading belongs to
one mode:

- `whole`: all frames at once (`segment_video(mode="whole")`), as the official code does, up to `--whole-max-frames`;
- `clip`: clip by clip (`segment_video(mode="clip")`, windows of `--clip-length` frames sharing `--clip-overlap`,
  fragments of one object joined at the end);
- `online`: the file read as a stream (`online.stream_frames`) through `online.segment_stream` (windows of
  `--window` frames sharing `--window-overlap`, each frame handed out at most `--window` frames after it arrives).

Scores, against the generated ground truth:
- AP and AP50: the project's YouTube-VIS metric over the videos of one length. The online mode's records are its
  tracks (`online.TrackRecords`): the frames each was handed out in, the class with the highest summed score, the
  mean score;
- identity: HOTA, its association accuracy AssA, identity switches (CLEAR's IDSW) and IDF1, from the `trackeval`
  package (class-agnostic, on frame-by-frame mask IoU), of the instances scoring above `--track-score` (for the
  online mode: as handed out, frame by frame);
- time: milliseconds per frame, from the video file to the result records (decoding and mask encoding included);
- memory: the peak resident set size during the videos minus the size before the first (model loaded).

    pip install trackeval
    python benchmarks/bench_long_video.py --lengths 64,128,256,512,1024 --output long_video.md

Writes a Markdown table to `--output` and every number to `--output-json`; `--work` keeps the videos and each
run's records, so that an interrupted sweep resumes where it stopped.
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

import numpy as np
from benchmark_utils import current_rss_bytes, machine_info, markdown_table, peak_rss_bytes, reset_peak_rss

from modeling_m2f_video.inference.stream_defaults import STREAM_OVERLAP, STREAM_WINDOW

MODES = ("whole", "clip", "online")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", default="demo", help="model folder or 'demo' (default)")
    parser.add_argument("--lengths", default="64,128,256,512,1024", help="comma-separated frame counts")
    parser.add_argument("--frames-per-length", type=int, default=4096, help="videos of each length: this / length")
    parser.add_argument("--modes", default=",".join(MODES), help=f"comma-separated, of {', '.join(MODES)}")
    parser.add_argument("--whole-max-frames", type=int, default=1024, help="longest video the whole mode is run on")
    parser.add_argument("--height", type=int, default=96, help="frame height of the generated videos")
    parser.add_argument("--width", type=int, default=128, help="frame width of the generated videos")
    parser.add_argument("--max-objects", type=int, default=4, help="objects per video (at most)")
    parser.add_argument("--seed", type=int, default=2026, help="synthetic seed (the demo model never saw it)")
    parser.add_argument("--clip-length", type=int, default=32)
    parser.add_argument("--clip-overlap", type=int, default=8)
    parser.add_argument("--window", type=int, default=STREAM_WINDOW, help="online window (frames)")
    parser.add_argument("--window-overlap", type=int, default=STREAM_OVERLAP, help="online window overlap (frames)")
    parser.add_argument("--track-score", type=float, default=0.5, help="score above which instances are tracks")
    parser.add_argument("--threads", type=int, default=1, help="torch threads per run")
    parser.add_argument("--output", default="long_video_results.md", help="Markdown table")
    parser.add_argument("--output-json", help="every number as JSON (default: --output with .json)")
    parser.add_argument("--work", help="folder for videos and records (default: a temporary one)")
    parser.add_argument("--worker", nargs=3, metavar=("MODE", "VIDEO_LIST", "RESULT"), help=argparse.SUPPRESS)
    return parser.parse_args(argv)


# ----------------------------------------------------------------------------------------------- the videos


def write_videos(work: Path, length: int, args: argparse.Namespace, num_classes: int) -> Path:
    """Generate the videos of one length as MP4 files and their YouTube-VIS ground truth; returns the JSON's path."""
    from modeling_m2f_video.processing.synthetic import generate_video, video_annotations, ytvis_categories
    from modeling_m2f_video.processing.video_io import write_video

    folder = work / f"videos_{length}"
    ground_truth_path = folder / "instances.json"
    if ground_truth_path.is_file():
        return ground_truth_path
    folder.mkdir(parents=True, exist_ok=True)
    ground_truth = {"videos": [], "categories": ytvis_categories(num_classes), "annotations": []}
    for index in range(max(1, args.frames_per_length // length)):
        video = generate_video(
            index,
            seed=args.seed + length,
            num_frames=length,
            height=args.height,
            width=args.width,
            num_classes=num_classes,
            max_objects=args.max_objects,
            motion="bounded",
        )
        file = write_video(folder / f"{video.name}.mp4", video.frames)
        entry = {"id": index + 1, "height": args.height, "width": args.width, "length": length, "file": file.name}
        ground_truth["videos"].append(entry)
        annotations = video_annotations(video, index + 1, first_annotation_id=len(ground_truth["annotations"]) + 1)
        ground_truth["annotations"] += annotations
    ground_truth_path.write_text(json.dumps(ground_truth))
    return ground_truth_path


# ----------------------------------------------------------------------------------------------- one run


def run_worker(args: argparse.Namespace) -> None:
    """Segment every video of one length in one mode; write records, tracks, time and memory to a JSON file."""
    import torch

    from modeling_m2f_video import Mask2FormerVideoForVideoInstanceSegmentation
    from modeling_m2f_video.demo import resolve_model_path
    from modeling_m2f_video.processing.video_processing_m2f_video import Mask2FormerVideoProcessor

    mode, ground_truth_path, result_path = args.worker
    torch.set_num_threads(args.threads)
    model_path = resolve_model_path(args.model)
    model = Mask2FormerVideoForVideoInstanceSegmentation.from_pretrained(model_path).eval()
    processor = Mask2FormerVideoProcessor.from_pretrained(model_path)
    ground_truth = json.loads(Path(ground_truth_path).read_text())
    segment = {"whole": _segment_whole_or_clip, "clip": _segment_whole_or_clip, "online": _segment_online}[mode]
    records, tracks, seconds, frames = [], [], 0.0, 0
    before = current_rss_bytes()
    reset_peak_rss()
    for video in ground_truth["videos"]:
        path = Path(ground_truth_path).parent / video["file"]
        start = time.perf_counter()
        video_records, video_tracks = segment(model, processor, path, video["id"], mode, args)
        seconds += time.perf_counter() - start
        frames += video["length"]
        records += video_records
        tracks += video_tracks
    result = {
        "ms_per_frame": 1000 * seconds / frames,
        "peak_mb": (peak_rss_bytes() - before) / 2**20,
        "records": records,
        "tracks": tracks,
    }
    Path(result_path).write_text(json.dumps(result))


def _segment_whole_or_clip(model, processor, path: Path, video_id: int, mode: str, args) -> tuple[list, list]:
    """YouTube-VIS records of one video, and the per-frame RLEs of the instances scoring above --track-score."""
    from modeling_m2f_video.inference.segment import segment_video

    instances = segment_video(
        model, processor, path, mode=mode, clip_length=args.clip_length, clip_overlap=args.clip_overlap
    )
    records = instances.to_records(video_id)
    tracks = [_track(video_id, record["segmentations"]) for record in records if record["score"] > args.track_score]
    return records, tracks


def _segment_online(model, processor, path: Path, video_id: int, mode: str, args) -> tuple[list, list]:
    """The online mode's tracks as records (every track, `online.TrackRecords`) and as handed out above
    --track-score."""
    from modeling_m2f_video.inference.online import TrackRecords, segment_stream, stream_frames

    every, shown = TrackRecords(), TrackRecords()
    stream = segment_stream(
        model, processor, stream_frames(path), window=args.window, overlap=args.window_overlap, threshold=0.0
    )
    for instances in stream:
        every.add(instances)
        shown.add(instances.above(args.track_score))
    return every.records(video_id), [_track(video_id, r["segmentations"]) for r in shown.records(video_id)]


def _track(video_id: int, segmentations: list[dict | None]) -> dict:
    return {"video_id": video_id, "segmentations": segmentations}


# ----------------------------------------------------------------------------------------------- scores


def identity_scores(ground_truth: dict, tracks: list[dict]) -> dict[str, float]:
    """HOTA, DetA, AssA, IDSW and IDF1 (trackeval, class-agnostic, mask IoU) of the tracks over all videos."""
    from trackeval.metrics import CLEAR, HOTA, Identity

    metrics = {"HOTA": HOTA(), "CLEAR": CLEAR({"PRINT_CONFIG": False}), "Identity": Identity({"PRINT_CONFIG": False})}
    per_video = defaultdict(dict)
    for video in ground_truth["videos"]:
        data = tracking_data(ground_truth, tracks, video)
        for name, metric in metrics.items():
            per_video[name][video["id"]] = metric.eval_sequence(data)
    combined = {name: metric.combine_sequences(per_video[name]) for name, metric in metrics.items()}
    return {
        "HOTA": float(np.mean(combined["HOTA"]["HOTA"])),
        "DetA": float(np.mean(combined["HOTA"]["DetA"])),
        "AssA": float(np.mean(combined["HOTA"]["AssA"])),
        "IDSW": int(combined["CLEAR"]["IDSW"]),
        "IDF1": float(combined["Identity"]["IDF1"]),
    }


def tracking_data(ground_truth: dict, tracks: list[dict], video: dict) -> dict:
    """trackeval's per-sequence input for one video: ids present and their mask IoU, frame by frame."""
    from pycocotools import mask as mask_utils

    gt_tracks = [a["segmentations"] for a in ground_truth["annotations"] if a["video_id"] == video["id"]]
    predicted = [t["segmentations"] for t in tracks if t["video_id"] == video["id"]]
    data = {"num_timesteps": video["length"], "num_gt_ids": len(gt_tracks), "num_tracker_ids": len(predicted)}
    data.update(gt_ids=[], tracker_ids=[], similarity_scores=[])
    for t in range(video["length"]):
        gt_ids = [i for i, segmentations in enumerate(gt_tracks) if segmentations[t] is not None]
        tracker_ids = [i for i, segmentations in enumerate(predicted) if segmentations[t] is not None]
        gt_rles = [gt_tracks[i][t] for i in gt_ids]
        tracker_rles = [predicted[i][t] for i in tracker_ids]
        iou = mask_utils.iou(gt_rles, tracker_rles, [0] * len(tracker_rles)) if gt_ids and tracker_ids else []
        data["gt_ids"].append(np.array(gt_ids, dtype=int))
        data["tracker_ids"].append(np.array(tracker_ids, dtype=int))
        data["similarity_scores"].append(np.asarray(iou, dtype=float).reshape(len(gt_ids), len(tracker_ids)))
    data["num_gt_dets"] = sum(len(ids) for ids in data["gt_ids"])
    data["num_tracker_dets"] = sum(len(ids) for ids in data["tracker_ids"])
    return data


def score_run(ground_truth: dict, run: dict) -> dict:
    """AP / AP50 against the ground truth, the identity scores, time and memory of one (length, mode) run."""
    from modeling_m2f_video.evaluation.metric import evaluate_ytvis

    stats = evaluate_ytvis(ground_truth, run["records"]).stats
    scores = {"AP": stats["AP"], "AP50": stats["AP50"], **identity_scores(ground_truth, run["tracks"])}
    return {**scores, "ms_per_frame": run["ms_per_frame"], "peak_mb": run["peak_mb"]}


# ----------------------------------------------------------------------------------------------- the sweep


def run_one(args: argparse.Namespace, mode: str, ground_truth_path: Path, result: Path) -> dict:
    """One (length, mode) in a fresh process: its result, or the reason it failed (reused if already in --work)."""
    import subprocess

    if result.is_file():
        return json.loads(result.read_text())
    command = [sys.executable, __file__, "--worker", mode, str(ground_truth_path), str(result)]
    for option in ("model", "clip_length", "clip_overlap", "window", "window_overlap", "track_score", "threads"):
        command += [f"--{option.replace('_', '-')}", str(getattr(args, option))]
    completed = subprocess.run(command, capture_output=True, text=True)
    if completed.returncode != 0:
        return {"error": f"failed (exit {completed.returncode}): {completed.stderr.strip().splitlines()[-1:]}"}
    return json.loads(result.read_text())


def sweep(args: argparse.Namespace) -> list[dict]:
    """Every (length, mode): its scores, or why it did not run."""
    from modeling_m2f_video import Mask2FormerVideoConfig
    from modeling_m2f_video.demo import resolve_model_path

    work = Path(args.work or tempfile.mkdtemp(prefix="bench_long_video_"))
    num_classes = Mask2FormerVideoConfig.from_pretrained(resolve_model_path(args.model)).num_labels
    rows = []
    for length in (int(value) for value in args.lengths.split(",")):
        ground_truth_path = write_videos(work, length, args, num_classes)
        ground_truth = json.loads(ground_truth_path.read_text())
        for mode in args.modes.split(","):
            row = {"frames": length, "mode": mode, "videos": len(ground_truth["videos"])}
            row["objects"] = len(ground_truth["annotations"])
            if mode == "whole" and length > args.whole_max_frames:
                rows.append({**row, "error": f"not run (> {args.whole_max_frames} frames)"})
                continue
            run = run_one(args, mode, ground_truth_path, work / f"{mode}_{length}.json")
            rows.append({**row, **(run if "error" in run else score_run(ground_truth, run))})
            print(" | ".join(format_row(rows[-1])), flush=True)
    return rows


HEADER = ("frames", "videos (objects)", "mode", "AP", "AP50", "HOTA", "AssA", "IDSW", "IDF1", "ms / frame", "peak MiB")


def format_row(row: dict) -> list[str]:
    """One table row."""
    cells = [str(row["frames"]), f"{row['videos']} ({row['objects']})", row["mode"]]
    if "error" in row:
        return cells + [row["error"]] + [""] * (len(HEADER) - 4)
    cells += [f"{row[key]:.3f}" for key in ("AP", "AP50", "HOTA", "AssA")]
    return cells + [str(row["IDSW"]), f"{row['IDF1']:.3f}", f"{row['ms_per_frame']:.1f}", f"{row['peak_mb']:.0f}"]


def report(args: argparse.Namespace, rows: list[dict]) -> str:
    """The Markdown report: setting, command and the table."""
    machine = machine_info()
    lines = [
        f"Bounded-motion synthetic videos of {args.height}x{args.width}, seed {args.seed} + length, at most "
        f"{args.max_objects} objects; model: {args.model}; {machine['cpu']} ({machine['nproc']} cores), "
        f"{args.threads} torch thread(s), one fresh process per row. Clip: windows of {args.clip_length} sharing "
        f"{args.clip_overlap}; online: windows of {args.window} sharing {args.window_overlap}. Identity: instances "
        f"scoring above {args.track_score}.",
        "",
        f"Command: `python benchmarks/bench_long_video.py {shlex.join(sys.argv[1:])}`",
        "",
        markdown_table(HEADER, [format_row(row) for row in rows]),
    ]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.worker:
        run_worker(args)
        return 0
    rows = sweep(args)
    Path(args.output).write_text(report(args, rows))
    json_path = Path(args.output_json or Path(args.output).with_suffix(".json"))
    json_path.write_text(json.dumps({"command": sys.argv, "rows": rows}, indent=1))
    print(f"wrote {args.output} and {json_path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
