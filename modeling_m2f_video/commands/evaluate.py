"""`m2f-video evaluate`: score YouTube-VIS results against ground truth with the official metric."""

import argparse
import json
from pathlib import Path

from ..errors import UserInputError


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the `evaluate` subcommand."""
    parser = subparsers.add_parser(
        "evaluate",
        help="YouTube-VIS mask AP/AR of a results file",
        description="Evaluate YouTube-VIS results (submission format) against an annotation file, giving the "
        "numbers of the official YouTube-VIS evaluation.",
    )
    parser.add_argument("--gt", required=True, type=Path, metavar="ANNOTATIONS.json", help="ground-truth annotations")
    parser.add_argument(
        "--results",
        required=True,
        type=Path,
        metavar="RESULTS.json",
        help="results: a JSON list of records, or a submission .zip holding results.json",
    )
    parser.add_argument("--per-category", action="store_true", help="also print AP, AP50, AP75, AR100 per category")
    parser.add_argument("--json", type=Path, metavar="OUT.json", help="write the 12 numbers and per-category AP here")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Print the table (and write the JSON); bad input is a `UserInputError` for the CLI to report."""
    from ..evaluation.metric import evaluate_ytvis

    if args.json is not None:
        _check_json_path(args.json)  # before the evaluation, which may take a while
    try:
        result = evaluate_ytvis(args.gt, args.results)
    except ValueError as error:  # bad input (a UserInputError, or a plain ValueError): say which file it is in
        raise UserInputError(_naming_the_file(str(error), args.gt, args.results)) from error
    print(result.table(per_category=args.per_category))
    if args.json is not None:
        args.json.write_text(json.dumps(result.to_dict(), indent=2) + "\n", encoding="utf-8")
    return 0


def _check_json_path(path: Path) -> None:
    """Refuse a `--json` path that cannot be written: a folder, or one in a folder that does not exist."""
    if path.is_dir():
        raise UserInputError(f"{path}: is a folder; --json needs a file name")
    if not path.parent.is_dir():
        raise UserInputError(f"{path}: the folder {path.parent} does not exist")


def _naming_the_file(message: str, gt: Path, results: Path) -> str:
    """The reader's message, led by the file it is about when it does not name it (`results[3]: ...`)."""
    for label, path in (("ground truth", gt), ("results", results)):
        if message.startswith(label) and str(path) not in message:
            return f"{path}: {message}"
    return message
