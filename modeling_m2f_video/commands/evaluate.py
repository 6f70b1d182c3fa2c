"""`m2f-video evaluate`: score YouTube-VIS results against ground truth with the official metric."""

import argparse
import json
import sys
from pathlib import Path


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
    """Print the table (and write the JSON); exit code 1 with a message on bad input."""
    from ..evaluation.metric import evaluate_ytvis

    try:
        result = evaluate_ytvis(args.gt, args.results)
    except (ValueError, OSError) as error:
        print(f"m2f-video evaluate: error: {error}", file=sys.stderr)
        return 1
    print(result.table(per_category=args.per_category))
    if args.json is not None:
        args.json.write_text(json.dumps(result.to_dict(), indent=2) + "\n", encoding="utf-8")
    return 0
