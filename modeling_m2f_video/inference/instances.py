"""[`VideoInstances`]: the instances found in one video, with their masks kept at the model's resolution until a
consumer asks for a frame. What every inference path returns (whole video, clip by clip) and what the pipeline,
batch prediction and training evaluation read."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np
import torch

from ..processing.post_processing import MaskGeometry
from ..ytvis.records import LabelToCategory, result_record
from ..ytvis.rle import encode_rles, encode_track


class LowResLogits(Protocol):
    """Mask logits at the model's resolution, one row per query or track: `read(start, stop)` gives the
    (rows, stop - start, h, w) float logits of frames [start, stop)."""

    num_frames: int

    def read(self, start: int, stop: int) -> torch.Tensor: ...


class InMemoryLogits:
    """[`LowResLogits`] held in memory: the (rows, T, h, w) logits of the kept queries of a whole-video run."""

    def __init__(self, logits: torch.Tensor):
        self.logits = logits
        self.num_frames = logits.shape[1]

    def read(self, start: int, stop: int) -> torch.Tensor:
        return self.logits[:, start:stop].float()


@dataclass
class VideoInstances:
    """The instances of one video, sorted by score; their masks are computed from low-resolution logits when asked.

    Attributes:
        scores: (N,) float, the score of each instance's (query or track, class) pair.
        labels: (N,) int, 0-based class ids.
        query_indices: (N,) int, which query (whole video) or track (clip by clip) each instance comes from.
        logits: the low-resolution mask logits; row `rows[i]` belongs to instance i.
        rows: (N,) int.
        geometry: how low-resolution masks map to the original frames.
    """

    scores: np.ndarray
    labels: np.ndarray
    query_indices: np.ndarray
    logits: LowResLogits
    rows: np.ndarray
    geometry: MaskGeometry

    def __len__(self) -> int:
        return len(self.scores)

    @property
    def num_frames(self) -> int:
        return self.logits.num_frames

    def low_res_logits(self, index: int, start: int = 0, stop: int | None = None) -> torch.Tensor:
        """Instance `index`'s (t, h, w) mask logits on frames [start, stop), at low resolution."""
        stop = self.num_frames if stop is None else min(stop, self.num_frames)
        return self.logits.read(start, stop)[int(self.rows[index])]

    def mask_chunks(self, index: int, frames_per_step: int = 16) -> Iterator[np.ndarray]:
        """Instance `index`'s masks at the original frame size, as (t, H, W) bool arrays of `frames_per_step` frames.

        A few frames are upsampled at a time, so memory stays at a few frames whatever the video's length.
        """
        for start in range(0, self.num_frames, frames_per_step):
            logits = self.geometry.upsample(self.low_res_logits(index, start, start + frames_per_step))
            yield (logits > 0).cpu().numpy()

    def frame_masks(self, index: int) -> Iterator[np.ndarray]:
        """Instance `index`'s masks at the original frame size, one (H, W) bool array per frame."""
        for chunk in self.mask_chunks(index):
            yield from chunk

    def mask_sequence(self, index: int) -> FrameMasks:
        """Instance `index`'s masks as a lazy sequence of (H, W) bool arrays, computed when a frame is read."""
        return FrameMasks(self, index)

    def masks(self) -> np.ndarray:
        """All masks as one (N, T, H, W) bool array (for short videos and tests)."""
        height, width = self.geometry.target_size
        dense = np.zeros((len(self), self.num_frames, height, width), dtype=bool)
        for index in range(len(self)):
            for frame, mask in enumerate(self.frame_masks(index)):
                dense[index, frame] = mask
        return dense

    def segmentations(self, index: int, keep_empty: bool = False) -> list[dict | None]:
        """Instance `index`'s per-frame compressed RLEs; None where the mask is empty unless `keep_empty`."""
        if keep_empty:
            return [rle for chunk in self.mask_chunks(index) for rle in encode_rles(chunk)]
        return [rle for chunk in self.mask_chunks(index) for rle in encode_track(chunk)]

    def to_records(self, video_id: int, label_to_category: LabelToCategory = None) -> list[dict]:
        """The instances as YouTube-VIS result records (`ytvis.records`)."""
        return [
            result_record(video_id, int(label), float(score), self.segmentations(index), label_to_category)
            for index, (score, label) in enumerate(zip(self.scores, self.labels))
        ]


class FrameMasks(Sequence):
    """One instance's per-frame masks at the original size, computed from the low-resolution logits when read.

    It behaves like a list of (H, W) bool arrays (`len`, indexing, slicing, iteration, `np.stack`), but holds no
    full-resolution mask: output memory stays at the low-resolution logits however long or large the video is.
    `list(masks)` materialises every frame. A frame read by index equals the same frame read by iteration (frames
    are independent channels of one bilinear resize).
    """

    def __init__(self, instances: VideoInstances, index: int):
        self._instances = instances
        self._index = index

    def __len__(self) -> int:
        return self._instances.num_frames

    def __getitem__(self, frame: int | slice) -> np.ndarray | list[np.ndarray]:
        if isinstance(frame, slice):
            return [self[position] for position in range(*frame.indices(len(self)))]
        position = frame + len(self) if frame < 0 else frame
        if not 0 <= position < len(self):
            raise IndexError(f"frame {frame} out of range for a video of {len(self)} frames")
        logits = self._instances.low_res_logits(self._index, position, position + 1)  # (1, h, w)
        return (self._instances.geometry.upsample(logits) > 0).cpu().numpy()[0]

    def __iter__(self) -> Iterator[np.ndarray]:
        return self._instances.frame_masks(self._index)

    def __repr__(self) -> str:
        height, width = self._instances.geometry.target_size
        return f"FrameMasks({len(self)} frames of {height}x{width}, computed on access)"
