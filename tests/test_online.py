"""The online mode: frames handed out within `window` frames of arriving, bounded tracker state on long streams,
a video file read as a stream through PyAV, and one window giving the model's own masks."""

import io
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from inference_helpers import HEIGHT, WIDTH, save_tiny_model, synthetic_frames

from modeling_m2f_video import Mask2FormerVideoForVideoInstanceSegmentation
from modeling_m2f_video.inference import online
from modeling_m2f_video.inference.clip_by_clip import Association
from modeling_m2f_video.inference.online import segment_stream, stream_frames
from modeling_m2f_video.processing.post_processing import MaskGeometry, class_probabilities
from modeling_m2f_video.processing.video_io import open_video, write_video
from modeling_m2f_video.processing.video_processing_m2f_video import Mask2FormerVideoProcessor

NUM_QUERIES = 4


# Many operations on tiny tensors: one torch thread (conftest's `one_torch_thread`).
pytestmark = pytest.mark.usefixtures("one_torch_thread")


class _FakeProcessor:
    """Stands in for the processor: 32x32 frames, whatever their content."""

    def __call__(self, frames, input_data_format="channels_last", return_tensors="pt"):
        return {
            "pixel_values_videos": torch.zeros(1, len(frames), 3, 32, 32),
            "resized_sizes": torch.tensor([[32, 32]]),
        }


class _NewObjectsModel:
    """Stands in for the model: every window shows new objects (a small random blob each, a random embedding,
    a confident class), so every query starts a track and, without retirement, the tracks would pile up."""

    device, dtype = torch.device("cpu"), torch.float32

    def __init__(self):
        self.generator = torch.Generator().manual_seed(0)

    def __call__(self, pixel_values_videos, frame_chunk_size=None):
        length = pixel_values_videos.shape[1]
        blobs = torch.rand(NUM_QUERIES, 1, 8, 8, generator=self.generator) < 0.1
        class_logits = torch.tensor([[4.0, 0.0, 0.0]]).repeat(NUM_QUERIES, 1)
        return SimpleNamespace(
            class_queries_logits=class_logits[None],
            masks_queries_logits=torch.where(blobs, 10.0, -10.0).expand(-1, length, -1, -1)[None],
            transformer_decoder_last_hidden_state=torch.randn(1, NUM_QUERIES, 16, generator=self.generator),
        )


def _counted(frames, pulled: list[int]):
    for frame in frames:
        pulled[0] += 1
        yield frame


def test_each_frame_is_handed_out_within_the_window():
    frames = np.zeros((50, 32, 32, 3), dtype=np.uint8)
    pulled = [0]
    pulled_when_yielded = {}
    stream = segment_stream(_NewObjectsModel(), _FakeProcessor(), _counted(frames, pulled), window=6, overlap=2)
    for instances in stream:
        pulled_when_yielded[instances.index] = pulled[0]
    assert list(pulled_when_yielded) == list(range(50))  # every frame once, in order
    assert pulled_when_yielded[0] == 6  # the first window, no more, before the first frame comes out
    assert all(pulled_when_yielded[index] <= index + 6 for index in range(50))  # latency <= window


def test_tracker_state_stays_bounded_on_a_long_stream(monkeypatch):
    """New objects keep coming; live tracks and pending frames stay bounded because unfound tracks retire."""
    sizes = []

    class RecordingTracker(online.WindowTracker):
        def add(self, window, next_start):
            finished = super().add(window, next_start)
            sizes.append((len(self.live), len(self.retired), self.num_pending, len(self.pending_ids)))
            return finished

    monkeypatch.setattr(online, "WindowTracker", RecordingTracker)
    window, overlap, max_gap = 6, 2, 12
    frames = (np.zeros((32, 32, 3), dtype=np.uint8) for _ in range(400))
    stream = segment_stream(
        _NewObjectsModel(),
        _FakeProcessor(),
        frames,
        window=window,
        overlap=overlap,
        association=Association(max_gap=max_gap),
    )
    assert sum(1 for _ in stream) == 400
    live, retired, pending_frames, pending_rows = (max(column) for column in zip(*sizes))
    stride = window - overlap
    windows_alive = (max_gap + window) // stride + 1  # windows whose tracks are still live
    assert len(sizes) >= 90 and NUM_QUERIES * len(sizes) > 10 * live  # many more tracks were made than kept
    assert live <= NUM_QUERIES * windows_alive
    assert retired == 0  # the online tracker forgets retired tracks
    assert pending_frames <= overlap and pending_rows <= 2 * NUM_QUERIES


def test_bad_stream_options_are_named():
    with pytest.raises(ValueError, match="overlap"):
        next(segment_stream(_NewObjectsModel(), _FakeProcessor(), [], window=4, overlap=4))
    with pytest.raises(ValueError, match="window"):
        next(segment_stream(_NewObjectsModel(), _FakeProcessor(), [], window=0))
    with pytest.raises(ValueError, match="frame 1"):
        frames = [np.zeros((32, 32, 3), np.uint8), np.zeros((16, 32, 3), np.uint8)]
        next(segment_stream(_NewObjectsModel(), _FakeProcessor(), frames, window=2, overlap=1))


class _NonSeekable(io.RawIOBase):
    """A file read front to back only, like a pipe or a network socket."""

    def __init__(self, data: bytes):
        self.data, self.position = data, 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        chunk = self.data[self.position : self.position + len(buffer)]
        buffer[: len(chunk)] = chunk
        self.position += len(chunk)
        return len(chunk)


