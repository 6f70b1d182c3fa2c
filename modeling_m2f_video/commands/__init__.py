"""Subcommands of the `m2f-video` console script (see `modeling_m2f_video.cli`)."""
