"""Mask2Former for video instance segmentation, in the style of Hugging Face Transformers.

Importing the package registers the config, models and video processor with transformers' Auto classes, and the
`video-instance-segmentation` task with its pipeline registry.
"""

from .auto import AutoModelForVideoInstanceSegmentation, register_auto_classes
from .configuration import Mask2FormerVideoConfig
from .modeling_m2f_video import (
    Mask2FormerVideoForVideoInstanceSegmentation,
    Mask2FormerVideoForVideoInstanceSegmentationOutput,
    Mask2FormerVideoModel,
    Mask2FormerVideoModelOutput,
    Mask2FormerVideoPreTrainedModel,
)
from .pipeline_video_instance_segmentation import VideoInstanceSegmentationPipeline, register_pipeline
from .processing.video_processing_m2f_video import Mask2FormerVideoProcessor

register_auto_classes()
register_pipeline()

__all__ = [
    "AutoModelForVideoInstanceSegmentation",
    "Mask2FormerVideoConfig",
    "Mask2FormerVideoForVideoInstanceSegmentation",
    "Mask2FormerVideoForVideoInstanceSegmentationOutput",
    "Mask2FormerVideoModel",
    "Mask2FormerVideoModelOutput",
    "Mask2FormerVideoPreTrainedModel",
    "Mask2FormerVideoProcessor",
    "VideoInstanceSegmentationPipeline",
]
