"""Teaching transformers the video Mask2Former: its Auto classes and `pipeline("video-instance-segmentation")`."""

from .auto import register_auto_classes
from .pipeline_video_instance_segmentation import register_pipeline


def register() -> None:
    """Register the config, models and video processor with transformers' Auto classes, and the
    `video-instance-segmentation` task with its pipeline registry. Calling it again does nothing.

    Using any name of the package (`from modeling_m2f_video import ...`) calls it.
    """
    register_auto_classes()
    register_pipeline()
