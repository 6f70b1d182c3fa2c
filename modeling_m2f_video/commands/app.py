"""`m2f-video app`: serve the web app (Gradio) on a model folder or the demo model (see `app.local.launch_app`)."""

from __future__ import annotations

import argparse

from ..app.defaults import DEFAULT_MAX_FRAMES
from ..errors import UserInputError
from .option_types import int_between, positive_int


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the `app` subcommand."""
    parser = subparsers.add_parser(
        "app",
        help="serve a web page to segment videos (needs the app extra: pip install 'm2f-video[app]')",
        description=(
            "Start a Gradio web app: upload a video (or pick the generated example), set top-k, threshold and mode, "
            "and see the overlay video, the contact sheet and the table of instances; download results.json and "
            "the overlay. It prints the address to open; Ctrl-C stops it. Needs no network."
        ),
    )
    parser.add_argument(
        "--model", default="demo", help="model folder or Hub id, or 'demo' for the shipped demo model (default demo)"
    )
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1; 0.0.0.0: all)")
    parser.add_argument(
        "--port", type=int_between(1, 65535), help="port to listen on (default: the first free one from 7860)"
    )
    parser.add_argument(
        "--max-frames",
        type=positive_int,
        default=DEFAULT_MAX_FRAMES,
        help=f"longest video accepted, in frames (default {DEFAULT_MAX_FRAMES})",
    )
    parser.add_argument("--device", help="device for the model (default: the accelerator, or cpu)")
    parser.add_argument(
        "--trust-remote-code",
        action="store_true",
        help="load a model folder that brings its own Python code (one made by `m2f-video export-hub`)",
    )
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Serve the app until Ctrl-C; a missing app extra or an unusable model is a `UserInputError`."""
    try:
        from ..app.local import launch_app
    except ModuleNotFoundError as error:
        if error.name != "gradio":
            raise
        raise UserInputError(
            "m2f-video app: Gradio is not installed; install the app extra: pip install 'm2f-video[app]'"
        ) from error
    launch_app(
        args.model,
        host=args.host,
        port=args.port,
        device=args.device,
        trust_remote_code=args.trust_remote_code,
        max_frames=args.max_frames,
    )
    return 0
