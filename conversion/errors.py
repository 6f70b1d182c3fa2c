"""Errors raised by the converters. All derive from `ConversionError`, so callers can catch one type, and that from
`UserInputError`, so that the CLI prints each as one line, `error: <file>: <problem>`."""

from modeling_m2f_video.errors import UserInputError


class ConversionError(UserInputError):
    """A checkpoint, config or output folder cannot be used; the message names it first, then the problem."""


class CheckpointError(ConversionError):
    """The checkpoint file is missing, truncated, corrupt, or not a dict of weights."""


class UnsafeCheckpointError(CheckpointError):
    """The checkpoint references code (a global other than the numpy and container ones allowed): refused unread."""


class ConfigError(ConversionError):
    """The detectron2 config describes an architecture the video model cannot express, or has a malformed value."""


class KeyMappingError(ConversionError):
    """Weights do not fit the model: unmapped, missing or mis-shaped keys (all of them are listed)."""
