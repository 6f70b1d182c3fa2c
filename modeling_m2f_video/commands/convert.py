"""`m2f-video convert`: official detectron2 checkpoints or transformers image checkpoints -> video model folders.

m2f-video convert official --config CONFIG.yaml --checkpoint CKPT --output DIR [--dataset ytvis2019] [--verify]
    [--overwrite]
m2f-video convert image --model DIR_OR_HUB_ID --output DIR [--num-labels N --id2label FILE] [--verify] [--overwrite]

Bad input (a config, checkpoint or folder that cannot be converted) is a `ConversionError`, which the CLI prints
as one line, `error: <file>: <problem>`, with exit status 2.
"""

import argparse
from pathlib import Path

OVERWRITE_HELP = "replace an existing non-empty model folder at --output (refused otherwise)"


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
    official.add_argument("--overwrite", action="store_true", help=OVERWRITE_HELP)
    official.set_defaults(func=run_official)

    image = sources.add_parser("image", help="a transformers image Mask2Former (folder or hub id)")
    image.add_argument("--model", required=True, help="Mask2FormerForUniversalSegmentation folder or hub id")
    image.add_argument("--output", required=True, type=Path, help="output folder")
    image.add_argument("--num-labels", type=int, help="number of classes (re-initialises the class head)")
    image.add_argument("--id2label", type=Path, help='JSON file {"0": "name", ...} (re-initialises the class head)')
    image.add_argument("--verify", action="store_true", help="run a random clip through the result")
    image.add_argument("--overwrite", action="store_true", help=OVERWRITE_HELP)
    image.set_defaults(func=run_image)


def run_official(args: argparse.Namespace) -> int:
    """Convert an official checkpoint and say where the folder is."""
    from modeling_m2f_video.conversion import convert_official_checkpoint

    output = convert_official_checkpoint(
        args.config, args.checkpoint, args.output, dataset=args.dataset, verify=args.verify, overwrite=args.overwrite
    )
    print(f"converted model written to {output}")
    return 0


def run_image(args: argparse.Namespace) -> int:
    """Convert an image checkpoint and say where the folder is."""
    from modeling_m2f_video.conversion import convert_image_checkpoint

    output = convert_image_checkpoint(
        args.model,
        args.output,
        num_labels=args.num_labels,
        id2label=args.id2label,
        verify=args.verify,
        overwrite=args.overwrite,
    )
    print(f"converted model written to {output}")
    return 0
