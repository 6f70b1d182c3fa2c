"""The `m2f-video` command line: one console script, one subcommand per job.

Each subcommand lives next to the code it drives, in a module with a `register(subparsers)`
function that adds its parser and sets `func` to the function that runs it.
"""

import argparse
import importlib
import sys

from .errors import UserInputError

# Exit statuses: bad input (as argparse uses), and Ctrl-C (128 + SIGINT, as shells report it).
EXIT_BAD_INPUT = 2
EXIT_INTERRUPTED = 130

# Subcommand modules; each adds its parser in `register(subparsers)`.
COMMAND_MODULES = (
    "modeling_m2f_video.commands.make_synthetic",
    "modeling_m2f_video.commands.predict",
    "modeling_m2f_video.commands.demo",
    "modeling_m2f_video.commands.convert",
    "modeling_m2f_video.commands.evaluate",
    "modeling_m2f_video.commands.hub",
    "modeling_m2f_video.commands.train",
    "modeling_m2f_video.commands.app",
    "modeling_m2f_video.commands.export_onnx",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="m2f-video", description="Mask2Former for video instance segmentation.")
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for module_name in COMMAND_MODULES:
        importlib.import_module(module_name).register(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run one subcommand. Bad input and file-system errors are one line on stderr, Ctrl-C a clean exit."""
    args = build_parser().parse_args(argv)
    try:
        return args.func(args) or 0
    except UserInputError as error:
        print(f"error: {error}", file=sys.stderr)
    except OSError as error:
        if error.filename is None:  # not about a file the user named: a bug or the system, keep the traceback
            raise
        print(f"error: {error.filename}: {error.strerror or error}", file=sys.stderr)
    except KeyboardInterrupt:
        print(f"\n{args.command}: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    return EXIT_BAD_INPUT


if __name__ == "__main__":
    sys.exit(main())
