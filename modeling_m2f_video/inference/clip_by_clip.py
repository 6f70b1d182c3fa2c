"""Video instance segmentation of videos of any length, in bounded memory.

Whole-video inference (what the official code does) keeps the features of every frame for the transformer
decoder, so its memory grows with the video's length until it fails. Clip-by-clip inference runs the model on
windows of `clip_length` frames that overlap by `overlap` frames, and links the windows' queries into tracks
(`WindowTracker`), as near-online trackers for Mask2Former-style models do (MinVIS, CTVIS):

1. a query continues a track when their masks overlap on the frames the window shares with the earlier ones
   (soft mask IoU), or, for a track that was lost for a while (the object hidden or out of view), when both are
   confident of the same class and their query embeddings (the decoder's last hidden state) are close: the
   track keeps a moving average of its queries' embeddings, so it can be found again after a gap;
2. the queries and tracks are paired one to one (Hungarian assignment, scipy's `linear_sum_assignment`) among
   the pairs that pass those tests, for the most total overlap and similarity (a pair that fails gains nothing,
   so a weak pairing never takes an object's query from its own track), so one object keeps one track; a query
   that continues no track starts one, and a track that found no query for `max_gap` frames is retired;
3. on frames that several windows share, a track's mask logits are averaged over the windows it was found in, and
   on frames where it was found in none its mask is empty;
4. at the end, the fragments of one object are joined (`join_fragments`): tracks of the same confident class
   that were never in view at the same time and whose whole-life embeddings are close become one, so an object
   hidden for longer than `max_gap`, or lost by the window-to-window matching, still gives one track, as the
   whole-video model's one query for it does (the YouTube-VIS metric scores a track over the whole video: two
   fragments of one object are each a poor match);
5. a track (or joined group) is scored over its whole life: the mean of its queries' class probabilities weighted
   by the frames their masks are on, so that windows where the object was hidden do not lower its score;
6. the top-k (track, class) pairs are chosen as the official post-processing chooses (query, class) pairs
   (`post_processing.select_instances`), and only their masks are upsampled (`post_processing.MaskGeometry`).

With one window covering the video, the tracks are the window's queries in order, nothing is joined, and the
result is the whole-video result: the same masks bit for bit, the same scores.

Memory does not grow with the length: the model sees one window at a time, frames are read lazily from a
`VideoSource` (a video file is never decoded all at once), and finished frames' mask logits go to a temporary
file, not to memory: at low resolution in float32, for the tracks found in that frame (about Q of them),
4 * Q * H/4 * W/4 bytes of disk per frame (5.9 MB for 100 queries at 360x640). At the end only the chosen
instances' masks are read back and upsampled, a few frames at a time. The online mode (`online.segment_stream`)
runs the same tracker and hands each finished frame out instead of storing it.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F
from scipy.cluster.hierarchy import fcluster, linkage
from scipy.optimize import linear_sum_assignment
from scipy.spatial.distance import squareform
from tqdm.auto import tqdm

from ..processing.post_processing import MaskGeometry, class_probabilities, select_instances
from ..processing.video_io import VideoSource, open_video
from .instances import VideoInstances

# The mask logit of a track on a frame where no window found it: low enough to give an empty mask after any
# bilinear resize, finite so that resizing never mixes infinities.
ABSENT_LOGIT = -1e4
# What a window where a query's mask is empty counts for in a track's whole-life score, next to one frame of a
# window where it is on: the score is that of the frames that show the object (see `_frame_weights`).
UNSEEN_WINDOW_WEIGHT = 1e-3
# The least an allowed (track, query) pairing gains in `associate`: more than leaving both unmatched (0).
MIN_ALLOWED_GAIN = 1e-3
# The distance `join_fragments` gives two tracks that may not be one object's: above any cosine distance (<= 2).
NEVER_JOINED = 3.0


@dataclass(frozen=True)
class Association:
    """When a window's query continues a track, and when two tracks are one object's.

    The defaults were tuned on bounded-motion synthetic videos (`benchmarks/bench_long_video.py`) of other seeds
    than the benchmark's.

    Attributes:
        min_overlap_iou: soft mask IoU on the shared frames above which a query may continue a track.
        min_reid_similarity: cosine similarity of embeddings above which a confident query may continue a lost
            track (one whose mask on the shared frames is empty) of the same class.
        min_reid_score: how confident (top class probability) the query and the track must both be to be
            re-identified by embedding; background queries never are.
        embedding_weight: weight of the embedding similarity next to the IoU when several pairings pass.
        embedding_momentum: weight of a track's old embedding when a new query continues it.
        max_gap: frames a track may go unfound and still be re-identified; after that it is retired. It bounds
            the tracker's memory in the online mode.
        min_join_similarity: cosine similarity of whole-life embeddings above which, at the end of a clip-by-clip
            run, tracks of the same confident class that were never in view at the same time are joined into one
            (`join_fragments`): one object hidden for longer than `max_gap`, or lost by the window-to-window
            matching, still gives one track. None: never join.
        min_join_score: how confident (top class probability) both tracks must be to be joined; lower than
            `min_reid_score`, since a short fragment is often less sure of its class than the object's track.
    """

    min_overlap_iou: float = 0.1
    min_reid_similarity: float = 0.6
    min_reid_score: float = 0.5
    embedding_weight: float = 0.5
    embedding_momentum: float = 0.7
    max_gap: int = 128
    min_join_similarity: float | None = 0.6
    min_join_score: float = 0.3

    def __post_init__(self) -> None:
        if self.max_gap < 0:
            raise ValueError(f"max_gap must be >= 0, got {self.max_gap}")
        if not 0.0 <= self.embedding_momentum < 1.0:
            raise ValueError(f"embedding_momentum must be in [0, 1), got {self.embedding_momentum}")


@dataclass
class WindowOutputs:
    """What the tracker needs of one window's model outputs (on the CPU, float32).

    Attributes:
        probabilities: (Q, K) class probabilities without "no object".
        mask_logits: (Q, t, h, w) low-resolution mask logits.
        embeddings: (Q, C) unit-length query embeddings (the transformer decoder's last hidden state).
    """

    probabilities: torch.Tensor
    mask_logits: torch.Tensor
    embeddings: torch.Tensor


def run_window(
    model: torch.nn.Module, processor, frames: np.ndarray, frame_chunk_size: int | None = None
) -> tuple[WindowOutputs, list[int]]:
    """Run the model on one window of (t, H, W, 3) uint8 frames; returns its outputs and its resized frame size."""
    inputs = processor(frames, input_data_format="channels_last", return_tensors="pt")
    outputs = model(
        pixel_values_videos=inputs["pixel_values_videos"].to(model.device, model.dtype),
        frame_chunk_size=frame_chunk_size,
    )
    window = WindowOutputs(
        probabilities=class_probabilities(outputs.class_queries_logits[0]).cpu(),
        mask_logits=outputs.masks_queries_logits[0].float().cpu(),
        embeddings=F.normalize(outputs.transformer_decoder_last_hidden_state[0].float(), dim=-1).cpu(),
    )
    return window, inputs["resized_sizes"][0].tolist()


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
    """(M, Q) soft IoU between two sets of mask logits (M, ...) and (Q, ...) of the same frames.

    With probabilities p and q (sigmoid of the logits), IoU = sum(p q) / sum(p + q - p q); unlike the IoU of
    binary masks it still ranks pairs of (nearly) empty masks by how close they are.
    """
    p = previous.flatten(1).sigmoid()
    q = current.flatten(1).sigmoid()
    intersection = p @ q.T
    union = p.sum(1)[:, None] + q.sum(1)[None, :] - intersection
    return intersection / union.clamp(min=1e-6)


def associate(
    iou: torch.Tensor,
    similarity: torch.Tensor,
    track_probabilities: torch.Tensor,
    query_probabilities: torch.Tensor,
    association: Association,
) -> np.ndarray:
    """Which track each query continues: `matches[query]` is a track index, or -1 for a new track.

    Args:
        iou: (M, Q) soft mask IoU of the tracks and the queries on the shared frames.
        similarity: (M, Q) cosine similarity of the track and query embeddings.
        track_probabilities: (M, K) mean class probabilities of the tracks.
        query_probabilities: (Q, K) class probabilities of the queries.
    """
    overlapping = iou > association.min_overlap_iou
    track_score, track_label = track_probabilities.max(1)
    query_score, query_label = query_probabilities.max(1)
    reidentified = (
        (track_score[:, None] > association.min_reid_score)
        & (query_score[None, :] > association.min_reid_score)
        & (track_label[:, None] == query_label[None, :])
        & (similarity > association.min_reid_similarity)
    )
    allowed = overlapping | reidentified
    # The assignment gives every track a query (or every query a track), allowed or not. A pair that is not allowed
    # therefore gains nothing, and an allowed one a little more than nothing at least: with a penalty for the
    # former, the assignment would maximise the number of allowed pairs rather than their quality, and give an
    # object's query to a weak track to spare the object's own track an unallowed pair.
    gain = torch.where(allowed, (iou + association.embedding_weight * similarity).clamp(min=MIN_ALLOWED_GAIN), 0.0)
    tracks, queries = linear_sum_assignment(gain.double().numpy(), maximize=True)
    matches = np.full(iou.shape[1], -1, dtype=np.int64)
    keep = allowed.numpy()[tracks, queries]
    matches[queries[keep]] = tracks[keep]
    return matches


@dataclass
class _Track:
    """What the tracker remembers of one track: a few numbers, however long the track."""

    id: int
    embedding: torch.Tensor  # (C,) unit length, moving average of its queries'
    class_sum: torch.Tensor  # (K,) window-length-weighted sum of its queries' probabilities
    weight: int  # frames of the windows it was found in
    last_frame: int  # last frame of the last window it was found in
    seen_probabilities: torch.Tensor  # (K,) whole-life class probabilities (see `_update_tracks`)
    seen_embedding: torch.Tensor  # (C,) whole-life mean of its queries' embeddings, weighted as the probabilities
    seen_weight: float = 0.0  # the sum of the `_frame_weights` of its queries
    # [first, last] runs of the windows it was found in and of the finished frames where its mask is not empty:
    # one run per stretch, so a few numbers however long the track.
    window_runs: list[list[int]] = field(default_factory=list)
    visible_runs: list[list[int]] = field(default_factory=list)

    @property
    def probabilities(self) -> torch.Tensor:
        """(K,) mean class probabilities over the windows it was found in, as known so far (what matching and the
        online mode use)."""
        return self.class_sum / self.weight


@dataclass
class FinishedFrame:
    """One frame that no later window will touch: the tracks found in it and their mean mask logits.

    Attributes:
        index: the frame's position in the video.
        track_ids: (n,) int64, the ids of the tracks found in the frame.
        logits: (n, h, w) float32 low-resolution mask logits, row i for `track_ids[i]`.
    """

    index: int
    track_ids: np.ndarray
    logits: torch.Tensor


def _frame_weights(mask_logits: torch.Tensor) -> torch.Tensor:
    """(Q,) how much each query's class probabilities count in its track's: the frames of the window its mask is on
    (Q, t, h, w logits), or UNSEEN_WINDOW_WEIGHT if on none, so that a track never seen still has a mean."""
    visible_frames = (mask_logits > 0).flatten(2).any(dim=2).sum(dim=1)
    return torch.where(visible_frames > 0, visible_frames.float(), UNSEEN_WINDOW_WEIGHT)


def _extend_runs(runs: list[list[int]], index: int) -> None:
    """Add `index` (after the last one added) to sorted [first, last] runs of consecutive indices."""
    if runs and runs[-1][1] == index - 1:
        runs[-1][1] = index
    else:
        runs.append([index, index])


def _runs_overlap(first: list[list[int]], second: list[list[int]]) -> bool:
    """Whether two sorted lists of [first, last] runs share an index."""
    i = j = 0
    while i < len(first) and j < len(second):
        if first[i][1] < second[j][0]:
            i += 1
        elif second[j][1] < first[i][0]:
            j += 1
        else:
            return True
    return False


class WindowTracker:
    """Links the queries of consecutive windows into tracks and averages their logits on shared frames.

    Each window must start at the first frame not yet finished. After a window, the frames before the next
    window's first frame are final and handed back as `FinishedFrame`s; the others stay "pending" as per-track
    sums of logits, to be matched against and averaged with the next window. The tracker holds the live tracks
    (found within `max_gap` frames) and the pending frames only, so its memory does not grow with the video;
    with `keep_retired` it also keeps every retired track's class probabilities (a few numbers per track) for
    `all_tracks`.
    """

    def __init__(
        self, valid_low_res: tuple[int, int], association: Association | None = None, keep_retired: bool = True
    ):
        self.valid_low_res = valid_low_res  # low-resolution area that is not padding, used for matching
        self.association = association or Association()
        self.keep_retired = keep_retired
        self.live: list[_Track] = []
        self.retired: list[_Track] = []
        self.num_tracks = 0
        self.num_windows = 0
        self.first_pending = 0  # index of the first frame not yet finished
        self.pending_ids: list[int] = []  # the track of each pending row
        self.pending_sum: torch.Tensor | None = None  # (R, n, h, w) logit sums of the pending frames
        self.pending_count: torch.Tensor | None = None  # (R, n) windows that found the row's track in each frame

    @property
    def num_pending(self) -> int:
        return 0 if self.pending_sum is None else self.pending_sum.shape[1]

    def add(self, window: WindowOutputs, next_start: int) -> list[FinishedFrame]:
        """Add the next window (starting at the first pending frame); returns the frames before `next_start`."""
        start, length = self.first_pending, window.mask_logits.shape[1]
        if next_start > start + length:
            raise ValueError(f"the window covers frames {start}-{start + length - 1}, not up to {next_start}")
        self._retire(start)
        track_ids = self._match(window)
        self._update_tracks(track_ids, window, last_frame=start + length - 1)
        self._merge(track_ids, window.mask_logits)
        self.num_windows += 1
        return self._finish_before(next_start)

    def flush(self) -> list[FinishedFrame]:
        """Finish every pending frame (at the end of the video or stream)."""
        return self._finish_before(self.first_pending + self.num_pending)

    def track_probabilities(self, track_ids: np.ndarray) -> torch.Tensor:
        """(n, K) mean class probabilities of live tracks, by id."""
        by_id = {track.id: track for track in self.live}
        return torch.stack([by_id[int(track_id)].probabilities for track_id in track_ids])

    def all_tracks(self) -> list[_Track]:
        """Every track so far (retired ones only with `keep_retired`), by id."""
        return sorted(self.retired + self.live, key=lambda track: track.id)

    def _match(self, window: WindowOutputs) -> list[int]:
        """The track id of each query of the window: a live track it continues or a new one."""
        matches = np.full(len(window.probabilities), -1, dtype=np.int64)
        if self.live:
            shared = self.num_pending
            tracks_on_shared = self._live_logits_on_pending()  # (M, shared, h, w)
            iou = soft_mask_iou(self._crop(tracks_on_shared), self._crop(window.mask_logits[:, :shared]))
            similarity = torch.stack([track.embedding for track in self.live]) @ window.embeddings.T
            track_probabilities = torch.stack([track.probabilities for track in self.live])
            matches = associate(iou, similarity, track_probabilities, window.probabilities, self.association)
        return [self.live[match].id if match >= 0 else self._new_track_id() for match in matches.tolist()]

    def _new_track_id(self) -> int:
        self.num_tracks += 1
        return self.num_tracks - 1

    def _live_logits_on_pending(self) -> torch.Tensor:
        """(M, n, h, w) mean logits of the live tracks on the pending frames; ABSENT_LOGIT where not found."""
        _, num_pending, height, width = self.pending_sum.shape
        logits = torch.full((len(self.live), num_pending, height, width), ABSENT_LOGIT)
        row_of = {track_id: row for row, track_id in enumerate(self.pending_ids)}
        for index, track in enumerate(self.live):
            row = row_of.get(track.id)
            if row is not None:
                count = self.pending_count[row]
                found = count > 0
                logits[index, found] = self.pending_sum[row, found] / count[found, None, None]
        return logits

    def _crop(self, masks: torch.Tensor) -> torch.Tensor:
        return masks[..., : self.valid_low_res[0], : self.valid_low_res[1]]

    def _update_tracks(self, track_ids: list[int], window: WindowOutputs, last_frame: int) -> None:
        """Fold each query into its track: class probabilities, embedding, last frame found; create new tracks.

        The probabilities are averaged twice: weighted by window length (`probabilities`, the track's mean so far,
        for matching and the online mode) and by the frames the query's mask is on (`_frame_weights`):
        `seen_probabilities`, the whole-life score clip-by-clip inference ranks tracks by, which windows where the
        object was hidden do not pull down. The latter is a running mean, so a track of one window has its
        query's probabilities exactly.
        """
        length = window.mask_logits.shape[1]
        weights = _frame_weights(self._crop(window.mask_logits))
        by_id = {track.id: track for track in self.live}
        momentum = self.association.embedding_momentum
        for query, track_id in enumerate(track_ids):
            probabilities, embedding = window.probabilities[query], window.embeddings[query]
            track = by_id.get(track_id)
            if track is None:
                track = _Track(
                    id=track_id,
                    embedding=embedding,
                    class_sum=torch.zeros_like(probabilities),
                    weight=0,
                    last_frame=last_frame,
                    seen_probabilities=torch.zeros_like(probabilities),
                    seen_embedding=torch.zeros_like(embedding),
                )
                self.live.append(track)
            else:
                track.embedding = F.normalize(momentum * track.embedding + (1.0 - momentum) * embedding, dim=0)
                track.last_frame = last_frame
            _extend_runs(track.window_runs, self.num_windows)
            track.class_sum = track.class_sum + probabilities * length
            track.weight += length
            track.seen_weight += float(weights[query])
            share = float(weights[query]) / track.seen_weight
            track.seen_probabilities = track.seen_probabilities + (probabilities - track.seen_probabilities) * share
            track.seen_embedding = track.seen_embedding + (embedding - track.seen_embedding) * share

    def _merge(self, track_ids: list[int], mask_logits: torch.Tensor) -> None:
        """Add the window's logits to its tracks' rows on the pending frames and append the frames that are new."""
        length, height, width = mask_logits.shape[1:]
        if self.pending_sum is None:
            self.pending_sum = mask_logits.new_zeros((0, 0, height, width))
            self.pending_count = torch.zeros((0, 0), dtype=torch.int64)
        row_of = {track_id: row for row, track_id in enumerate(self.pending_ids)}
        for track_id in track_ids:
            if track_id not in row_of:
                row_of[track_id] = len(self.pending_ids)
                self.pending_ids.append(track_id)
        new_rows, new_frames = len(self.pending_ids) - len(self.pending_sum), length - self.num_pending
        self.pending_sum = F.pad(self.pending_sum, (0, 0, 0, 0, 0, new_frames, 0, new_rows))
        self.pending_count = F.pad(self.pending_count, (0, new_frames, 0, new_rows))
        rows = torch.tensor([row_of[track_id] for track_id in track_ids])
        self.pending_sum[rows] += mask_logits  # the rows are distinct: one query per track
        self.pending_count[rows] += 1

    def _retire(self, now: int) -> None:
        """Retire the live tracks whose last window ended more than `max_gap` frames before frame `now`."""
        horizon = now - self.association.max_gap
        retired = [track for track in self.live if track.last_frame < horizon]
        self.live = [track for track in self.live if track.last_frame >= horizon]
        if self.keep_retired:
            self.retired += retired

    def _finish_before(self, next_start: int) -> list[FinishedFrame]:
        """Hand back the frames before `next_start` and keep the rows of the rest that hold anything."""
        done = min(next_start - self.first_pending, self.num_pending)
        finished = []
        by_id = {track.id: track for track in self.live}
        for offset in range(done):
            found = self.pending_count[:, offset] > 0
            logits = self.pending_sum[found, offset] / self.pending_count[found, offset, None, None]
            track_ids = np.asarray(self.pending_ids, dtype=np.int64)[found.numpy()]
            index = self.first_pending + offset
            finished.append(FinishedFrame(index, track_ids, logits))
            visible = (self._crop(logits) > 0).flatten(1).any(dim=1)
            for track_id in track_ids[visible.numpy()].tolist():  # tracks with pending rows are live
                _extend_runs(by_id[track_id].visible_runs, index)
        self.first_pending += done
        keep = self.pending_count[:, done:].any(dim=1)
        self.pending_sum, self.pending_count = self.pending_sum[keep, done:], self.pending_count[keep, done:]
        self.pending_ids = [track_id for track_id, kept in zip(self.pending_ids, keep.tolist()) if kept]
        return finished


class TrackLogitStore:
    """The finished frames' per-track (n, h, w) mask logits, as float32 in an unnamed temporary file.

    Frame f holds the rows of the tracks found in it; `rows(groups)` gives a `LowResLogits` view with one row per
    group of tracks (one track, or the fragments `join_fragments` joined): on each frame the largest logit of the
    group's tracks found there, ABSENT_LOGIT where none was. The file is deleted when the store is closed or garbage
    collected. Reads use plain file reads, not a memory map, so that what was written does not come back
    into the process's memory.
    """

    def __init__(self, low_res_size: tuple[int, int]):
        self.low_res_size = low_res_size
        self.frame_size = low_res_size[0] * low_res_size[1]  # floats per row
        self.file = tempfile.TemporaryFile()
        self.offsets = [0]  # byte offset of each frame's rows, and of the end
        self.frame_track_ids: list[np.ndarray] = []

    @property
    def num_frames(self) -> int:
        return len(self.frame_track_ids)

    def append(self, frame: FinishedFrame) -> None:
        if frame.index != self.num_frames:
            raise ValueError(f"frames must be stored in order: got frame {frame.index}, expected {self.num_frames}")
        data = frame.logits.to(torch.float32).contiguous().numpy().tobytes()
        self.file.seek(0, os.SEEK_END)
        self.file.write(data)
        self.offsets.append(self.offsets[-1] + len(data))
        self.frame_track_ids.append(frame.track_ids)

    def read(self, start: int, stop: int, groups: Sequence[Sequence[int]]) -> torch.Tensor:
        """(len(groups), stop - start, h, w) logits of the given groups of tracks on frames [start, stop).

        A group's logit is the largest of its tracks' (the union of their masks): joined fragments were never in view
        at the same time, so on each frame at most one of them has a mask.
        """
        logits = torch.full((len(groups), stop - start, *self.low_res_size), ABSENT_LOGIT)
        self.file.seek(self.offsets[start])
        data = np.frombuffer(self.file.read(self.offsets[stop] - self.offsets[start]), dtype=np.float32)
        position = 0
        for offset, frame_ids in enumerate(self.frame_track_ids[start:stop]):
            frame = data[position : position + len(frame_ids) * self.frame_size].reshape(-1, *self.low_res_size)
            position += len(frame_ids) * self.frame_size
            row_of = {track_id: row for row, track_id in enumerate(frame_ids.tolist())}
            for index, group in enumerate(groups):
                for track_id in group:
                    if track_id in row_of:
                        row = torch.from_numpy(frame[row_of[track_id]].copy())
                        logits[index, offset] = torch.maximum(logits[index, offset], row)
        return logits

    def rows(self, groups: Sequence[Sequence[int]]) -> _TrackRows:
        return _TrackRows(self, groups)


class _TrackRows:
    """A `LowResLogits` over a `TrackLogitStore`: row i is the group of tracks `groups[i]`."""

    def __init__(self, store: TrackLogitStore, groups: Sequence[Sequence[int]]):
        self.store = store
        self.groups = [[int(track_id) for track_id in group] for group in groups]
        self.num_frames = store.num_frames

    def read(self, start: int, stop: int) -> torch.Tensor:
        return self.store.read(start, stop, self.groups)


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
    association: Association | None = None,
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
        association: when a query continues a track (default: `Association()`).

    Returns:
        The instances, with masks at low resolution until asked for (`VideoInstances.frame_masks`).
    """
    source = video if isinstance(video, VideoSource) else open_video(video)
    top_k = model.config.test_top_k if top_k is None else top_k
    starts = clip_starts(source.num_frames, clip_length, overlap)
    tracker = store = geometry = None
    windows = _windows(source, starts, clip_length)
    for index, frames in enumerate(tqdm(windows, total=len(starts), disable=not progress, desc=source.name)):
        window, resized_size = run_window(model, processor, frames, frame_chunk_size)
        if tracker is None:
            low_res_size = tuple(window.mask_logits.shape[-2:])
            geometry = MaskGeometry.of_masks(low_res_size, resized_size, (source.height, source.width))
            tracker = WindowTracker(geometry.valid_low_res_size, association)
            store = TrackLogitStore(low_res_size)
        next_start = starts[index + 1] if index + 1 < len(starts) else source.num_frames
        for frame in tracker.add(window, next_start):
            store.append(frame)
    if store.num_frames != source.num_frames:
        raise RuntimeError(f"tracked {store.num_frames} frames of {source.num_frames}")
    groups = join_fragments(tracker.all_tracks(), tracker.association)
    return _select_tracks(groups, store, top_k, threshold, geometry)


def group_probabilities(group: Sequence[_Track]) -> torch.Tensor:
    """(K,) whole-life class probabilities of a group of tracks: the mean over the frames their masks are on."""
    if len(group) == 1:
        return group[0].seen_probabilities
    total = sum(track.seen_weight for track in group)
    return sum(track.seen_probabilities * (track.seen_weight / total) for track in group)


def join_fragments(tracks: list[_Track], association: Association) -> list[list[_Track]]:
    """Join the fragments of one object into one group of tracks, at the end of a clip-by-clip run.

    The window-to-window matching loses an object that is hidden for longer than `association.max_gap`, or that
    the model misses for a window; it then comes back as a new track, sometimes while its old track lives on (the
    object's query was not sure of it yet when it came back, and the next windows continue the new track by mask
    overlap). The YouTube-VIS metric scores a track over the whole video, so two fragments of one object are each
    a poor match (and one a false positive), where the whole-video model has one query for the object. Two tracks
    may be one object's when:

    - no window found both (so a single window, i.e. the whole-video result, is never changed) and their masks
      were never on the same frame: they were never in view at the same time (one may fall in a gap of the other);
    - both are confident (top class probability above `association.min_join_score`) of the same class;
    - their whole-life embeddings (the means of their queries' embeddings over the frames their masks are on) are
      closer than `association.min_join_similarity` (cosine similarity).

    The groups are scipy's complete-linkage clusters of the fragments (cosine distance, infinite for pairs that fail
    the tests) cut at `1 - min_join_similarity`: every pair of tracks in a group passes, so that a chain of near
    matches never joins two objects. Background tracks and tracks never visible are left alone.

    Returns:
        Every track in exactly one group; each group in time order, the groups in the order of their first track.
    """
    if association.min_join_similarity is None:
        return [[track] for track in tracks]
    fragments = [
        track for track in tracks if track.visible_runs and track.probabilities.max() > association.min_join_score
    ]
    fragment_ids = {track.id for track in fragments}
    others = [[track] for track in tracks if track.id not in fragment_ids]
    if len(fragments) < 2:
        return [[track] for track in tracks]
    labels = torch.stack([track.probabilities for track in fragments]).argmax(dim=1)
    embeddings = F.normalize(torch.stack([track.seen_embedding for track in fragments]), dim=1)
    distance = (1.0 - embeddings @ embeddings.T).double()  # cosine distance, in [0, 2]
    distance[labels[:, None] != labels[None, :]] = NEVER_JOINED
    cut = 1.0 - association.min_join_similarity  # the largest distance within a group
    for i, j in torch.triu(distance <= cut, diagonal=1).nonzero().tolist():
        first, second = fragments[i], fragments[j]
        in_one_window = _runs_overlap(first.window_runs, second.window_runs)
        if in_one_window or _runs_overlap(first.visible_runs, second.visible_runs):
            distance[i, j] = distance[j, i] = NEVER_JOINED
    tree = linkage(squareform(distance.numpy(), checks=False), method="complete")
    cluster_of = fcluster(tree, t=cut, criterion="distance")  # (n,) a cluster number per fragment
    chains = []
    for cluster in np.unique(cluster_of):
        members = [track for track, member_of in zip(fragments, cluster_of) if member_of == cluster]
        chains.append(sorted(members, key=lambda track: track.visible_runs[0][0]))
    return sorted(chains + others, key=lambda group: group[0].id)


def _select_tracks(
    groups: list[list[_Track]], store: TrackLogitStore, top_k: int, threshold: float, geometry: MaskGeometry
) -> VideoInstances:
    """The top-k (group of tracks, class) pairs by mean probability, with a view of their masks in the store.

    An instance's `query_indices` entry is the id of its group's first track.
    """
    probabilities = torch.stack([group_probabilities(group) for group in groups])  # (num_groups, K)
    scores, labels, indices = select_instances(probabilities, top_k, threshold)
    chosen = [groups[index] for index in indices.tolist()]
    return VideoInstances(
        scores=scores.numpy(),
        labels=labels.numpy(),
        query_indices=np.array([group[0].id for group in chosen], dtype=np.int64),
        logits=store.rows([[track.id for track in group] for group in chosen]),
        rows=np.arange(len(chosen)),
        geometry=geometry,
    )
