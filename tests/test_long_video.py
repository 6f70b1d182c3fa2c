"""Long videos: chunked backbone, low-resolution masks until top-k, and clip-by-clip inference with tracking
(mask overlap on shared frames, re-identification after a gap, one track per object)."""

from dataclasses import dataclass
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from inference_helpers import HEIGHT, WIDTH, save_tiny_model, synthetic_frames

import modeling_m2f_video.processing.post_processing as post_processing
from modeling_m2f_video import Mask2FormerVideoForVideoInstanceSegmentation
from modeling_m2f_video.inference.clip_by_clip import (
    Association,
    FinishedFrame,
    TrackLogitStore,
    WindowOutputs,
    WindowTracker,
    _Track,
    associate,
    clip_starts,
    group_probabilities,
    join_fragments,
    segment_video_by_clips,
    soft_mask_iou,
)
from modeling_m2f_video.processing.video_io import VideoSource, open_video
from modeling_m2f_video.processing.video_processing_m2f_video import Mask2FormerVideoProcessor


def assert_stored_close(stored: torch.Tensor, logits: torch.Tensor) -> None:
    """The store keeps float32 logits: the model's, or on frames two windows share their mean (float rounding)."""
    torch.testing.assert_close(stored, logits.float(), atol=1e-6, rtol=1e-6)


# Many operations on tiny tensors: one torch thread (conftest's `one_torch_thread`).
pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def model_and_processor(tmp_path_factory):
    folder = save_tiny_model(tmp_path_factory.mktemp("tiny_model"))
    model = Mask2FormerVideoForVideoInstanceSegmentation.from_pretrained(folder).eval()
    return model, Mask2FormerVideoProcessor.from_pretrained(folder)


@pytest.mark.parametrize(("length", "clip", "overlap"), [(5, 8, 2), (20, 8, 2), (21, 8, 3), (9, 8, 1)])
def test_clip_starts_cover_the_video_with_full_overlapping_windows(length, clip, overlap):
    starts = clip_starts(length, clip, overlap)
    assert starts[0] == 0 and min(starts[-1] + clip, length) == length
    covered = set().union(*(range(s, min(s + clip, length)) for s in starts))
    assert covered == set(range(length))
    for previous, start in zip(starts, starts[1:]):
        assert previous + clip - start >= overlap  # consecutive windows share at least `overlap` frames
        assert start + clip <= length  # every window is full length


def test_clip_starts_reject_windows_that_cannot_be_matched():
    with pytest.raises(ValueError, match="overlap"):
        clip_starts(20, 8, 0)
    with pytest.raises(ValueError, match="overlap"):
        clip_starts(20, 8, 8)


def test_association_finds_a_permutation_from_overlapping_masks():
    generator = torch.Generator().manual_seed(1)
    previous = torch.randn(6, 3, 8, 8, generator=generator) * 3
    order = torch.randperm(6, generator=generator)
    current = previous[order] + 0.1 * torch.randn(6, 3, 8, 8, generator=generator)
    iou = soft_mask_iou(previous, current)
    probabilities = torch.full((6, 2), 0.4)  # unconfident: only the masks can link queries to tracks
    matches = associate(iou, torch.zeros(6, 6), probabilities, probabilities, Association())
    # Track i continues in the current query j where current[j] == previous[i], i.e. order[j] == i.
    assert np.array_equal(matches, order.numpy())


def test_a_weak_pairing_never_takes_an_objects_query_from_its_track():
    """Track 0 overlaps query 0 strongly; a new, unsure track 1 overlaps query 0 a little and nothing else, and
    track 0 overlaps query 1 a little. Two weak pairs must not beat the one strong pair: track 0 keeps query 0 and
    track 1 is left unmatched."""
    iou = torch.tensor([[0.93, 0.13, 0.0], [0.11, 0.09, 0.0]])
    similarity = torch.tensor([[0.99, 0.4, 0.0], [0.4, 0.99, 0.0]])
    probabilities = torch.tensor([[0.99, 0.0], [0.3, 0.0]])
    matches = associate(
        iou, similarity, probabilities, torch.tensor([[0.99, 0.0], [0.3, 0.0], [0.0, 0.0]]), Association()
    )
    assert matches.tolist() == [0, -1, -1]


