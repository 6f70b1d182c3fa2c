"""The `video-instance-segmentation` pipeline: videos in, scored instances with one mask per frame out.

```python
import modeling_m2f_video  # registers the task
from transformers import pipeline

segmenter = pipeline("video-instance-segmentation", model="path/to/model")
instances = segmenter("clip.mp4", top_k=5)
instances[0]  # {"score": 0.97, "label": "person", "label_id": 0, "masks": (H, W) bool array per frame}
```

A video is a file (anything PyAV decodes: mp4, webm, avi, mov, ...), a folder of frame images, a list of PIL
images or (H, W, 3) arrays, or a (T, H, W, 3) uint8 array; a list of videos (or a 5-D array) is a batch and
gives a list of results. The pipeline is a thin layer over the inference core (`inference.segment.segment_video`):
short videos are segmented whole, as the official code does; videos longer than `long_video_threshold` frames are
segmented clip by clip, which keeps memory bounded whatever the length. `mode="whole"` or `mode="clip"` forces
either.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
import torch
from transformers import Pipeline
from transformers.pipelines import PIPELINE_REGISTRY
from transformers.utils import VIDEO_PROCESSOR_NAME

from .auto import AutoModelForVideoInstanceSegmentation
from .inference.instances import VideoInstances
from .inference.segment import MODES, segment_video
from .processing.video_io import VideoSource, is_single_video, open_video
from .processing.video_processing_m2f_video import Mask2FormerVideoProcessor
from .ytvis.rle import decode_rle, encode_rle

TASK = "video-instance-segmentation"


def register_pipeline() -> None:
    """Register the pipeline with transformers, so that `pipeline("video-instance-segmentation", ...)` finds it.

    Calling it again does nothing.
    """
    if PIPELINE_REGISTRY.supported_tasks.get(TASK, {}).get("impl") is VideoInstanceSegmentationPipeline:
        return
    PIPELINE_REGISTRY.register_pipeline(
        TASK,
        pipeline_class=VideoInstanceSegmentationPipeline,
        pt_model=AutoModelForVideoInstanceSegmentation,
        type="video",
    )


def load_video_processor(model_path: str | os.PathLike) -> Mask2FormerVideoProcessor:
    """The video processor saved with a model, with a clear error when the folder has none."""
    path = Path(model_path)
    if path.is_dir() and not (path / VIDEO_PROCESSOR_NAME).is_file():
        raise ValueError(
            f"{path}: the model folder has no video processor config ({VIDEO_PROCESSOR_NAME}). Save one with "
            "`Mask2FormerVideoProcessor.from_model_config(model.config).save_pretrained(folder)`, or pass "
            "`video_processor=` to the pipeline."
        )
    return Mask2FormerVideoProcessor.from_pretrained(model_path)


class VideoInstanceSegmentationPipeline(Pipeline):
    """Video instance segmentation with a video Mask2Former, for any video length.

    Call options (also accepted when building the pipeline):
        top_k (`int`, `model.config.test_top_k`): most instances per video.
        threshold (`float`, 0.0): keep instances whose score is above this.
        frame_stride (`int`, 1) / max_frames (`int`, None): read every n-th frame / at most this many frames.
        mode (`str`, "auto"): "whole" runs the whole video at once, "clip" clip by clip; "auto" picks "clip"
            for videos longer than `long_video_threshold` frames (default 64).
        clip_length (`int`, 32) / clip_overlap (`int`, 8): window size and overlap of the clip-by-clip mode.
        frame_chunk_size (`int`, None): run the backbone and pixel decoder on this many frames at a time
            (same outputs, less peak memory).
        return_rle (`bool`, False): give masks as compressed RLEs (`{"size", "counts"}`) instead of bool arrays.
        progress (`bool`, False): show a progress bar over the windows of the clip-by-clip mode.

    Returns, per video, a list of instances sorted by score: `{"score", "label", "label_id", "masks"}`, where
    `masks` has one entry per (selected) frame: a lazy sequence of (H, W) bool arrays computed when read
    (`FrameMasks`: index it, iterate it, `np.stack` it), or a list of RLEs with `return_rle=True`.
    """

    _load_processor = False
    _load_image_processor = False
    _load_video_processor = False
    _load_feature_extractor = False
    _load_tokenizer = False

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        if self.video_processor is None:
            self.video_processor = load_video_processor(self.model.name_or_path)

    def __call__(self, videos: Any, **kwargs: Any) -> list[dict] | list[list[dict]]:
        """Segment one video (returns its instances) or a batch of videos (returns a list, one per video).

        Videos of a batch are run one after another (they usually differ in length), so `batch_size` must be 1.
        """
        if kwargs.get("batch_size", 1) not in (None, 1):
            raise ValueError("videos are run one at a time; pass a list of videos to segment many (batch_size=1).")
        if isinstance(videos, (list, tuple)) and len(videos) == 0:
            raise ValueError("got an empty list: expected a video or a list of videos.")
        if is_single_video(videos) and isinstance(videos, (list, tuple)):
            return super().__call__([videos], **kwargs)[0]  # a list of frames is one video, not a batch
        if isinstance(videos, (np.ndarray, torch.Tensor)) and videos.ndim == 5:
            videos = list(videos)
        if isinstance(videos, tuple):
            videos = list(videos)
        return super().__call__(videos, **kwargs)

    def _sanitize_parameters(
        self,
        top_k: int | None = None,
        threshold: float | None = None,
        frame_stride: int | None = None,
        max_frames: int | None = None,
        mode: str | None = None,
        long_video_threshold: int | None = None,
        clip_length: int | None = None,
        clip_overlap: int | None = None,
        frame_chunk_size: int | None = None,
        return_rle: bool | None = None,
        progress: bool | None = None,
    ) -> tuple[dict, dict, dict]:
        if mode is not None and mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}, got {mode!r}.")
        preprocess = _given(frame_stride=frame_stride, max_frames=max_frames)
        forward = _given(
            mode=mode,
            top_k=top_k,
            threshold=threshold,
            long_video_threshold=long_video_threshold,
            clip_length=clip_length,
            clip_overlap=clip_overlap,
            frame_chunk_size=frame_chunk_size,
            progress=progress,
        )
        postprocess = _given(return_rle=return_rle)
        return preprocess, forward, postprocess

    def preprocess(self, video: Any, frame_stride: int = 1, max_frames: int | None = None) -> dict[str, Any]:
        """Open the video (frames are decoded by `_forward`, whole or window by window)."""
        source = video if isinstance(video, VideoSource) else open_video(video, frame_stride, max_frames)
        return {"source": source}

    def _forward(self, model_inputs: dict[str, Any], **options: Any) -> dict[str, Any]:
        """Segment the video with the inference core (`inference.segment.segment_video`)."""
        return {"instances": segment_video(self.model, self.video_processor, model_inputs["source"], **options)}

    def postprocess(self, model_outputs: dict[str, Any], return_rle: bool = False) -> list[dict[str, Any]]:
        """Scored instances, with one mask (or RLE) per frame.

        Masks are a lazy sequence (`inference.instances.FrameMasks`): each (H, W) frame is computed from the
        low-resolution logits when read, so the output stays small for long, high-resolution videos.
        """
        instances: VideoInstances = model_outputs["instances"]
        return [
            {
                "score": float(score),
                "label": self.model.config.id2label.get(int(label), str(int(label))),
                "label_id": int(label),
                "masks": (
                    instances.segmentations(index, keep_empty=True) if return_rle else instances.mask_sequence(index)
                ),
            }
            for index, (score, label) in enumerate(zip(instances.scores, instances.labels))
        ]


def _given(**options: Any) -> dict[str, Any]:
    """The options that were given (not None)."""
    return {name: value for name, value in options.items() if value is not None}


__all__ = [
    "VideoInstanceSegmentationPipeline",
    "decode_rle",
    "encode_rle",
    "load_video_processor",
    "register_pipeline",
]
