"""Video instance segmentation of videos of any length, in bounded memory.

Whole-video inference (what the official code does) keeps the features of every frame for the transformer
decoder, so its memory grows with the video's length until it fails. Clip-by-clip inference runs the model on
windows of `clip_length` frames that overlap by `overlap` frames, and carries instances from one window to
the next:

1. the Q queries of a window are matched one-to-one to the Q tracks so far (Hungarian assignment, scipy's
   `linear_sum_assignment`) by the soft IoU of their masks on the overlapping frames;
2. a track's class probabilities are the mean of its queries' softmax probabilities over the windows,
   weighted by window length; on frames that two windows share, its mask logits are averaged;
3. at the end the top-k (track, class) pairs are chosen as the official post-processing chooses
   (query, class) pairs (`post_processing.select_instances`), and only their masks are upsampled
   (`post_processing.MaskGeometry`).

Memory does not grow with the length: the model sees one window at a time, frames are read lazily from a
`VideoSource` (a video file is never decoded all at once), and finished frames' mask logits go to a temporary
file, not to memory: at low resolution in float32 (exactly what the model gave, so one window covering the video
gives the whole-video masks bit for bit), 4 * Q * H/4 * W/4 bytes of disk per frame (5.9 MB for 100 queries at
360x640). At the end only the chosen
instances' masks are read back and upsampled, a few frames at a time.
"""

from __future__ import annotations

import math
import os
import tempfile
from collections.abc import Iterator

import numpy as np
import torch
from scipy.optimize import linear_sum_assignment
from tqdm.auto import tqdm

from ..processing.post_processing import MaskGeometry, class_probabilities, select_instances
from ..processing.video_io import VideoSource, open_video
from .instances import VideoInstances


class LogitStore:
    """Per-frame (Q, h, w) mask logits of finished frames, as float32 in an unnamed temporary file.

    The file is deleted when the store is closed or garbage collected. Reads use plain file reads, not a
    memory map, so that what was written does not come back into the process's memory.
    """

    def __init__(self, num_queries: int, low_res_size: tuple[int, int]):
        self.shape = (num_queries, *low_res_size)
        self.frame_bytes = 4 * math.prod(self.shape)
        self.num_frames = 0
        self.file = tempfile.TemporaryFile()

    def append(self, logits: torch.Tensor) -> None:
        """Store (Q, n, h, w) float logits of n more frames."""
        self.file.seek(0, os.SEEK_END)
        self.file.write(logits.transpose(0, 1).to(torch.float32).contiguous().numpy().tobytes())
        self.num_frames += logits.shape[1]

    def read(self, start: int, stop: int) -> torch.Tensor:
        """The (Q, stop - start, h, w) float logits of frames [start, stop)."""
        self.file.seek(start * self.frame_bytes)
        data = np.frombuffer(self.file.read((stop - start) * self.frame_bytes), dtype=np.float32)
        return torch.from_numpy(data.reshape(stop - start, *self.shape).copy()).transpose(0, 1)


def clip_starts(num_frames: int, clip_length: int, overlap: int) -> list[int]:
    """First frame of every window: a stride of `clip_length - overlap`, the last window ending on the last frame.

    The last window is moved back (overlapping its predecessor more) rather than cut short, so that every
    window has `clip_length` frames when the video has that many.
    """
    if clip_length < 1:
        raise ValueError(f"clip_length must be at least 1, got {clip_length}.")
    if not 0 <= overlap < clip_length:
        raise ValueError(f"overlap must be in [0, clip_length) = [0, {clip_length}), got {overlap}.")
    if num_frames <= clip_length:
        return [0]
    if overlap < 1:
        raise ValueError("clip-by-clip inference needs overlap >= 1 to carry instances from one window to the next.")
    stride = clip_length - overlap
    starts = list(range(0, num_frames - clip_length + 1, stride))
    if starts[-1] + clip_length < num_frames:
        starts.append(num_frames - clip_length)
    return starts


