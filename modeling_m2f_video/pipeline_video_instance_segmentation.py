"""The `video-instance-segmentation` pipeline: videos in, scored instances with one mask per frame out.

```python
import modeling_m2f_video  # registers the task
from transformers import pipeline

segmenter = pipeline("video-instance-segmentation", model="path/to/model")
instances = segmenter("clip.mp4", top_k=5)
instances[0]  # {"score": 0.97, "label": "person", "label_id": 0, "masks": [(H, W) bool array per frame]}
```

A video is a file (anything PyAV decodes: mp4, webm, avi, mov, ...), a folder of frame images, a list of PIL
images or (H, W, 3) arrays, or a (T, H, W, 3) uint8 array; a list of videos (or a 5-D array) is a batch and
gives a list of results. Short videos are segmented whole, as the official code does; videos longer than
`long_video_threshold` frames are segmented clip by clip (`long_video.segment_video_by_clips`), which keeps
memory bounded whatever the length. `mode="whole"` or `mode="clip"` forces either.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from pycocotools import mask as mask_utils
from transformers import Pipeline
from transformers.pipelines import PIPELINE_REGISTRY
from transformers.utils import VIDEO_PROCESSOR_NAME

from .auto import AutoModelForVideoInstanceSegmentation
from .long_video import TrackedInstances, segment_video_by_clips
from .processing.video_processing_m2f_video import Mask2FormerVideoProcessor
from .video_io import VideoSource, is_single_video, open_video

TASK = "video-instance-segmentation"
MODES = ("auto", "whole", "clip")


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


def encode_rle(mask: np.ndarray) -> dict:
    """A (H, W) bool mask as a pycocotools compressed RLE with `counts` as a str (JSON-ready)."""
    rle = mask_utils.encode(np.asfortranarray(mask, dtype=np.uint8))
    return {"size": [int(side) for side in rle["size"]], "counts": rle["counts"].decode("ascii")}


def decode_rle(rle: dict) -> np.ndarray:
    """The (H, W) bool mask of a compressed RLE from `encode_rle`."""
    return mask_utils.decode({"size": rle["size"], "counts": rle["counts"].encode("ascii")}).astype(bool)


class VideoInstanceSegmentationPipeline(Pipeline):
    """Video instance segmentation with a video Mask2Former, for any video length.

    Call options (also accepted when building the pipeline):
        top_k (`int`, 10): most instances per video.
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
    `masks` has one entry per (selected) frame.
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
        preprocess = _given(
            frame_stride=frame_stride,
            max_frames=max_frames,
            mode=mode,
            long_video_threshold=long_video_threshold,
            clip_length=clip_length,
        )
        forward = _given(
            top_k=top_k,
            threshold=threshold,
            clip_length=clip_length,
            clip_overlap=clip_overlap,
            frame_chunk_size=frame_chunk_size,
            progress=progress,
        )
        postprocess = _given(top_k=top_k, threshold=threshold, return_rle=return_rle)
        return preprocess, forward, postprocess

    def preprocess(
        self,
        video: Any,
        frame_stride: int = 1,
        max_frames: int | None = None,
        mode: str = "auto",
        long_video_threshold: int = 64,
        clip_length: int = 32,
    ) -> dict[str, Any]:
        """Open the video and choose the mode; a video segmented whole is decoded and processed here."""
        source = video if isinstance(video, VideoSource) else open_video(video, frame_stride, max_frames)
        if mode == "auto":
            mode = "clip" if source.num_frames > max(long_video_threshold, clip_length) else "whole"
        if mode == "clip":
            return {"mode": "clip", "source": source}
        inputs = self.video_processor(source.read(), return_tensors="pt")
        return {"mode": "whole", **inputs}

    def _forward(
        self,
        model_inputs: dict[str, Any],
        top_k: int = 10,
        threshold: float = 0.0,
        clip_length: int = 32,
        clip_overlap: int = 8,
        frame_chunk_size: int | None = None,
        progress: bool = False,
    ) -> dict[str, Any]:
        config = self.model.config
        saved_chunk_size = config.frame_chunk_size
        if frame_chunk_size is not None:
            config.frame_chunk_size = frame_chunk_size
        try:
            if model_inputs["mode"] == "clip":
                tracked = segment_video_by_clips(
                    self.model,
                    self.video_processor,
                    model_inputs["source"],
                    clip_length=clip_length,
                    overlap=clip_overlap,
                    top_k=top_k,
                    threshold=threshold,
                    progress=progress,
                )
                return {"mode": "clip", "tracked": tracked}
            pixel_values = model_inputs["pixel_values_videos"].to(self.model.dtype)
            outputs = self.model(pixel_values_videos=pixel_values)
        finally:
            config.frame_chunk_size = saved_chunk_size
        return {
            "mode": "whole",
            "class_queries_logits": outputs.class_queries_logits.float(),
            "masks_queries_logits": outputs.masks_queries_logits.float(),
            "original_sizes": model_inputs["original_sizes"],
            "resized_sizes": model_inputs["resized_sizes"],
        }

    def postprocess(
        self, model_outputs: dict[str, Any], top_k: int = 10, threshold: float = 0.0, return_rle: bool = False
    ) -> list[dict[str, Any]]:
        """Scored instances, with one mask (or RLE) per frame, from either mode's output."""
        if model_outputs["mode"] == "clip":
            tracked: TrackedInstances = model_outputs["tracked"]
            scores, labels = tracked.scores, tracked.labels
            masks = (tracked.frame_masks(index) for index in range(len(scores)))
        else:
            result = self.video_processor.post_process_video_instance_segmentation(
                _Outputs(model_outputs["class_queries_logits"], model_outputs["masks_queries_logits"]),
                target_sizes=model_outputs["original_sizes"],
                top_k=top_k,
                threshold=threshold,
                resized_sizes=model_outputs["resized_sizes"],
            )[0]
            scores, labels = result["scores"].numpy(), result["labels"].numpy()
            masks = (volume.numpy() for volume in result["masks"])
        return [
            {
                "score": float(score),
                "label": self.model.config.id2label.get(int(label), str(int(label))),
                "label_id": int(label),
                "masks": _frames_out(frames, return_rle),
            }
            for score, label, frames in zip(scores, labels, masks)
        ]


class _Outputs:
    """The two fields of the model output that post-processing reads."""

    def __init__(self, class_queries_logits: torch.Tensor, masks_queries_logits: torch.Tensor):
        self.class_queries_logits = class_queries_logits
        self.masks_queries_logits = masks_queries_logits


def _frames_out(frames: Iterable[np.ndarray], return_rle: bool) -> list:
    """One instance's per-frame masks as a list of (H, W) bool arrays, or of RLEs."""
    return [encode_rle(frame) if return_rle else np.asarray(frame, dtype=bool) for frame in frames]


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
