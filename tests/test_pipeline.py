"""The video-instance-segmentation pipeline: inputs, options, outputs, batches and clear errors."""

import numpy as np
import pytest
import torch
from inference_helpers import HEIGHT, WIDTH, save_tiny_model, synthetic_frames
from PIL import Image
from transformers import pipeline
from transformers.pipelines import PIPELINE_REGISTRY

from modeling_m2f_video.inference.instances import FrameMasks
from modeling_m2f_video.inference.segment import choose_mode
from modeling_m2f_video.pipeline_video_instance_segmentation import TASK, register_pipeline
from modeling_m2f_video.processing.video_io import write_video
from modeling_m2f_video.ytvis.rle import decode_rle


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    return save_tiny_model(tmp_path_factory.mktemp("tiny_model"))


@pytest.fixture(scope="module")
def segmenter(model_dir):
    register_pipeline()
    return pipeline(TASK, model=str(model_dir), device="cpu")


@pytest.fixture(scope="module")
def frames():
    return synthetic_frames(6)


def assert_same_instances(first: list[dict], second: list[dict]) -> None:
    assert [i["label"] for i in first] == [i["label"] for i in second]
    np.testing.assert_allclose([i["score"] for i in first], [i["score"] for i in second], rtol=1e-5)
    for a, b in zip(first, second):
        assert len(a["masks"]) == len(b["masks"])
        assert all(np.array_equal(x, y) for x, y in zip(a["masks"], b["masks"]))


def test_task_is_registered_with_transformers(segmenter):
    assert TASK in PIPELINE_REGISTRY.get_supported_tasks()
    register_pipeline()  # a second call changes nothing
    assert PIPELINE_REGISTRY.supported_tasks[TASK]["impl"] is type(segmenter)


def test_output_has_one_mask_per_frame_sorted_by_score(segmenter, frames):
    instances = segmenter(frames, top_k=4)
    assert len(instances) == 4
    scores = [instance["score"] for instance in instances]
    assert scores == sorted(scores, reverse=True)
    for instance in instances:
        assert set(instance) == {"score", "label", "label_id", "masks"}
        assert instance["label"] == segmenter.model.config.id2label[instance["label_id"]]
        assert len(instance["masks"]) == len(frames)
        assert all(mask.dtype == bool and mask.shape == (HEIGHT, WIDTH) for mask in instance["masks"])


def test_masks_are_computed_when_read(segmenter, frames):
    """Output masks hold only low-resolution logits; reading a frame by index, slice or iteration agrees."""
    for mode in ("whole", "clip"):
        instances = segmenter(frames, top_k=3, mode=mode, clip_length=4, clip_overlap=2)
        masks = instances[0]["masks"]
        assert isinstance(masks, FrameMasks) and "computed on access" in repr(masks)
        dense = np.stack(masks)  # iteration, as np.stack reads it
        assert dense.shape == (len(frames), HEIGHT, WIDTH) and dense.any()
        assert all(np.array_equal(masks[index], dense[index]) for index in range(len(frames)))
        np.testing.assert_array_equal(masks[-1], dense[-1])
        np.testing.assert_array_equal(np.stack(masks[1:5:2]), dense[1:5:2])
        with pytest.raises(IndexError):
            masks[len(frames)]


def test_threshold_drops_low_scores(segmenter, frames):
    everything = segmenter(frames, top_k=6)
    cut = (everything[2]["score"] + everything[3]["score"]) / 2
    assert len(segmenter(frames, top_k=6, threshold=cut)) == 3


def test_array_pil_list_and_frame_folder_give_the_same_result(segmenter, frames, tmp_path):
    for index, frame in enumerate(frames):
        Image.fromarray(frame).save(tmp_path / f"frame_{index}.png")
    from_array = segmenter(frames, top_k=3)
    assert_same_instances(segmenter([Image.fromarray(frame) for frame in frames], top_k=3), from_array)
    assert_same_instances(segmenter(str(tmp_path), top_k=3), from_array)
    assert_same_instances(segmenter(torch.from_numpy(frames), top_k=3), from_array)


@pytest.mark.parametrize("extension", ["mp4", "webm", "avi", "mov"])
def test_video_files(segmenter, frames, tmp_path, extension):
    path = write_video(tmp_path / f"clip.{extension}", frames)
    instances = segmenter(str(path), top_k=2)
    assert len(instances) == 2
    assert all(len(i["masks"]) == len(frames) and i["masks"][0].shape == (HEIGHT, WIDTH) for i in instances)


def test_frame_stride_and_max_frames(segmenter, frames):
    assert_same_instances(segmenter(frames, frame_stride=2, top_k=2), segmenter(frames[::2], top_k=2))
    assert_same_instances(segmenter(frames, max_frames=4, top_k=2), segmenter(frames[:4], top_k=2))


def test_a_batch_equals_each_video_alone(segmenter, frames):
    other = synthetic_frames(4, index=1)
    batch = segmenter([frames, other], top_k=3)
    assert len(batch) == 2
    assert_same_instances(batch[0], segmenter(frames, top_k=3))
    assert_same_instances(batch[1], segmenter(other, top_k=3))
    stacked = segmenter(np.stack([frames, frames]), top_k=3)  # a 5-D array is a batch too
    assert_same_instances(stacked[1], batch[0])


