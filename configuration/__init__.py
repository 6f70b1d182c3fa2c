from .configuration_m2f_video import Mask2FormerVideoConfig
from .presets import DATASET_CATEGORIES, PRESETS

__all__ = ["Mask2FormerVideoConfig", "DATASET_CATEGORIES", "PRESETS"]
