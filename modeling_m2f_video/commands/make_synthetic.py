"""`m2f-video make-synthetic`: write a synthetic YouTube-VIS-format data set of moving textured shapes."""

import argparse
from pathlib import Path

from ..errors import UserInputError
from .option_types import float_between, int_at_least, int_between, non_negative_int, positive_int

# The generator draws frames of at least 16 x 16 pixels.
MIN_FRAME_SIZE = 16


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the `make-synthetic` subcommand."""
    parser = subparsers.add_parser(
        "make-synthetic",
        help="write a synthetic YouTube-VIS-format data set (train/ and valid/)",
        description=(
            "Render videos of moving, scaling, occluding textured shapes with exact masks, and write them in the "
            "YouTube-VIS format: OUTPUT/train and OUTPUT/valid, each with JPEGImages/<video>/<frame>.jpg and "
            "instances.json. A class is a shape type and a colour family. The same seed gives the same videos."
        ),
    )
    parser.add_argument("--output", required=True, type=Path, help="folder to write train/ and valid/ into")
    parser.add_argument("--videos", type=positive_int, required=True, help="number of videos in both splits together")
    parser.add_argument("--frames", type=positive_int, required=True, help="frames per video")
    parser.add_argument(
        "--classes",
        type=positive_int,
        required=True,
        help="number of classes (each a shape in a colour family; the generator says how many it has)",
    )
    frame_size = int_at_least(MIN_FRAME_SIZE)
    parser.add_argument("--height", type=frame_size, default=240, help="frame height, at least 16 (default 240)")
    parser.add_argument("--width", type=frame_size, default=320, help="frame width, at least 16 (default 320)")
    parser.add_argument("--seed", type=non_negative_int, default=0, help="random seed (default 0)")
    parser.add_argument(
        "--valid-fraction",
        type=float_between(0.0, 1.0, exclude_high=True),
        default=0.2,
        help="fraction of the videos kept for valid/, in [0, 1) (default 0.2)",
    )
    parser.add_argument("--max-objects", type=positive_int, default=4, help="most objects in one video (default 4)")
    parser.add_argument(
        "--motion",
        choices=("linear", "bounded"),
        default="linear",
        help="linear: constant velocity and growth (the demo model's videos); bounded: objects bounce, sizes "
        "oscillate, objects leave and come back, in distribution at any length (default linear)",
    )
    parser.add_argument(
        "--jpeg-quality", type=int_between(1, 100), default=90, help="JPEG quality of the frames, 1-100 (default 90)"
    )
    parser.add_argument("--no-progress", action="store_true", help="do not show a progress bar")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Write the data set and print where each split went; bad input is a `UserInputError` for the CLI to report."""
    from ..processing.synthetic import category_names, make_synthetic_dataset

    if args.output.exists() and not args.output.is_dir():
        raise UserInputError(f"{args.output}: is a file, not a folder")
    try:
        names = category_names(args.classes)
    except ValueError as error:
        raise UserInputError(f"--classes {args.classes}: {error}") from error
    paths = make_synthetic_dataset(
        args.output,
        num_videos=args.videos,
        num_frames=args.frames,
        num_classes=args.classes,
        height=args.height,
        width=args.width,
        seed=args.seed,
        valid_fraction=args.valid_fraction,
        max_objects=args.max_objects,
        motion=args.motion,
        jpeg_quality=args.jpeg_quality,
        progress=not args.no_progress,
    )
    for split, path in paths.items():
        print(f"{split}: {path}")
    print(f"classes: {', '.join(names)}")
    return 0
