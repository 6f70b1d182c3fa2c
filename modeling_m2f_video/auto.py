"""Registration with transformers' Auto classes, and the auto class for the video instance segmentation head.

transformers has no `AutoModelForVideoInstanceSegmentation`; this one is built the way transformers builds its own
auto classes, from a (lazy) mapping that starts empty and is filled by `register`.
"""

from collections import OrderedDict

from transformers import AutoConfig, AutoModel, AutoVideoProcessor
from transformers.models.auto.auto_factory import _BaseAutoModelClass, _LazyAutoMapping
from transformers.models.auto.configuration_auto import CONFIG_MAPPING_NAMES

from .configuration import Mask2FormerVideoConfig
from .modeling_m2f_video import Mask2FormerVideoForVideoInstanceSegmentation, Mask2FormerVideoModel
from .processing.video_processing_m2f_video import Mask2FormerVideoProcessor


class AutoModelForVideoInstanceSegmentation(_BaseAutoModelClass):
    """Loads the video instance segmentation model of a config or checkpoint, like transformers' auto classes."""

    _model_mapping = _LazyAutoMapping(CONFIG_MAPPING_NAMES, OrderedDict())


def register_auto_classes() -> None:
    """Makes `AutoConfig`, `AutoModel`, `AutoModelForVideoInstanceSegmentation` and `AutoVideoProcessor` know the
    video Mask2Former."""
    AutoConfig.register(Mask2FormerVideoConfig.model_type, Mask2FormerVideoConfig, exist_ok=True)
    AutoModel.register(Mask2FormerVideoConfig, Mask2FormerVideoModel, exist_ok=True)
    AutoModelForVideoInstanceSegmentation.register(
        Mask2FormerVideoConfig, Mask2FormerVideoForVideoInstanceSegmentation, exist_ok=True
    )
    AutoVideoProcessor.register(Mask2FormerVideoConfig, Mask2FormerVideoProcessor, exist_ok=True)
