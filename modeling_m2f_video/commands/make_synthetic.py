"""`m2f-video make-synthetic`: write a synthetic YouTube-VIS-format data set of moving textured shapes."""

import argparse
import sys


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
    parser.add_argument("--output", required=True, help="folder to write train/ and valid/ into")
    parser.add_argument("--videos", type=int, required=True, help="number of videos in both splits together")
    parser.add_argument("--frames", type=int, required=True, help="frames per video")
    parser.add_argument(
        "--classes",
        type=int,
        required=True,
        help="number of classes (each a shape in a colour family; the generator says how many it has)",
    )
    parser.add_argument("--height", type=int, default=240, help="frame height in pixels (default 240)")
    parser.add_argument("--width", type=int, default=320, help="frame width in pixels (default 320)")
    parser.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    parser.add_argument(
        "--valid-fraction", type=float, default=0.2, help="fraction of the videos kept for valid/ (default 0.2)"
    )
    parser.add_argument("--max-objects", type=int, default=4, help="most objects in one video (default 4)")
    parser.add_argument("--jpeg-quality", type=int, default=90, help="JPEG quality of the frames (default 90)")
    parser.add_argument("--no-progress", action="store_true", help="do not show a progress bar")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Write the data set and print where each split went."""
    from ..processing.synthetic import category_names, make_synthetic_dataset

    try:
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
            jpeg_quality=args.jpeg_quality,
            progress=not args.no_progress,
        )
    except ValueError as error:
        print(f"make-synthetic: error: {error}", file=sys.stderr)
        return 2
    for split, path in paths.items():
        print(f"{split}: {path}")
    print(f"classes: {', '.join(category_names(args.classes))}")
    return 0
