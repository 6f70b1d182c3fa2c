"""`m2f-video demo`: segment a generated video with the shipped demo model, with no downloads (see `demo.run_demo`)."""

from __future__ import annotations

import argparse

from .option_types import int_at_least, non_negative_int, positive_int, probability

# The synthetic generator draws frames of at least 16 x 16 pixels.
MIN_FRAME_SIZE = 16


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the `demo` subcommand."""
    parser = subparsers.add_parser(
        "demo",
        help="segment a generated video with the shipped demo model (no downloads)",
        description=(
            "Generate a synthetic video, segment it with the demo model that ships with the package, and write "
            "OUTPUT/demo_video.mp4 (the input), OUTPUT/results.json, OUTPUT/videos.json, "
            "OUTPUT/demo_video_overlay.mp4 and OUTPUT/demo_video_sheet.png (replacing those of an earlier demo)."
        ),
    )
    parser.add_argument("--output", default="m2f-video-demo", help="folder to write into (default m2f-video-demo)")
    parser.add_argument("--frames", type=positive_int, default=24, help="frames of the generated video (default 24)")
    # The demo model was trained on 96x128 synthetic videos (see demo_model/README.md).
    frame_size = int_at_least(MIN_FRAME_SIZE)
    parser.add_argument("--height", type=frame_size, default=96, help="frame height, at least 16 (default 96)")
    parser.add_argument("--width", type=frame_size, default=128, help="frame width, at least 16 (default 128)")
    parser.add_argument(
        "--video-index",
        type=non_negative_int,
        help="which generated video to use (default: the first with at least 3 objects)",
    )
    parser.add_argument(
        "--threshold", type=probability, default=0.5, help="keep instances scoring above this, 0-1 (default 0.5)"
    )
    parser.add_argument("--device", help="device for the model (default cpu, or the accelerator)")
    parser.add_argument("--no-progress", action="store_true", help="do not show progress bars")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Run the demo and print where everything is; bad input is a `UserInputError` for the CLI to report."""
    from ..demo import print_ground_truth_match, run_demo
    from .predict import print_summary

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
    print(f"input:   {demo.input_path}")
    print_summary(demo.summary)
    print_ground_truth_match(demo.video, demo.summary["results"], demo.class_names)
    return 0
