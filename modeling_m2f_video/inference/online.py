"""Online video instance segmentation: each frame's instances a few frames after it arrives, in bounded memory.

[`segment_stream`] reads frames from any iterable (a camera or network stream opened with [`stream_frames`], a
video file read frame by frame, a generator), runs the model on windows of `window` frames that overlap by
`overlap`, links their queries into tracks with the clip-by-clip tracker (`clip_by_clip.WindowTracker`: mask
overlap on shared frames, re-identification by query embedding after a gap), and yields one [`FrameInstances`]
per frame as soon as no later window will touch it:

- latency: frame f is yielded once at most f + `window` frames have been pulled from the input (the first window
  needs `window` frames; after it the first `window - overlap` frames are final);
- memory: the frames of one window, the pending frames' logits and the live tracks (retired after
  `Association.max_gap` frames unfound); nothing is kept per frame once it is yielded, so a stream may run for
  hours.

A frame's instances carry the track's class and score as known when the frame is handed out (the mean of its
windows so far), so an instance's score may change from frame to frame as the track is seen longer. Unlike clip by
clip, nothing is joined at the end (the frames are already out): an object away for longer than `max_gap` frames
comes back with a new track id.

The window sets the latency: on the synthetic videos of `benchmarks/bench_long_video.py` (64-1024 frames),
windows of 16 sharing 4 (the defaults, in `stream_defaults`) and of 8 sharing 2 score about the same AP, each ahead
at some lengths (see `benchmarks/RESULTS.md`).
"""

from __future__ import annotations

import os
from collections import defaultdict
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any, BinaryIO

import av
import numpy as np
import torch

from ..processing.post_processing import MaskGeometry
from ..ytvis.records import LabelToCategory, category_id, result_record
from ..ytvis.rle import encode_rles
from .clip_by_clip import Association, FinishedFrame, WindowTracker, run_window
from .stream_defaults import STREAM_OVERLAP, STREAM_THRESHOLD, STREAM_WINDOW


@dataclass
class FrameInstances:
    """The instances found in one frame of a stream, by descending score.

    Attributes:
        index: the frame's position in the stream (0-based).
        track_ids: (N,) int64, the track each instance belongs to, stable over the stream.
        labels: (N,) int64, 0-based class ids.
        scores: (N,) float32, the track's score when the frame was handed out.
        masks: (N, H, W) bool, at the frame's size.
    """

    index: int
    track_ids: np.ndarray
    labels: np.ndarray
    scores: np.ndarray
    masks: np.ndarray

    def __len__(self) -> int:
        return len(self.track_ids)

    def above(self, threshold: float) -> FrameInstances:
        """The instances scoring above `threshold`."""
        keep = self.scores > threshold
        return FrameInstances(self.index, self.track_ids[keep], self.labels[keep], self.scores[keep], self.masks[keep])


class TrackRecords:
    """Collects a stream's frames into JSON-ready output: one record per frame as it comes, and at the end one
    YouTube-VIS result record per track (for `results.json` and the metric).

    A track's record has its masks on the frames it was handed out in (null elsewhere), the class with the highest
    score summed over those frames (`label + 1`, or through `label_to_category`) and its mean score there. The
    track records hold every frame's RLEs, so they grow with the stream; for an endless stream write the frame
    records only.
    """

    def __init__(self, label_to_category: LabelToCategory = None):
        self.label_to_category = label_to_category
        self.num_frames = 0
        self._segmentations: dict[int, dict[int, dict]] = defaultdict(dict)  # track -> frame -> RLE
        self._label_scores: dict[int, dict[int, float]] = defaultdict(lambda: defaultdict(float))

    def add(self, instances: FrameInstances) -> dict:
        """Take one frame's instances (frames in order); returns its record
        `{"frame", "instances": [{"track_id", "category_id", "score", "segmentation"}]}`."""
        entries = []
        for track_id, label, score, rle in zip(
            instances.track_ids.tolist(),
            instances.labels.tolist(),
            instances.scores.tolist(),
            encode_rles(instances.masks),
        ):
            self._segmentations[track_id][instances.index] = rle
            self._label_scores[track_id][label] += score
            category = category_id(label, self.label_to_category)
            entries.append({"track_id": track_id, "category_id": category, "score": score, "segmentation": rle})
        self.num_frames = instances.index + 1
        return {"frame": instances.index, "instances": entries}

    def records(self, video_id: int) -> list[dict]:
        """One YouTube-VIS result record per track seen so far."""
        records = []
        for track_id, frames in self._segmentations.items():
            label_scores = self._label_scores[track_id]
            label = max(label_scores, key=label_scores.get)
            score = sum(label_scores.values()) / len(frames)
            segmentations = [frames.get(index) for index in range(self.num_frames)]
            records.append(result_record(video_id, label, score, segmentations, self.label_to_category))
        return records


def stream_frames(source: str | os.PathLike | BinaryIO, format: str | None = None, options: dict | None = None):
    """The frames of a video stream as (H, W, 3) uint8 RGB arrays, decoded one at a time as they arrive.

    `source` is anything PyAV opens: a URL (rtsp://, http://, udp://), a capture device with its `format`
    ("v4l2", "avfoundation", ...), a file, or a readable binary file object (a pipe). Unlike `open_video`, nothing
    is read ahead (no frame count), so a live stream works; it ends when the stream does. `options` go to FFmpeg
    (e.g. {"rtsp_transport": "tcp"}).
    """
    name = getattr(source, "name", source)
    try:
        with av.open(source if hasattr(source, "read") else os.fspath(source), format=format, options=options) as c:
            for frame in c.decode(video=0):
                yield frame.to_ndarray(format="rgb24")
    except av.FFmpegError as error:
        raise ValueError(f"{name}: cannot read the video stream ({error})") from error