def soft_mask_iou(previous: torch.Tensor, current: torch.Tensor) -> torch.Tensor:
    """(Q, Q) soft IoU between two sets of mask logits (Q, ...) of the same frames.

    With probabilities p and q (sigmoid of the logits), IoU = sum(p q) / sum(p + q - p q); unlike the IoU of
    binary masks it still ranks pairs of (nearly) empty masks by how close they are.
    """
    p = previous.flatten(1).sigmoid()
    q = current.flatten(1).sigmoid()
    intersection = p @ q.T
    union = p.sum(1)[:, None] + q.sum(1)[None, :] - intersection
    return intersection / union.clamp(min=1e-6)


def match_queries(previous: torch.Tensor, current: torch.Tensor) -> np.ndarray:
    """Which query of the current window continues each track: `order[track] = query`.

    Args:
        previous: (Q, o, h, w) the tracks' mask logits on the `o` overlapping frames.
        current: (Q, o, h, w) the current window's query mask logits on the same frames.
    """
    iou = soft_mask_iou(previous, current).double().numpy()
    tracks, queries = linear_sum_assignment(iou, maximize=True)
    order = np.empty(len(tracks), dtype=np.int64)
    order[tracks] = queries
    return order


class _ClipTracker:
    """Accumulates windows: matches each to the tracks, averages shared frames, stores finished frames.

    After each window, the frames before the next window's first frame are final: their mean logits go to
    the `LogitStore`. The others stay "pending" as sums of logits, to be matched against and averaged with
    the next window, which always starts at the first pending frame.
    """

    def __init__(self, num_frames: int, valid_low_res: tuple[int, int]):
        self.num_frames = num_frames
        self.valid_low_res = valid_low_res  # low-resolution area that is not padding, used for matching
        self.class_sum: torch.Tensor | None = None  # (Q, K) window-length-weighted sum of probabilities
        self.weight = 0
        self.pending: torch.Tensor | None = None  # (Q, n, h, w) logit sums of the pending frames
        self.pending_count = torch.zeros(0)  # (n,) windows that contributed to each pending frame
        self.store: LogitStore | None = None  # the finished frames

    def add(self, probabilities: torch.Tensor, mask_logits: torch.Tensor, next_start: int) -> None:
        """Add the next window: (Q, K) class probabilities and (Q, t, h, w) mask logits.

        The window starts at the first pending frame; frames before `next_start` are final after it.
        """
        if self.pending is None:
            self.pending = torch.zeros_like(mask_logits[:, :0])
            self.store = LogitStore(mask_logits.shape[0], tuple(mask_logits.shape[-2:]))
            self.class_sum = torch.zeros_like(probabilities)
        else:
            shared = self.pending.shape[1]
            mean = self.pending / self.pending_count[None, :, None, None]
            order = match_queries(self._crop(mean), self._crop(mask_logits[:, :shared]))
            probabilities, mask_logits = probabilities[order], mask_logits[order]
        self._merge(mask_logits)
        self.class_sum += probabilities * mask_logits.shape[1]
        self.weight += mask_logits.shape[1]
        self._finish_frames_before(next_start)

    def _merge(self, mask_logits: torch.Tensor) -> None:
        """Add the window's logits to the pending frames it shares and append the frames that are new."""
        shared = self.pending.shape[1]
        self.pending = torch.cat([self.pending + mask_logits[:, :shared], mask_logits[:, shared:]], dim=1)
        self.pending_count = torch.cat([self.pending_count + 1, torch.ones(mask_logits.shape[1] - shared)])

    def _crop(self, masks: torch.Tensor) -> torch.Tensor:
        return masks[..., : self.valid_low_res[0], : self.valid_low_res[1]]

    def _finish_frames_before(self, next_start: int) -> None:
        """Store the frames no later window will touch; keep the rest pending."""
        done = min(next_start - self.store.num_frames, self.pending.shape[1])
        self.store.append(self.pending[:, :done] / self.pending_count[None, :done, None, None])
        self.pending, self.pending_count = self.pending[:, done:], self.pending_count[done:]

    def result(self, top_k: int, threshold: float, geometry: MaskGeometry) -> VideoInstances:
        """The top-k (track, class) pairs by mean probability, with the store of their masks."""
        if self.store.num_frames != self.num_frames:
            raise RuntimeError(f"tracked {self.store.num_frames} frames of {self.num_frames}")
        scores, labels, track_indices = select_instances(self.class_sum / self.weight, top_k, threshold)
        return VideoInstances(
            scores=scores.numpy(),
            labels=labels.numpy(),
            query_indices=track_indices.numpy(),
            logits=self.store,
            rows=track_indices.numpy(),
            geometry=geometry,
        )


