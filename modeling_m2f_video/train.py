"""Entry point for `python -m modeling_m2f_video.train ...` and `accelerate launch -m modeling_m2f_video.train ...`:
the options of `m2f-video train`."""

import sys

from .cli import main

if __name__ == "__main__":
    sys.exit(main(["train", *sys.argv[1:]]))
