"""Errors raised by the converters. All derive from `ConversionError`, so callers can catch one type."""


class ConversionError(ValueError):
    """A checkpoint or config cannot be converted; the message says what and where."""


class CheckpointError(ConversionError):
    """The checkpoint file is missing, truncated, corrupt, or not a dict of weights."""


class UnsafeCheckpointError(CheckpointError):
    """The checkpoint references code (a global other than numpy arrays and plain containers): refused unread."""


class ConfigError(ConversionError):
    """The detectron2 config describes an architecture the video model cannot express."""


class KeyMappingError(ConversionError):
    """Weights do not fit the model: unmapped, missing or mis-shaped keys (all of them are listed)."""