def check_stream_options(window: int, overlap: int, threshold: float) -> None:
    """Refuse option values `segment_stream` cannot use, naming the option."""
    if not isinstance(window, int) or window < 1:
        raise ValueError(f"window must be an integer >= 1; got {window!r}")
    if not isinstance(overlap, int) or not 0 <= overlap < window:
        raise ValueError(f"overlap must be an integer in [0, window) = [0, {window}); got {overlap!r}")
    if not np.isfinite(threshold):
        raise ValueError(f"threshold must be a finite number; got {threshold!r}")


@torch.no_grad()
def segment_stream(
    model: torch.nn.Module,
    processor,
    frames: Iterable[np.ndarray],
    *,
    window: int = STREAM_WINDOW,
    overlap: int = STREAM_OVERLAP,
    threshold: float = STREAM_THRESHOLD,
    association: Association | None = None,
    frame_chunk_size: int | None = None,
) -> Iterator[FrameInstances]:
    """Segment a stream of frames online, yielding each frame's instances at most `window` frames after it.

    Args:
        model: a `Mask2FormerVideoForVideoInstanceSegmentation` (any device and dtype).
        processor: its `Mask2FormerVideoProcessor`.
        frames: (H, W, 3) uint8 RGB frames, all of one size, e.g. `stream_frames(url)`; read lazily.
        window: frames per model call; the latency bound.
        overlap: frames shared by consecutive windows, for mask-overlap matching (0: embeddings only).
        threshold: hand out instances whose track's score is above this.
        association: when a query continues a track (default: `Association()`); its `max_gap` bounds memory.
        frame_chunk_size: passed to the model's forward.

    Yields:
        One `FrameInstances` per input frame, in order.
    """
    check_stream_options(window, overlap, threshold)
    frames = iter(frames)
    tracker = geometry = None
    buffer: list[np.ndarray] = []  # the frames from the first pending one on
    while True:
        first_index = tracker.first_pending if tracker else 0
        ended = _fill(buffer, frames, window, first_index, geometry.target_size if geometry else None)
        if not buffer:
            return
        if tracker is not None and len(buffer) == tracker.num_pending:  # no frame since the last window
            finished = tracker.flush()
        else:
            outputs, resized_size = run_window(model, processor, np.stack(buffer), frame_chunk_size)
            if tracker is None:
                low_res_size = tuple(outputs.mask_logits.shape[-2:])
                geometry = MaskGeometry.of_masks(low_res_size, resized_size, buffer[0].shape[:2])
                tracker = WindowTracker(geometry.valid_low_res_size, association, keep_retired=False)
            stride = len(buffer) if ended else window - overlap
            finished = tracker.add(outputs, first_index + stride)
            del buffer[:stride]
        for done in finished:
            yield _frame_instances(done, tracker, geometry, threshold)
        if ended:
            return


def _fill(
    buffer: list[np.ndarray], frames: Iterator[Any], window: int, first_index: int, size: tuple[int, int] | None
) -> bool:
    """Pull frames into `buffer` (which starts at frame `first_index`) until it holds `window` of them, checking that
    each is an (H, W, 3) uint8 array of the stream's `size` (that of the first frame); True if the input ended."""
    while len(buffer) < window:
        frame = next(frames, None)
        if frame is None:
            return True
        index = first_index + len(buffer)
        frame = np.asarray(frame)
        if frame.ndim != 3 or frame.shape[-1] != 3 or frame.dtype != np.uint8:
            raise ValueError(f"frame {index}: expected an (H, W, 3) uint8 array, got {frame.dtype} {frame.shape}")
        size = size or (buffer[0].shape[:2] if buffer else frame.shape[:2])
        if frame.shape[:2] != tuple(size):
            raise ValueError(f"frame {index}: size {frame.shape[:2]} differs from the stream's {tuple(size)}")
        buffer.append(frame)
    return False


def _frame_instances(
    frame: FinishedFrame, tracker: WindowTracker, geometry: MaskGeometry, threshold: float
) -> FrameInstances:
    """The tracks found in a finished frame that score above `threshold` and have a non-empty mask."""
    height, width = geometry.target_size
    if len(frame.track_ids) == 0:
        return FrameInstances(frame.index, *_empty(height, width))
    scores, labels = tracker.track_probabilities(frame.track_ids).max(dim=1)
    keep = scores > threshold
    masks = geometry.upsample(frame.logits[keep]) > 0 if keep.any() else torch.zeros(0, height, width, dtype=bool)
    track_ids, labels, scores = frame.track_ids[keep.numpy()], labels[keep], scores[keep]
    visible = masks.flatten(1).any(dim=1)
    order = torch.argsort(scores[visible], descending=True, stable=True)
    return FrameInstances(
        index=frame.index,
        track_ids=track_ids[visible.numpy()][order.numpy()],
        labels=labels[visible][order].numpy(),
        scores=scores[visible][order].numpy(),
        masks=masks[visible][order].numpy(),
    )


def _empty(height: int, width: int) -> tuple[np.ndarray, ...]:
    return np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0, np.float32), np.zeros((0, height, width), bool)
