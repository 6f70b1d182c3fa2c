"""Mask2Former for video instance segmentation, in the style of Hugging Face Transformers.

Importing the package registers the config, model and processor with transformers' Auto classes.
"""

from .configuration import Mask2FormerVideoConfig

__all__ = ["Mask2FormerVideoConfig"]
