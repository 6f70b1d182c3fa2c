"""Mask2Former for video instance segmentation, in the style of Hugging Face Transformers.

Importing the package is cheap: its names are imported when first used (transformers' lazy style). The first use of
any of them registers the config, models and video processor with transformers' Auto classes and the
`video-instance-segmentation` task with its pipeline registry (`register()` does the same explicitly).
"""

from typing import TYPE_CHECKING

from . import _compat
from ._lazy import attach

if TYPE_CHECKING:
    from .auto import AutoModelForVideoInstanceSegmentation
    from .configuration import Mask2FormerVideoConfig
    from .inference.segment import VideoInstances, segment_video
    from .modeling_m2f_video import (
        Mask2FormerVideoForVideoInstanceSegmentation,
        Mask2FormerVideoForVideoInstanceSegmentationOutput,
        Mask2FormerVideoModel,
        Mask2FormerVideoModelOutput,
        Mask2FormerVideoPreTrainedModel,
    )
    from .pipeline_video_instance_segmentation import VideoInstanceSegmentationPipeline
    from .processing.video_processing_m2f_video import Mask2FormerVideoProcessor
    from .registration import register

_EXPORTS = {
    "auto": ["AutoModelForVideoInstanceSegmentation"],
    "configuration": ["Mask2FormerVideoConfig"],
    "inference.segment": ["VideoInstances", "segment_video"],
    "modeling_m2f_video": [
        "Mask2FormerVideoForVideoInstanceSegmentation",
        "Mask2FormerVideoForVideoInstanceSegmentationOutput",
        "Mask2FormerVideoModel",
        "Mask2FormerVideoModelOutput",
        "Mask2FormerVideoPreTrainedModel",
    ],
    "pipeline_video_instance_segmentation": ["VideoInstanceSegmentationPipeline"],
    "processing.video_processing_m2f_video": ["Mask2FormerVideoProcessor"],
    "registration": ["register"],
}


def _register() -> None:
    from .registration import register

    register()


_compat.install()
__getattr__, __dir__, __all__ = attach(__name__, _EXPORTS, on_first_use=_register)