@pytest.fixture(scope="module")
def model_and_processor(tmp_path_factory):
    folder = save_tiny_model(tmp_path_factory.mktemp("tiny_model"))
    model = Mask2FormerVideoForVideoInstanceSegmentation.from_pretrained(folder).eval()
    return model, Mask2FormerVideoProcessor.from_pretrained(folder)


def test_a_video_file_read_as_a_stream(model_and_processor, tmp_path):
    """A transport stream read through a non-seekable file: every frame decoded and segmented in order."""
    path = write_video(tmp_path / "stream.ts", synthetic_frames(11))
    decoded = list(stream_frames(_NonSeekable(path.read_bytes())))
    np.testing.assert_array_equal(np.stack(decoded), open_video(path).read())

    model, processor = model_and_processor
    results = list(
        segment_stream(model, processor, stream_frames(_NonSeekable(path.read_bytes())), window=4, overlap=1)
    )
    assert [instances.index for instances in results] == list(range(11))
    for instances in results:
        assert instances.masks.shape == (len(instances), HEIGHT, WIDTH) and instances.masks.dtype == bool
        assert np.all(instances.scores > 0.5) and np.all(np.diff(instances.scores) <= 0)


def test_stream_errors_name_the_source(tmp_path):
    broken = tmp_path / "broken.ts"
    broken.write_bytes(b"not a video")
    with pytest.raises(ValueError, match="broken.ts"):
        next(stream_frames(broken))


def test_one_window_hands_out_the_models_masks(model_and_processor):
    """With the whole video in one window, frame f's instances are the queries with a mask there, and their masks
    are the model's masks, upsampled as the post-processing does."""
    model, processor = model_and_processor
    frames = synthetic_frames(5)
    results = list(segment_stream(model, processor, iter(frames), window=8, threshold=0.0))

    inputs = processor(frames, return_tensors="pt")
    with torch.no_grad():
        outputs = model(**inputs)
    geometry = MaskGeometry.of_masks(
        outputs.masks_queries_logits.shape[-2:], inputs["resized_sizes"][0].tolist(), (HEIGHT, WIDTH)
    )
    scores = class_probabilities(outputs.class_queries_logits[0]).max(dim=1).values
    assert len(results) == 5 and sum(len(instances) for instances in results) > 0
    for frame, instances in enumerate(results):
        masks = geometry.upsample(outputs.masks_queries_logits[0, :, frame]) > 0  # (Q, H, W)
        expected = [query for query in range(len(masks)) if masks[query].any()]
        assert sorted(instances.track_ids.tolist()) == expected  # one window: track i is query i
        for track_id, score, mask in zip(instances.track_ids, instances.scores, instances.masks):
            np.testing.assert_array_equal(mask, masks[track_id].numpy())
            assert score == pytest.approx(float(scores[track_id]), rel=1e-6)


class _FrameIndexProcessor:
    """Stands in for the processor: passes each frame's index (its pixel value) to the fake model."""

    def __call__(self, frames, input_data_format="channels_last", return_tensors="pt"):
        indices = torch.from_numpy(np.stack(frames)[:, 0, 0, 0].astype(np.int64))
        return {"pixel_values_videos": indices[None].float(), "resized_sizes": torch.tensor([[32, 32]])}


class _ReturningObjectModel:
    """Stands in for the model: one confident object (class 0, a fixed embedding) on frames 0-11 and 40-59, gone in
    between; the other queries are background."""

    device, dtype = torch.device("cpu"), torch.float32

    def __call__(self, pixel_values_videos, frame_chunk_size=None):
        frames = pixel_values_videos[0].long().tolist()
        class_logits = torch.tensor([[0.0, 0.0, 4.0]]).repeat(NUM_QUERIES, 1)
        masks = torch.full((NUM_QUERIES, len(frames), 8, 8), -10.0)
        embeddings = torch.eye(NUM_QUERIES, 16)
        if any(frame < 12 or frame >= 40 for frame in frames):
            class_logits[0] = torch.tensor([5.0, 0.0, 0.0])
            for index, frame in enumerate(frames):
                if frame < 12 or frame >= 40:
                    masks[0, index, 2:4, 2:4] = 10.0
        return SimpleNamespace(
            class_queries_logits=class_logits[None],
            masks_queries_logits=masks[None],
            transformer_decoder_last_hidden_state=embeddings[None],
        )


@pytest.mark.parametrize(("max_gap", "num_ids"), [(128, 1), (8, 2)])
def test_a_returning_object_keeps_its_track_id_within_max_gap(max_gap, num_ids):
    """Online, a track is re-identified by embedding after a gap shorter than `max_gap`; after a longer one the
    object comes back with a new id (nothing is joined afterwards: its frames were handed out)."""
    frames = (np.full((32, 32, 3), index, dtype=np.uint8) for index in range(60))
    stream = segment_stream(
        _ReturningObjectModel(),
        _FrameIndexProcessor(),
        frames,
        window=8,
        overlap=2,
        association=Association(max_gap=max_gap),
    )
    ids_by_frame = {instances.index: instances.track_ids.tolist() for instances in stream}
    assert all(len(ids_by_frame[frame]) == 1 for frame in [*range(12), *range(40, 60)])
    assert all(ids_by_frame[frame] == [] for frame in range(12, 40))
    assert len({track_id for ids in ids_by_frame.values() for track_id in ids}) == num_ids
