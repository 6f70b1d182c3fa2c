"""Converters to video Mask2Former folders: official detectron2 checkpoints and transformers image checkpoints."""

from .errors import CheckpointError, ConfigError, ConversionError, KeyMappingError, UnsafeCheckpointError
from .image import convert_image_checkpoint
from .official import convert_official_checkpoint

__all__ = [
    "CheckpointError",
    "ConfigError",
    "ConversionError",
    "KeyMappingError",
    "UnsafeCheckpointError",
    "convert_image_checkpoint",
    "convert_official_checkpoint",
]
