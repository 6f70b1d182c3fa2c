"""Entry point for `accelerate launch -m modeling_m2f_video.train ...` (the options of `m2f-video train`)."""

import argparse
import sys

from .commands.train import add_arguments, run


def main(argv: list[str] | None = None) -> int:
    """Parse the training options and train."""
    parser = argparse.ArgumentParser(
        prog="python -m modeling_m2f_video.train", description="Train a video Mask2Former (see `m2f-video train`)."
    )
    add_arguments(parser)
    return run(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