class _FrameIndexProcessor:
    """Stands in for the processor: passes each frame's index (its pixel value) to the fake model."""

    def __call__(self, frames, input_data_format="channels_last", return_tensors="pt"):
        indices = torch.from_numpy(frames[:, 0, 0, 0].astype(np.int64))
        return {"pixel_values_videos": indices[None].float(), "resized_sizes": torch.tensor([[32, 32]])}


class _PermutingModel:
    """Stands in for the model: slices fixed whole-video outputs, shuffling the queries differently per call."""

    device, dtype = torch.device("cpu"), torch.float32

    def __init__(self, class_logits: torch.Tensor, mask_logits: torch.Tensor, embeddings: torch.Tensor):
        self.class_logits, self.mask_logits, self.embeddings = class_logits, mask_logits, embeddings
        self.generator = torch.Generator().manual_seed(2)

    def __call__(self, pixel_values_videos, frame_chunk_size=None):
        frames = pixel_values_videos[0].long()
        order = torch.randperm(len(self.class_logits), generator=self.generator)
        return SimpleNamespace(
            class_queries_logits=self.class_logits[order][None],
            masks_queries_logits=self.mask_logits[order][:, frames][None],
            transformer_decoder_last_hidden_state=self.embeddings[order][None],
        )


def test_clip_by_clip_tracking_recovers_the_whole_video_instances():
    """If each window's outputs are the whole video's (with queries shuffled), tracking must undo the shuffle."""
    num_frames, num_queries, num_classes = 23, 6, 3
    generator = torch.Generator().manual_seed(0)
    class_logits = torch.randn(num_queries, num_classes + 1, generator=generator) * 3
    mask_logits = torch.randn(num_queries, num_frames, 8, 8, generator=generator) * 3
    embeddings = torch.randn(num_queries, 16, generator=generator)
    frames = np.broadcast_to(np.arange(num_frames, dtype=np.uint8)[:, None, None, None], (num_frames, 32, 32, 3))

    tracked = segment_video_by_clips(
        _PermutingModel(class_logits, mask_logits, embeddings),
        _FrameIndexProcessor(),
        frames,
        clip_length=7,
        overlap=2,
        top_k=5,
    )

    scores = class_logits.softmax(-1)[:, :-1].flatten()
    expected_scores, expected_indices = scores.topk(5)
    np.testing.assert_allclose(tracked.scores, expected_scores.numpy(), rtol=1e-6)
    np.testing.assert_array_equal(tracked.labels, (expected_indices % num_classes).numpy())
    for rank, query in enumerate((expected_indices // num_classes).tolist()):
        assert_stored_close(tracked.low_res_logits(rank), mask_logits[query])


@dataclass
class _SceneObject:
    """An object of a scripted scene: its class, its embedding, and where it is (a 2x2 blob) in each frame."""

    label: int
    embedding: torch.Tensor  # (C,)
    places: dict[range, tuple[int, int]]  # frames -> (y, x) of the blob at low resolution; absent elsewhere

    def place(self, frame: int) -> tuple[int, int] | None:
        return next((place for frames, place in self.places.items() if frame in frames), None)


class _SceneModel:
    """Stands in for the model on a scripted scene: in each window, every object in view is one query (in a
    slot shuffled per window) with a confident class, its blob on the frames it is in and its embedding (plus
    noise); the other queries are background (unconfident, empty masks, random embeddings)."""

    device, dtype = torch.device("cpu"), torch.float32

    def __init__(self, objects: list[_SceneObject], num_queries: int = 5):
        self.objects, self.num_queries = objects, num_queries
        self.generator = torch.Generator().manual_seed(3)

    def __call__(self, pixel_values_videos, frame_chunk_size=None):
        frames = pixel_values_videos[0].long().tolist()
        class_logits = torch.tensor([[0.0, 0.0, 3.0]]).repeat(self.num_queries, 1)  # "no object" wins
        masks = torch.full((self.num_queries, len(frames), 8, 8), -10.0)
        embeddings = torch.randn(self.num_queries, 16, generator=self.generator)
        in_view = [obj for obj in self.objects if any(obj.place(frame) for frame in frames)]
        slots = torch.randperm(self.num_queries, generator=self.generator)
        for slot, obj in zip(slots.tolist(), in_view):
            class_logits[slot] = torch.nn.functional.one_hot(torch.tensor(obj.label), 3) * 5.0
            embeddings[slot] = obj.embedding + 0.05 * torch.randn(16, generator=self.generator)
            for index, frame in enumerate(frames):
                if (place := obj.place(frame)) is not None:
                    masks[slot, index, place[0] : place[0] + 2, place[1] : place[1] + 2] = 10.0
        return SimpleNamespace(
            class_queries_logits=class_logits[None],
            masks_queries_logits=masks[None],
            transformer_decoder_last_hidden_state=embeddings[None],
        )


def _gap_scene(returning_embedding_sign: float = 1.0) -> list[_SceneObject]:
    """Object A (class 0) is in view on frames 0-19, gone on 20-35 (two windows see nothing of it), and back on
    36-59 elsewhere in the frame; object B (class 1) is in view throughout."""
    embedding_a, embedding_b = torch.zeros(16), torch.zeros(16)
    embedding_a[0], embedding_b[1] = 1.0, 1.0
    object_a = _SceneObject(0, embedding_a, {range(0, 20): (1, 1)})
    returning_a = _SceneObject(0, returning_embedding_sign * embedding_a, {range(36, 60): (5, 5)})
    object_b = _SceneObject(1, embedding_b, {range(0, 60): (1, 5)})
    return [object_a, returning_a, object_b]


def _confident_tracks(scene: list[_SceneObject], association: Association | None = None) -> list[np.ndarray]:
    """For each instance scoring above 0.5 of a clip-by-clip run on the scene: the frames its mask is on."""
    frames = np.broadcast_to(np.arange(60, dtype=np.uint8)[:, None, None, None], (60, 32, 32, 3))
    tracked = segment_video_by_clips(
        _SceneModel(scene), _FrameIndexProcessor(), frames, clip_length=8, overlap=2, top_k=10, association=association
    )
    confident = np.flatnonzero(tracked.scores > 0.5)
    return [np.flatnonzero((tracked.low_res_logits(index) > 0).any(dim=(1, 2))) for index in confident]


def test_a_track_is_found_again_after_a_gap():
    """The returning object continues its old track (by class and embedding): one track per object, its mask
    empty while the object was gone."""
    on_frames = sorted(_confident_tracks(_gap_scene()), key=len)
    assert len(on_frames) == 2
    np.testing.assert_array_equal(on_frames[0], np.r_[0:20, 36:60])  # A: one track, empty in the gap
    np.testing.assert_array_equal(on_frames[1], np.arange(60))  # B


def test_a_fragment_after_a_gap_longer_than_max_gap_is_joined_at_the_end():
    """The live tracker retires A during its gap (max_gap 4), so A comes back as a new track; the end of the run
    joins the two fragments (same class, never in view together, close embeddings): one track for A."""
    on_frames = sorted(_confident_tracks(_gap_scene(), Association(max_gap=4)), key=len)
    assert len(on_frames) == 2
    np.testing.assert_array_equal(on_frames[0], np.r_[0:20, 36:60])
    np.testing.assert_array_equal(on_frames[1], np.arange(60))


@pytest.mark.parametrize(
    "scene, association",
    [
        (_gap_scene(returning_embedding_sign=-1.0), None),
        (_gap_scene(returning_embedding_sign=-1.0), Association(max_gap=4)),
        (_gap_scene(), Association(max_gap=4, min_join_similarity=None)),
    ],
    ids=["another object of the same class", "another object after max_gap", "gap longer than max_gap, no joining"],
)
def test_no_reidentification_of_another_object_or_after_max_gap(scene, association):
    on_frames = sorted(_confident_tracks(scene, association), key=lambda frames: frames[0])
    assert len(on_frames) == 3
    np.testing.assert_array_equal(on_frames[0], np.arange(60))  # B
    np.testing.assert_array_equal(on_frames[1], np.arange(0, 20))  # A
    np.testing.assert_array_equal(on_frames[2], np.arange(36, 60))  # a new track


def _fragment(
    track_id: int,
    label: int,
    embedding: list[float],
    windows: tuple[int, int] | list[list[int]],
    visible: tuple[int, int] | list[list[int]] | None,
) -> _Track:
    """A finished track: confident of `label`, found in windows [first, last], its mask on frames [first, last]
    (or on several such runs)."""
    probabilities = torch.nn.functional.one_hot(torch.tensor(label), 3).float() * 0.9
    unit = torch.nn.functional.normalize(torch.tensor(embedding), dim=0)
    window_runs = [list(windows)] if isinstance(windows, tuple) else windows
    visible_runs = [] if visible is None else [list(visible)] if isinstance(visible, tuple) else visible
    return _Track(
        id=track_id,
        embedding=unit,
        class_sum=probabilities * 8,
        weight=8,
        last_frame=8 * window_runs[-1][1] + 7,
        seen_probabilities=probabilities,
        seen_embedding=unit,
        seen_weight=8.0,
        window_runs=window_runs,
        visible_runs=visible_runs,
    )


def _group_ids(groups: list[list[_Track]]) -> list[list[int]]:
    return [[track.id for track in group] for group in groups]


def test_fragments_of_one_object_are_joined_into_one_track_in_time_order():
    """Three fragments of one object (class 0, close embeddings, one after the other) become one chain; another
    object of the same class, with another embedding, and one of another class stay apart."""
    tracks = [
        _fragment(0, 0, [1.0, 0.1, 0.0], windows=(0, 2), visible=(0, 20)),
        _fragment(1, 0, [0.0, 0.0, 1.0], windows=(1, 6), visible=(10, 50)),  # another object of class 0
        _fragment(2, 1, [1.0, 0.0, 0.0], windows=(3, 4), visible=(30, 37)),  # class 1
        _fragment(3, 0, [1.0, 0.0, 0.1], windows=(4, 5), visible=(36, 44)),
        _fragment(4, 0, [1.0, 0.1, 0.1], windows=(7, 9), visible=(60, 79)),
    ]
    assert _group_ids(join_fragments(tracks, Association())) == [[0, 3, 4], [1], [2]]
    assert _group_ids(join_fragments(tracks, Association(min_join_similarity=None))) == [[0], [1], [2], [3], [4]]


@pytest.mark.parametrize(
    "later",
    [
        _fragment(1, 0, [1.0, 0.0], windows=(2, 3), visible=(15, 30)),  # in view at the same time (frame 15-19)
        _fragment(1, 0, [1.0, 0.0], windows=(2, 3), visible=None),  # never in view
        _fragment(
            1, 0, [1.0, 0.0], windows=(1, 3), visible=(22, 30)
        ),  # window 1 found both: two queries of one window
        _fragment(1, 0, [0.5, -1.0], windows=(2, 3), visible=(22, 30)),  # another embedding
        _fragment(1, 1, [1.0, 0.0], windows=(2, 3), visible=(22, 30)),  # another class
    ],
    ids=["in view together", "never visible", "same window", "another embedding", "another class"],
)
def test_tracks_that_may_be_two_objects_are_not_joined(later):
    earlier = _fragment(0, 0, [1.0, 0.0], windows=(0, 1), visible=(0, 19))
    assert _group_ids(join_fragments([earlier, later], Association())) == [[0], [1]]


def test_a_fragment_in_a_gap_of_another_track_is_joined():
    """The object came back while its query was unsure of it, so a new track took it until it left again; its old
    track found it the next time. The fragment falls in a gap of the old track (windows and frames): one object."""
    host = _fragment(0, 0, [1.0, 0.0, 0.0], windows=[[0, 1], [6, 8]], visible=[[0, 15], [50, 70]])
    inside = _fragment(1, 0, [0.9, 0.1, 0.0], windows=(3, 4), visible=(25, 39))
    overlapping = _fragment(2, 0, [1.0, 0.0, 0.1], windows=(8, 9), visible=(68, 79))  # in view with the host
    assert _group_ids(join_fragments([host, inside, overlapping], Association())) == [[0, 1], [2]]


def test_a_group_joins_only_tracks_that_may_all_be_one_object():
    """Complete linkage: 1 may follow 0 and 2 may follow 1, but 0 and 2 are too far apart in embedding; the most
    similar pair is joined and the third stays apart, rather than a chain joining two objects."""
    tracks = [
        _fragment(0, 0, [1.0, 0.0], windows=(0, 1), visible=(0, 15)),
        _fragment(1, 0, [0.69, 0.72], windows=(2, 3), visible=(20, 35)),
        _fragment(2, 0, [0.0, 1.0], windows=(4, 5), visible=(40, 55)),
    ]
    assert _group_ids(join_fragments(tracks, Association())) == [[0], [1, 2]]


def test_unconfident_fragments_are_not_joined():
    earlier = _fragment(0, 0, [1.0, 0.0], windows=(0, 1), visible=(0, 19))
    later = _fragment(1, 0, [1.0, 0.0], windows=(2, 3), visible=(22, 30))
    later.class_sum = later.class_sum / 4  # top class probability 0.225 < min_join_score
    assert _group_ids(join_fragments([earlier, later], Association())) == [[0], [1]]
    assert _group_ids(join_fragments([earlier, later], Association(min_join_score=0.2))) == [[0, 1]]


def test_a_joined_group_reads_as_one_row_of_masks():
    """A group's row is, frame by frame, the mask of whichever of its tracks was found there."""
    store = TrackLogitStore((2, 2))
    first, second = torch.full((1, 2, 2), 3.0), torch.full((1, 2, 2), 5.0)
    store.append(FinishedFrame(0, np.array([0]), first))
    store.append(FinishedFrame(1, np.array([7]), second))
    store.append(FinishedFrame(2, np.array([], dtype=np.int64), torch.zeros(0, 2, 2)))
    logits = store.rows([[0, 7], [7]]).read(0, 3)
    assert torch.equal(logits[0, 0], first[0]) and torch.equal(logits[0, 1], second[0])
    assert torch.all(logits[0, 2] < -1e3) and torch.all(logits[1, 0] < -1e3) and torch.equal(logits[1, 1], second[0])


def test_a_track_is_scored_by_the_frames_that_show_it():
    """Window 2 continues the track by mask overlap on the shared frames only, where the query is less sure of the
    class; the whole-life score weighs the windows by the frames the mask is on (8 and 2), the running mean by
    window length."""
    tracker = WindowTracker((4, 4))
    on, off = torch.full((4, 4), 10.0), torch.full((4, 4), -10.0)

    def window(probability: float, visible: list[bool]) -> WindowOutputs:
        masks = torch.stack([on if frame else off for frame in visible])[None]  # (1, 8, 4, 4)
        return WindowOutputs(torch.tensor([[probability, 0.0]]), masks, torch.tensor([[1.0, 0.0]]))

    tracker.add(window(0.9, [True] * 8), next_start=6)
    tracker.add(window(0.3, [True] * 2 + [False] * 6), next_start=14)
    (track,) = tracker.all_tracks()
    assert track.window_runs == [[0, 1]] and track.visible_runs == [[0, 7]]
    assert float(track.probabilities[0]) == pytest.approx(0.6)
    assert float(group_probabilities([track])[0]) == pytest.approx((0.9 * 8 + 0.3 * 2) / 10)


def test_single_window_clip_mode_keeps_the_models_masks(model_and_processor):
    model, processor = model_and_processor
    frames = synthetic_frames(6)
    tracked = segment_video_by_clips(model, processor, frames, clip_length=8, overlap=2, top_k=4)

    inputs = processor(frames, return_tensors="pt")
    with torch.no_grad():
        outputs = model(**inputs)
    reference = processor.post_process_video_instance_segmentation(
        outputs, target_sizes=[(HEIGHT, WIDTH)], top_k=4, resized_sizes=inputs["resized_sizes"]
    )[0]
    np.testing.assert_allclose(tracked.scores, reference["scores"].numpy(), rtol=1e-5)
    np.testing.assert_array_equal(tracked.labels, reference["labels"].numpy())
    for rank, query in enumerate(reference["query_indices"].tolist()):  # one window: the model's logits, exactly
        assert torch.equal(tracked.low_res_logits(rank), outputs.masks_queries_logits[0, query])
    np.testing.assert_array_equal(tracked.masks(), reference["masks"].numpy())


def test_windows_are_read_lazily(model_and_processor):
    """Clip-by-clip inference decodes a frame only when a window needs it, never the whole video up front."""
    model, processor = model_and_processor
    frames = synthetic_frames(14)
    consumed = []

    def read_frames():
        for index, frame in enumerate(frames):
            consumed.append(index)
            yield frame

    source = VideoSource("counted", len(frames), HEIGHT, WIDTH, "counted", read_frames)
    seen_before_window = []
    original_call = processor.__class__.__call__

    def spy(self, videos, **kwargs):
        seen_before_window.append(len(consumed))
        return original_call(self, videos, **kwargs)

    processor.__class__.__call__ = spy
    try:
        segment_video_by_clips(model, processor, source, clip_length=6, overlap=2)
    finally:
        processor.__class__.__call__ = original_call
    window_ends = [start + 6 for start in clip_starts(14, 6, 2)]
    assert seen_before_window == window_ends


def test_chunked_backbone_gives_the_same_outputs(model_and_processor):
    model, processor = model_and_processor
    inputs = processor(synthetic_frames(7), return_tensors="pt")
    with torch.no_grad():
        whole = model(**inputs)
        model.config.frame_chunk_size = 3
        try:
            chunked = model(**inputs)
        finally:
            model.config.frame_chunk_size = None
    torch.testing.assert_close(chunked.class_queries_logits, whole.class_queries_logits, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(chunked.masks_queries_logits, whole.masks_queries_logits, atol=1e-4, rtol=1e-5)


def test_post_processing_upsamples_only_the_kept_masks(model_and_processor, monkeypatch):
    """Masks stay at 1/4 resolution until the top-k are chosen: only k single-query volumes are upsampled."""
    model, processor = model_and_processor
    inputs = processor(synthetic_frames(5), return_tensors="pt")
    with torch.no_grad():
        outputs = model(**inputs)
    upsampled_shapes = []
    interpolate = post_processing.F.interpolate

    def recording_interpolate(tensor, *args, **kwargs):
        upsampled_shapes.append(tuple(tensor.shape))
        return interpolate(tensor, *args, **kwargs)

    monkeypatch.setattr(post_processing.F, "interpolate", recording_interpolate)
    processor.post_process_video_instance_segmentation(outputs, inputs=inputs, top_k=2)
    num_frames, low_res = 5, tuple(outputs.masks_queries_logits.shape[-2:])
    assert len(upsampled_shapes) == 4  # two resizes per kept query
    assert all(shape[:2] == (1, num_frames) for shape in upsampled_shapes)  # one query's frames at a time
    assert upsampled_shapes[0][2:] == low_res


def test_open_video_source_reads_every_frame_once():
    frames = synthetic_frames(5)
    source = open_video(frames, frame_stride=2)
    assert source.num_frames == 3
    np.testing.assert_array_equal(source.read(), frames[::2])
