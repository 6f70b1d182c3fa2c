"""`m2f-video predict`: segment videos and write YouTube-VIS results, overlay videos and contact sheets (see
`batch_prediction`, which does the work; under `accelerate launch` the videos are split across the processes)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


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
    parser.add_argument("--top-k", type=int, help="most instances per video (default: the model's test_top_k)")
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
    from ..batch_prediction import predict_videos
    from ..processing.video_io import list_videos

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