def _windows(source: VideoSource, starts: list[int], clip_length: int) -> Iterator[np.ndarray]:
    """The (t, H, W, 3) frames of each window, reading the video once and keeping only one window's frames."""
    frames = source.frames()
    buffer: list[np.ndarray] = []
    buffer_start = 0
    for start in starts:
        stop = min(start + clip_length, source.num_frames)
        buffer = buffer[start - buffer_start :]
        buffer_start = start
        while buffer_start + len(buffer) < stop:
            buffer.append(next(frames))
        yield np.stack(buffer[: stop - start])
    for _ in frames:  # let the source check that the whole video decodes
        pass


@torch.no_grad()
def segment_video_by_clips(
    model: torch.nn.Module,
    processor,
    video,
    clip_length: int = 32,
    overlap: int = 8,
    top_k: int | None = None,
    threshold: float = 0.0,
    frame_chunk_size: int | None = None,
    progress: bool = False,
) -> VideoInstances:
    """Segment a video of any length clip by clip, with the model's memory bounded by one window.

    Args:
        model: a `Mask2FormerVideoForVideoInstanceSegmentation` (any device and dtype).
        processor: its `Mask2FormerVideoProcessor`.
        video: a `VideoSource`, or anything `open_video` accepts (file, folder of frames, frames, array).
        clip_length: frames per window.
        overlap: frames shared by consecutive windows (at least 1 when there is more than one window).
        top_k: instances to keep, as in the processor's post-processing; default: `model.config.test_top_k`.
        threshold: keep instances whose score is above this.
        frame_chunk_size: passed to the model's forward (backbone and pixel decoder on this many frames at once).
        progress: show a progress bar over the windows.

    Returns:
        The instances, with masks at low resolution until asked for (`VideoInstances.frame_masks`).
    """
    source = video if isinstance(video, VideoSource) else open_video(video)
    top_k = model.config.test_top_k if top_k is None else top_k
    starts = clip_starts(source.num_frames, clip_length, overlap)
    device, dtype = model.device, model.dtype
    tracker = geometry = None
    windows = _windows(source, starts, clip_length)
    for index, frames in enumerate(tqdm(windows, total=len(starts), disable=not progress, desc=source.name)):
        inputs = processor(frames, input_data_format="channels_last", return_tensors="pt")
        outputs = model(
            pixel_values_videos=inputs["pixel_values_videos"].to(device, dtype), frame_chunk_size=frame_chunk_size
        )
        mask_logits = outputs.masks_queries_logits[0].float().cpu()  # (Q, t, h, w)
        probabilities = class_probabilities(outputs.class_queries_logits[0]).cpu()  # (Q, K)
        if tracker is None:
            geometry = MaskGeometry.of_masks(
                mask_logits.shape[-2:], inputs["resized_sizes"][0].tolist(), (source.height, source.width)
            )
            tracker = _ClipTracker(source.num_frames, geometry.valid_low_res_size)
        next_start = starts[index + 1] if index + 1 < len(starts) else source.num_frames
        tracker.add(probabilities, mask_logits, next_start)
    return tracker.result(top_k, threshold, geometry)