def test_rle_decodes_to_the_bool_masks(segmenter, frames):
    as_arrays = segmenter(frames, top_k=3)
    as_rle = segmenter(frames, top_k=3, return_rle=True)
    for arrays, rles in zip(as_arrays, as_rle):
        assert all(isinstance(rle["counts"], str) and rle["size"] == [HEIGHT, WIDTH] for rle in rles["masks"])
        assert all(np.array_equal(decode_rle(rle), mask) for rle, mask in zip(rles["masks"], arrays["masks"]))


def test_long_videos_switch_to_clip_mode(segmenter):
    video = synthetic_frames(12)
    assert choose_mode("auto", len(video), long_video_threshold=8, clip_length=6) == "clip"
    assert choose_mode("auto", len(video)) == "whole"
    assert choose_mode("clip", len(video)) == "clip"
    instances = segmenter(video, long_video_threshold=8, clip_length=6, clip_overlap=2, top_k=3, return_rle=True)
    assert len(instances) == 3 and all(len(i["masks"]) == 12 for i in instances)


def test_frame_chunk_size_changes_nothing_but_memory(segmenter, frames):
    chunked = segmenter(frames, top_k=3, frame_chunk_size=2)
    assert segmenter.model.config.frame_chunk_size is None  # a call argument, never written into the config
    plain = segmenter(frames, top_k=3)
    np.testing.assert_allclose([i["score"] for i in chunked], [i["score"] for i in plain], rtol=1e-4)
    agreement = np.mean([np.mean(np.equal(a["masks"], b["masks"])) for a, b in zip(chunked, plain)])
    assert agreement > 0.999


def test_dtype_option(model_dir, frames):
    half = pipeline(TASK, model=str(model_dir), device="cpu", dtype=torch.bfloat16)
    assert half.model.dtype == torch.bfloat16
    instances = half(frames, top_k=2)
    assert len(instances) == 2 and all(0 <= i["score"] <= 1 for i in instances)


# ----------------------------------------------------------------------------------------------- bad input


def test_not_a_video_file(segmenter, tmp_path):
    path = tmp_path / "notes.mp4"
    path.write_text("this is not a video")
    with pytest.raises(ValueError, match="notes.mp4.*not a readable video"):
        segmenter(str(path))


def test_truncated_video_file(segmenter, frames, tmp_path):
    for extension in ("mp4", "avi", "webm"):
        data = write_video(tmp_path / f"full.{extension}", frames).read_bytes()
        cut = tmp_path / f"cut.{extension}"
        cut.write_bytes(data[: len(data) // 2])
        with pytest.raises(ValueError, match=f"cut.{extension}"):
            segmenter(str(cut))


def test_zero_frames(segmenter, tmp_path):
    with pytest.raises(ValueError, match="zero frames"):
        segmenter(np.zeros((0, HEIGHT, WIDTH, 3), dtype=np.uint8))
    empty = tmp_path / "empty_folder"
    empty.mkdir()
    with pytest.raises(ValueError, match="empty_folder.*no frame images"):
        segmenter(str(empty))


def test_frames_of_different_sizes(segmenter, frames, tmp_path):
    with pytest.raises(ValueError, match="frame 1 has size"):
        segmenter([Image.fromarray(frames[0]), Image.fromarray(frames[1][:-8])])
    for index, frame in enumerate(frames[:3]):
        Image.fromarray(frame if index != 2 else frame[:-8]).save(tmp_path / f"{index}.png")
    with pytest.raises(ValueError, match="2.png.*differs from the first frame"):
        segmenter(str(tmp_path))


def test_missing_path(segmenter, tmp_path):
    with pytest.raises(ValueError, match="nowhere.mp4"):
        segmenter(str(tmp_path / "nowhere.mp4"))


def test_model_folder_without_processor_config(tmp_path):
    folder = save_tiny_model(tmp_path / "no_processor", with_processor=False)
    with pytest.raises(ValueError, match="no_processor.*no video processor config"):
        pipeline(TASK, model=str(folder), device="cpu")


@pytest.mark.parametrize(
    ("option", "message"),
    [
        ({"top_k": -1}, "top_k must be an integer >= 0"),
        ({"threshold": float("nan")}, "threshold must be a finite number"),
        ({"clip_length": 0}, "clip_length must be an integer >= 1"),
        ({"clip_overlap": 4, "clip_length": 4}, r"clip_overlap must be in \[0, 4\)"),
        ({"frame_chunk_size": 0}, "frame_chunk_size must be None or >= 1"),
        ({"long_video_threshold": -2}, "long_video_threshold must be an integer >= 0"),
    ],
)
def test_bad_option_values_are_refused_by_name(segmenter, frames, option, message):
    with pytest.raises(ValueError, match=message):
        segmenter(frames, **option)


def test_three_pixel_high_frames_are_read_channels_last(segmenter):
    """The pipeline knows its frames are (H, W, 3): no layout guess, even when H is 3."""
    frames = np.random.default_rng(0).integers(0, 256, (2, 3, 40, 3), dtype=np.uint8)
    instances = segmenter(frames, top_k=2)
    assert all(mask.shape == (3, 40) for instance in instances for mask in instance["masks"])
