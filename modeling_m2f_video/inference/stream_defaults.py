"""Defaults of the online mode (`online.segment_stream`, `m2f-video predict --online`), in one light module so
that the command line can show them without importing the model code."""

STREAM_WINDOW = 16  # frames per model call; the latency bound
STREAM_OVERLAP = 4  # frames shared by consecutive windows, for mask-overlap matching
STREAM_THRESHOLD = 0.5  # a frame's instances are the tracks scoring above this
