"""`m2f-video convert`: official detectron2 checkpoints or transformers image checkpoints -> video model folders.

m2f-video convert official --config CONFIG.yaml --checkpoint CKPT --output DIR [--dataset ytvis2019] [--verify]
m2f-video convert image --model DIR_OR_HUB_ID --output DIR [--num-labels N --id2label FILE] [--verify]
"""

import argparse
import sys
from collections.abc import Callable
from pathlib import Path


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the `convert` command and its `official` / `image` subcommands."""
    parser = subparsers.add_parser("convert", help="convert checkpoints into video model folders")
    sources = parser.add_subparsers(dest="source", required=True, metavar="SOURCE")

    official = sources.add_parser("official", help="an official Mask2Former (detectron2) checkpoint")
    official.add_argument("--config", required=True, type=Path, help="detectron2 YAML (merged or with _BASE_)")
    official.add_argument("--checkpoint", required=True, type=Path, help="model-zoo .pkl or .pth")
    official.add_argument("--output", required=True, type=Path, help="output folder")
    official.add_argument("--dataset", choices=["ytvis2019", "ytvis2021"], help="class names of this dataset")
    official.add_argument("--verify", action="store_true", help="run a random clip through the result")
    official.set_defaults(func=run_official)

    image = sources.add_parser("image", help="a transformers image Mask2Former (folder or hub id)")
    image.add_argument("--model", required=True, help="Mask2FormerForUniversalSegmentation folder or hub id")
    image.add_argument("--output", required=True, type=Path, help="output folder")
    image.add_argument("--num-labels", type=int, help="number of classes (re-initialises the class head)")
    image.add_argument("--id2label", type=Path, help='JSON file {"0": "name", ...} (re-initialises the class head)')
    image.add_argument("--verify", action="store_true", help="run a random clip through the result")
    image.set_defaults(func=run_image)


def run_official(args: argparse.Namespace) -> int:
    from modeling_m2f_video.conversion import convert_official_checkpoint

    return _convert(convert_official_checkpoint, args.config, args.checkpoint, args.output, args.dataset, args.verify)


def run_image(args: argparse.Namespace) -> int:
    from modeling_m2f_video.conversion import convert_image_checkpoint

    return _convert(convert_image_checkpoint, args.model, args.output, args.num_labels, args.id2label, args.verify)


def _convert(converter: Callable[..., Path], *arguments) -> int:
    """Runs a converter; a conversion error becomes a message on stderr and exit code 1."""
    from modeling_m2f_video.conversion import ConversionError

    try:
        output = converter(*arguments)
    except ConversionError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    print(f"converted model written to {output}")
    return 0
