"""The one inference path: [`segment_video`] runs a model on a video, whole or clip by clip, and returns its
[`VideoInstances`]. The pipeline, batch prediction and training evaluation all call it.

Short videos are segmented whole, as the official code does; videos longer than `long_video_threshold` frames are
segmented clip by clip (`clip_by_clip.segment_video_by_clips`), which keeps memory bounded whatever the length.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch

from ..processing.post_processing import MaskGeometry, class_probabilities, select_instances
from ..processing.video_io import VideoSource, open_video
from .clip_by_clip import segment_video_by_clips
from .instances import InMemoryLogits, VideoInstances

MODES = ("auto", "whole", "clip")


def choose_mode(mode: str, num_frames: int, long_video_threshold: int = 64, clip_length: int = 32) -> str:
    """ "whole" or "clip" for a video of `num_frames` frames: `mode` itself, or for "auto" "clip" when the video is
    longer than both `long_video_threshold` and one window."""
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, got {mode!r}.")
    if mode == "auto":
        return "clip" if num_frames > max(long_video_threshold, clip_length) else "whole"
    return mode


def check_options(
    top_k: int,
    threshold: float,
    long_video_threshold: int,
    clip_length: int,
    clip_overlap: int,
    frame_chunk_size: int | None,
) -> None:
    """Refuse option values no run can use, naming the option, before any work is done."""
    checks = [
        ("top_k", top_k, isinstance(top_k, int) and top_k >= 0, "an integer >= 0"),
        ("threshold", threshold, math.isfinite(threshold), "a finite number"),
        ("long_video_threshold", long_video_threshold, long_video_threshold >= 0, "an integer >= 0"),
        ("clip_length", clip_length, clip_length >= 1, "an integer >= 1"),
        ("clip_overlap", clip_overlap, 0 <= clip_overlap < max(clip_length, 1), f"in [0, {clip_length})"),
        ("frame_chunk_size", frame_chunk_size, frame_chunk_size is None or frame_chunk_size >= 1, "None or >= 1"),
    ]
    for name, value, valid, expected in checks:
        if not valid:
            raise ValueError(f"{name} must be {expected}; got {value!r}")


@torch.no_grad()
def segment_video(
    model: torch.nn.Module,
    processor,
    video: Any,
    *,
    mode: str = "auto",
    top_k: int | None = None,
    threshold: float = 0.0,
    long_video_threshold: int = 64,
    clip_length: int = 32,
    clip_overlap: int = 8,
    frame_chunk_size: int | None = None,
    progress: bool = False,
) -> VideoInstances:
    """Segment one video with a `Mask2FormerVideoForVideoInstanceSegmentation` and its processor.

    Args:
        video: a `VideoSource`, or anything `open_video` accepts (file, folder of frames, frames, (T, H, W, 3) array).
        mode: "whole" (all frames at once), "clip" (clip by clip) or "auto" (see [`choose_mode`]).
        top_k: most instances; default: `model.config.test_top_k`.
        threshold: keep instances scoring above this.
        long_video_threshold, clip_length, clip_overlap: the "auto" rule and the windows of the clip mode.
        frame_chunk_size: backbone and pixel decoder on this many frames at a time (same outputs, less memory).
        progress: a progress bar over the windows of the clip mode.
    """
    top_k = model.config.test_top_k if top_k is None else top_k
    check_options(top_k, threshold, long_video_threshold, clip_length, clip_overlap, frame_chunk_size)
    source = video if isinstance(video, VideoSource) else open_video(video)
    if choose_mode(mode, source.num_frames, long_video_threshold, clip_length) == "clip":
        return segment_video_by_clips(
            model,
            processor,
            source,
            clip_length=clip_length,
            overlap=clip_overlap,
            top_k=top_k,
            threshold=threshold,
            frame_chunk_size=frame_chunk_size,
            progress=progress,
        )
    inputs = processor(source.read(), input_data_format="channels_last", return_tensors="pt")
    outputs = model(
        pixel_values_videos=inputs["pixel_values_videos"].to(model.device, model.dtype),
        frame_chunk_size=frame_chunk_size,
    )
    mask_logits = outputs.masks_queries_logits[0]  # (Q, T, h, w)
    scores, labels, query_indices = select_instances(
        class_probabilities(outputs.class_queries_logits[0]), top_k, threshold
    )
    geometry = MaskGeometry.of_masks(
        mask_logits.shape[-2:], inputs["resized_sizes"][0].tolist(), (source.height, source.width)
    )
    return VideoInstances(
        scores=scores.cpu().numpy(),
        labels=labels.cpu().numpy(),
        query_indices=query_indices.cpu().numpy(),
        logits=InMemoryLogits(mask_logits[query_indices].float()),  # only the kept queries: (N, T, h, w)
        rows=np.arange(len(query_indices)),
        geometry=geometry,
    )
