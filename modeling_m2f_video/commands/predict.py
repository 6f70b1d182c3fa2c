"""`m2f-video predict`: segment videos and write YouTube-VIS results, overlay videos and contact sheets (see
`batch_prediction`, which does the work; under `accelerate launch` the videos are split across the processes)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ..errors import UserInputError
from ..inference.stream_defaults import STREAM_OVERLAP, STREAM_THRESHOLD, STREAM_WINDOW
from .option_types import non_negative_int, positive_float, positive_int, probability

DEFAULT_CLIP_LENGTH = 32


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the `predict` subcommand."""
    parser = subparsers.add_parser(
        "predict",
        help="segment videos; write YouTube-VIS JSON, overlay videos and contact sheets",
        description=(
            "Segment one or more videos (files, folders of frames, folders of videos, or .txt lists of paths) "
            "and write OUT/results.json (YouTube-VIS format), OUT/videos.json (video_id -> video), "
            "OUT/<video>_overlay.mp4 and OUT/<video>_sheet.png. A video that fails is listed with its error in "
            "videos.json and the others go on; on Ctrl-C the finished videos are written. Under "
            "`accelerate launch` the videos are split across the processes."
        ),
    )
    parser.add_argument("inputs", nargs="+", metavar="VIDEO_OR_FOLDER", help="video files, frame folders or lists")
    parser.add_argument("--model", required=True, help="model folder or Hub id, or 'demo' for the shipped demo model")
    parser.add_argument("--output", required=True, help="folder to write the results into (empty or new)")
    parser.add_argument(
        "--overwrite",
        action="store_true",
        help="write into a non-empty output folder; a previous run's results.json and videos.json are removed first",
    )
    parser.add_argument(
        "--trust-remote-code",
        action="store_true",
        help="load a model folder that brings its own Python code (one made by `m2f-video export-hub`): this runs "
        "the folder's .py files, so use it only for folders you trust",
    )
    parser.add_argument(
        "--top-k", type=positive_int, help="most instances per video (default: the model's test_top_k)"
    )
    parser.add_argument(
        "--threshold",
        type=probability,
        help=f"keep instances scoring above this, 0-1 (default 0; with --online {STREAM_THRESHOLD})",
    )
    parser.add_argument(
        "--mode",
        choices=("auto", "whole", "clip"),
        help="whole video at once, clip by clip, or auto: clip by clip above --long-video-threshold frames "
        "(default auto; clip when --clip-length is given)",
    )
    parser.add_argument(
        "--clip-length",
        type=positive_int,
        help=f"window length of clip-by-clip inference (default {DEFAULT_CLIP_LENGTH})",
    )
    parser.add_argument(
        "--clip-overlap",
        type=non_negative_int,
        default=8,
        help="frames shared by windows, less than --clip-length (default 8)",
    )
    parser.add_argument(
        "--long-video-threshold",
        type=non_negative_int,
        default=64,
        help="auto mode: clip by clip above this length (default 64)",
    )
    online = parser.add_argument_group("online mode (a video read as a stream, for long videos and live sources)")
    online.add_argument(
        "--online",
        action="store_true",
        help="segment each video as a stream: each frame's instances are final a window after the frame and are "
        "written to OUT/<video>_frames.jsonl at once; results.json gets one record per track",
    )
    online.add_argument(
        "--window", type=positive_int, default=STREAM_WINDOW, help=f"frames per model call (default {STREAM_WINDOW})"
    )
    online.add_argument(
        "--window-overlap",
        type=non_negative_int,
        default=STREAM_OVERLAP,
        help=f"frames shared by consecutive windows, less than --window (default {STREAM_OVERLAP})",
    )
    parser.add_argument("--frame-stride", type=positive_int, default=1, help="use every n-th frame (default 1)")
    parser.add_argument("--max-frames", type=positive_int, help="use at most this many frames per video")
    parser.add_argument(
        "--runtime",
        choices=("torch", "onnx"),
        default="torch",
        help="torch (a model folder or Hub id) or onnx: a folder made by `m2f-video export-onnx`, run by ONNX Runtime "
        "with the same pre- and post-processing (default torch)",
    )
    parser.add_argument(
        "--device",
        help="device for the model (default: the process's accelerator or cpu); with --runtime onnx, cpu or cuda[:N] "
        "picks the execution provider",
    )
    parser.add_argument("--dtype", choices=("float32", "float16", "bfloat16"), help="model dtype (default float32)")
    parser.add_argument(
        "--fps", type=positive_float, default=10.0, help="frame rate of the overlay videos (default 10)"
    )
    parser.add_argument(
        "--overlay-threshold",
        type=probability,
        default=0.5,
        help=(
            "draw only instances scoring at least this in the pictures, 0-1 (default 0.5), and of several instances"
            " with the same mask only the best; results.json keeps all"
        ),
    )
    parser.add_argument("--sheet-frames", type=positive_int, default=8, help="frames on the contact sheet (default 8)")
    parser.add_argument("--no-pictures", action="store_true", help="write only the JSON files")
    parser.add_argument("--no-progress", action="store_true", help="do not show progress bars")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Run `predict_videos` on the inputs and print where the results are (on the main process).

    Exit status 0, or 1 when a video failed; bad input is a `UserInputError` for the CLI to report. On Ctrl-C it
    says where the finished videos' results are and lets the CLI exit with the interrupt status.
    """
    from ..batch_prediction import PredictionInterrupted, predict_videos

    _check_online_options(args)
    clip_length = DEFAULT_CLIP_LENGTH if args.clip_length is None else args.clip_length
    if args.clip_overlap >= clip_length:
        raise UserInputError(f"--clip-overlap {args.clip_overlap}: must be less than --clip-length ({clip_length})")
    try:
        summary = predict_videos(
            _list_inputs(args.inputs),
            model=args.model,
            output=args.output,
            top_k=args.top_k,
            threshold=args.threshold,
            mode=args.mode or ("clip" if args.clip_length is not None else "auto"),
            clip_length=clip_length,
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
            overwrite=args.overwrite,
            trust_remote_code=args.trust_remote_code,
            runtime=args.runtime,
            online=args.online,
            window=args.window,
            window_overlap=args.window_overlap,
        )
    except PredictionInterrupted as interrupted:
        output, total = Path(interrupted.summary["output"]), len(interrupted.summary["videos"])
        print(
            f"\nresults of the {interrupted.finished} of {total} videos finished before the interrupt kept in "
            f"{output / 'results.json'} and {output / 'videos.json'}",
            file=sys.stderr,
        )
        raise
    if summary is None:  # not the main process
        return 0
    print_summary(summary)
    return 1 if any(video.get("error") for video in summary["videos"]) else 0


def _check_online_options(args: argparse.Namespace) -> None:
    """Refuse options of the whole / clip-by-clip modes together with --online, and a window overlap that is not
    less than the window."""
    if args.online:
        given = [option for option, value in (("--mode", args.mode), ("--clip-length", args.clip_length)) if value]
        given += ["--top-k"] if args.top_k is not None else []
        if given:
            raise UserInputError(f"{given[0]}: does not apply with --online (use --window and --threshold)")
    if args.window_overlap >= args.window:
        raise UserInputError(f"--window-overlap {args.window_overlap}: must be less than --window ({args.window})")


def _list_inputs(inputs: list[str]) -> list[Path]:
    """The videos named on the command line (folders and .txt lists expanded); a missing one stops the run."""
    from ..processing.video_io import list_videos

    try:
        return [video for path in inputs for video in list_videos(path)]
    except ValueError as error:
        raise UserInputError(str(error)) from error


def print_summary(summary: dict) -> None:
    """Where the files are, and which videos failed (one `error:` line each, on stderr)."""
    output = Path(summary["output"])
    print(f"results: {output / 'results.json'} ({len(summary['results'])} instances)")
    print(f"videos:  {output / 'videos.json'}")
    for video in summary["videos"]:
        if video.get("error"):
            print(f"error: {_error_text(video)}", file=sys.stderr)
        for key in ("overlay", "sheet"):
            if video.get(key):
                print(f"{key}: {output / video[key]}")


def _error_text(video: dict) -> str:
    """A failed video's error for people: the video first (unless the message names it), then its type where it is
    not the usual ValueError of bad input."""
    where, error = video["path"] or video["name"], video["error"]
    text = error["message"] if error["message"].startswith(where) else f"{where}: {error['message']}"
    return text if error["type"] in ("ValueError", "UserInputError") else f"{text} ({error['type']})"
