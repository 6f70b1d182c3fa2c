"""Helpers shared by the inference tests: a tiny random model folder and small synthetic videos."""

from pathlib import Path

import numpy as np
import torch
from conftest import tiny_config

from modeling_m2f_video import Mask2FormerVideoForVideoInstanceSegmentation
from modeling_m2f_video.processing.synthetic import generate_video
from modeling_m2f_video.processing.video_processing_m2f_video import Mask2FormerVideoProcessor

HEIGHT, WIDTH = 64, 80


def save_tiny_model(folder: Path, with_processor: bool = True) -> Path:
    """A randomly initialised tiny model (and its processor, resizing to shortest side 64) saved to `folder`."""
    torch.manual_seed(0)
    model = Mask2FormerVideoForVideoInstanceSegmentation(tiny_config(num_labels=3)).eval()
    model.save_pretrained(folder)
    if with_processor:
        Mask2FormerVideoProcessor(size={"shortest_edge": HEIGHT, "longest_edge": 1333}).save_pretrained(folder)
    return folder


def synthetic_frames(num_frames: int, index: int = 0, height: int = HEIGHT, width: int = WIDTH) -> np.ndarray:
    """(T, H, W, 3) uint8 frames of a generated video of moving shapes."""
    return generate_video(index, seed=3, num_frames=num_frames, height=height, width=width, num_classes=3).frames
