"""`m2f-video demo`: segment a generated video with the shipped demo model, with no downloads (see `demo.run_demo`)."""

from __future__ import annotations

import argparse
import sys


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the `demo` subcommand."""
    parser = subparsers.add_parser(
        "demo",
        help="segment a generated video with the shipped demo model (no downloads)",
        description=(
            "Generate a synthetic video, segment it with the demo model that ships with the package, and write "
            "OUTPUT/demo_video.mp4 (the input), OUTPUT/results.json, OUTPUT/videos.json, "
            "OUTPUT/demo_video_overlay.mp4 and OUTPUT/demo_video_sheet.png."
        ),
    )
    parser.add_argument("--output", default="m2f-video-demo", help="folder to write into (default m2f-video-demo)")
    parser.add_argument("--frames", type=int, default=24, help="frames of the generated video (default 24)")
    # The demo model was trained on 96x128 synthetic videos (see demo_model/README.md).
    parser.add_argument("--height", type=int, default=96, help="frame height (default 96)")
    parser.add_argument("--width", type=int, default=128, help="frame width (default 128)")
    parser.add_argument(
        "--video-index",
        type=int,
        help="which generated video to use (default: the first with at least 3 objects)",
    )
    parser.add_argument("--threshold", type=float, default=0.5, help="keep instances scoring above this (default 0.5)")
    parser.add_argument("--device", help="device for the model (default cpu, or the accelerator)")
    parser.add_argument("--no-progress", action="store_true", help="do not show progress bars")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Run the demo and print where everything is."""
    from ..demo import print_ground_truth_match, run_demo
    from .predict import print_summary

    try:
        demo = run_demo(
            args.output,
            video_index=args.video_index,
            num_frames=args.frames,
            height=args.height,
            width=args.width,
            threshold=args.threshold,
            device=args.device,
            progress=not args.no_progress,
        )
    except FileNotFoundError as error:
        print(f"demo: error: {error}", file=sys.stderr)
        return 2
    print(f"input:   {demo.input_path}")
    print_summary(demo.summary)
    print_ground_truth_match(demo.video, demo.summary["results"], demo.class_names)
    return 0
