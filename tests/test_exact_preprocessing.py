"""The processor reproduces the official test-time input exactly, on frames of any size, and refuses what it cannot
read without guessing.

The official mapper (detectron2's `ResizeShortestEdge` at test time) resizes each uint8 frame with Pillow's
bilinear `Image.resize`, normalises with the ImageNet constants on the 0..255 scale and pads with zeros to a
multiple of 32. The references below are built with Pillow and numpy directly, not with the processor.
"""

import numpy as np
import PIL.Image
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from inference_helpers import HEIGHT, save_tiny_model, synthetic_frames
from transformers import pipeline

from modeling_m2f_video import Mask2FormerVideoForVideoInstanceSegmentation, Mask2FormerVideoProcessor, register
from modeling_m2f_video.pipeline_video_instance_segmentation import TASK
from modeling_m2f_video.processing.video_processing_m2f_video import get_resize_output_size

OFFICIAL_MEAN = np.array([123.675, 116.28, 103.53], dtype=np.float32)
OFFICIAL_STD = np.array([58.395, 57.12, 57.375], dtype=np.float32)


def pillow_reference(frames: np.ndarray, height: int, width: int) -> np.ndarray:
    """(T, H, W, 3) uint8 frames resized as detectron2's `ResizeTransform` resizes uint8 images."""
    return np.stack(
        [np.asarray(PIL.Image.fromarray(frame).resize((width, height), PIL.Image.BILINEAR)) for frame in frames]
    )


def official_pixel_values(frames: np.ndarray, height: int, width: int, divisibility: int = 32) -> np.ndarray:
    """(T, 3, Hp, Wp) float32: Pillow-resized, normalised with the official constants, zero-padded."""
    normalised = (pillow_reference(frames, height, width).astype(np.float32) - OFFICIAL_MEAN) / OFFICIAL_STD
    padded_height, padded_width = -(-height // divisibility) * divisibility, -(-width // divisibility) * divisibility
    padded = np.zeros((len(frames), padded_height, padded_width, 3), dtype=np.float32)
    padded[:, :height, :width] = normalised
    return padded.transpose(0, 3, 1, 2)


def resize_cases() -> list[tuple[int, int, int, int]]:
    """(H, W, shortest side, longest side) combinations: down- and upscaling, odd sizes, portrait, square, capped."""
    hand_picked = [
        (405, 720, 360, 1333),  # the case
        (720, 1280, 360, 1333),
        (1080, 1920, 480, 1333),
        (480, 640, 360, 1333),
        (100, 150, 360, 1333),  # upscaling
        (37, 53, 64, 1333),
        (360, 640, 360, 1333),  # already model-side size
        (500, 500, 360, 1333),  # square
        (720, 405, 360, 1333),  # portrait
        (200, 2000, 360, 1333),  # capped by the longest side
        (2000, 120, 480, 1333),
        (301, 3001, 480, 1000),
        (1, 7, 16, 64),  # one pixel high
        (3, 5, 32, 100),  # three pixels high: also a layout trap
        (333, 999, 321, 777),
    ]
    rng = np.random.default_rng(13)
    drawn = []
    while len(drawn) < 45:
        height, width = (int(side) for side in rng.integers(1, 1200, size=2))
        shortest = int(rng.choice([64, 240, 360, 480, 511]))
        longest = int(rng.choice([shortest, 640, 999, 1333]))
        drawn.append((height, width, shortest, longest))
    return hand_picked + drawn


RESIZE_CASES = resize_cases()


def test_resize_cases_cover_the_kinds():
    assert len(RESIZE_CASES) >= 50
    sizes = [(h, w, get_resize_output_size(h, w, s, m)) for h, w, s, m in RESIZE_CASES]
    assert any(new[0] > h for h, w, new in sizes) and any(new[0] < h for h, w, new in sizes)  # up and down
    assert any(max(new) == m and min(new) < s for (h, w, s, m), (_, _, new) in zip(RESIZE_CASES, sizes))  # capped


@pytest.mark.parametrize(("height", "width", "shortest", "longest"), RESIZE_CASES)
def test_default_resize_is_pillow_bit_for_bit(height, width, shortest, longest):
    frames = np.random.default_rng(height * 7919 + width).integers(0, 256, (2, height, width, 3), dtype=np.uint8)
    processor = Mask2FormerVideoProcessor(
        size={"shortest_edge": shortest, "longest_edge": longest}, do_rescale=False, do_normalize=False, do_pad=False
    )
    inputs = processor(frames, input_data_format="channels_last", return_tensors="pt")
    new_height, new_width = inputs["resized_sizes"][0].tolist()
    expected = pillow_reference(frames, new_height, new_width).transpose(0, 3, 1, 2)
    np.testing.assert_array_equal(inputs["pixel_values_videos"][0].numpy(), expected.astype(np.float32))


def test_resize_sizes_follow_detectron2_arithmetic():
    """The shortest side is exact, the other rounded with int(x + 0.5); the cap scales both."""
    assert get_resize_output_size(405, 720, 360, 1333) == (360, 640)
    assert get_resize_output_size(720, 405, 360, 1333) == (640, 360)
    assert get_resize_output_size(200, 2000, 360, 1333) == (133, 1333)  # 360 x 3600 capped: 133.3 x 1333
    assert get_resize_output_size(3, 5, 32, 100) == (32, 53)  # 53.33 rounds down
    assert get_resize_output_size(2, 3, 5, 100) == (5, 8)  # 7.5 rounds up
    assert get_resize_output_size(500, 500, 360, 1333) == (360, 360)


def test_processor_output_is_the_official_model_input():
    """Original-size frames in, exactly what the official mapper + `ImageList` would feed the backbone out."""
    frames = np.random.default_rng(0).integers(0, 256, (3, 405, 720, 3), dtype=np.uint8)
    inputs = Mask2FormerVideoProcessor()(frames, return_tensors="pt")
    assert inputs["resized_sizes"].tolist() == [[360, 640]]
    np.testing.assert_array_equal(inputs["pixel_values_videos"][0].numpy(), official_pixel_values(frames, 360, 640))
    assert inputs["pixel_mask"][0, :360, :640].all() and not inputs["pixel_mask"][0, 360:].any()


def test_torch_backend_is_close_to_pillow():
    """The explicit fast path (torchvision's antialiased bilinear) is close to Pillow but not equal (README)."""
    frames = np.random.default_rng(1).integers(0, 256, (2, 405, 720, 3), dtype=np.uint8)
    processor = Mask2FormerVideoProcessor(do_rescale=False, do_normalize=False, do_pad=False)
    fast = processor(frames, resize_backend="torch", return_tensors="pt")["pixel_values_videos"][0]
    exact = processor(frames, return_tensors="pt")["pixel_values_videos"][0]
    difference = (fast - exact).abs()
    assert 0 < difference.max() <= 2  # really another implementation, and a close one
    assert (difference > 0).float().mean() < 0.05 and (difference > 1).float().mean() < 1e-4
    with pytest.raises(ValueError, match="resize_backend"):
        processor(frames, resize_backend="cv2")


@pytest.fixture(scope="module")
def tiny_model_dir(tmp_path_factory):
    return save_tiny_model(tmp_path_factory.mktemp("exact") / "model")


def test_pipeline_reproduces_the_official_path_end_to_end(tiny_model_dir):
    """Odd-size frames through the pipeline give the instances of the model run on the official input."""
    frames = synthetic_frames(4, height=101, width=157)  # resized to 64 x 100 (shortest side 64), padded to 64 x 128
    model = Mask2FormerVideoForVideoInstanceSegmentation.from_pretrained(tiny_model_dir).eval()
    height, width = get_resize_output_size(101, 157, HEIGHT, 1333)
    pixel_values = torch.from_numpy(official_pixel_values(frames, height, width))[None]
    pixel_mask = torch.zeros(pixel_values.shape[:1] + pixel_values.shape[-2:], dtype=torch.int64)
    pixel_mask[:, :height, :width] = 1
    with torch.no_grad():
        outputs = model(pixel_values_videos=pixel_values, pixel_mask=pixel_mask)
    expected = Mask2FormerVideoProcessor().post_process_video_instance_segmentation(
        outputs, target_sizes=[(101, 157)], resized_sizes=[(height, width)], top_k=model.config.test_top_k
    )[0]

    register()
    instances = pipeline(TASK, model=str(tiny_model_dir), device="cpu")(frames)
    assert [instance["label_id"] for instance in instances] == expected["labels"].tolist()
    np.testing.assert_allclose([instance["score"] for instance in instances], expected["scores"], rtol=1e-6)
    for instance, masks in zip(instances, expected["masks"]):
        np.testing.assert_array_equal(np.stack(instance["masks"]), masks.numpy())


# --------------------------------------------------------------------------------------------------------------
# Post-processing sizes: the easy call is the exact one
# --------------------------------------------------------------------------------------------------------------


def test_post_processing_takes_the_sizes_from_the_processor_output(tiny_model_dir):
    model = Mask2FormerVideoForVideoInstanceSegmentation.from_pretrained(tiny_model_dir).eval()
    processor = Mask2FormerVideoProcessor.from_pretrained(tiny_model_dir)
    inputs = processor(synthetic_frames(3, height=101, width=157), return_tensors="pt")
    with torch.no_grad():
        outputs = model(pixel_values_videos=inputs["pixel_values_videos"], pixel_mask=inputs["pixel_mask"])
    easy = processor.post_process_video_instance_segmentation(outputs, inputs=inputs)[0]
    explicit = processor.post_process_video_instance_segmentation(
        outputs, target_sizes=inputs["original_sizes"], resized_sizes=inputs["resized_sizes"]
    )[0]
    assert easy["masks"].shape[-2:] == (101, 157)
    assert torch.equal(easy["masks"], explicit["masks"]) and torch.equal(easy["scores"], explicit["scores"])
    with pytest.raises(ValueError, match="differs from the padded size .* no resized_sizes"):
        processor.post_process_video_instance_segmentation(outputs, target_sizes=inputs["original_sizes"])
    padded = tuple(inputs["pixel_values_videos"].shape[-2:])  # the padded size itself needs no resized size
    assert (
        processor.post_process_video_instance_segmentation(outputs, target_sizes=[padded])[0]["masks"].shape[-2:]
        == padded
    )


# --------------------------------------------------------------------------------------------------------------
# Layout and value range: never a silent guess
# --------------------------------------------------------------------------------------------------------------


def test_frames_three_pixels_high_need_the_layout():
    frames = np.random.default_rng(2).integers(0, 256, (2, 3, 40, 3), dtype=np.uint8)  # (T, H=3, W=40, 3)
    processor = Mask2FormerVideoProcessor(size={"shortest_edge": 32, "longest_edge": 1333})
    with pytest.raises(ValueError, match="ambiguous.*input_data_format"):
        processor(frames)
    inputs = processor(frames, input_data_format="channels_last", return_tensors="pt")
    assert inputs["original_sizes"].tolist() == [[3, 40]]
    as_pil = processor([PIL.Image.fromarray(frame) for frame in frames], return_tensors="pt")  # PIL: layout known
    assert torch.equal(as_pil["pixel_values_videos"], inputs["pixel_values_videos"])


def test_unambiguous_layouts_are_read_either_way():
    frames = np.random.default_rng(3).integers(0, 256, (2, 30, 40, 3), dtype=np.uint8)
    processor = Mask2FormerVideoProcessor(size={"shortest_edge": 32, "longest_edge": 1333})
    last = processor(frames, return_tensors="pt")["pixel_values_videos"]
    first = processor(torch.from_numpy(frames).permute(0, 3, 1, 2), return_tensors="pt")["pixel_values_videos"]
    assert torch.equal(last, first)


def test_value_ranges():
    rng = np.random.default_rng(4)
    frames = rng.integers(0, 256, (2, 30, 40, 3), dtype=np.uint8)
    processor = Mask2FormerVideoProcessor(size={"shortest_edge": 32, "longest_edge": 1333})
    exact = processor(frames, return_tensors="pt")["pixel_values_videos"]
    # Other integer types in 0..255 take the uint8 path.
    assert torch.equal(processor(frames.astype(np.int64), return_tensors="pt")["pixel_values_videos"], exact)
    # 0..1 floats are refused unless the caller says they are 0..1; then they match the 0..255 reading closely.
    unit = frames.astype(np.float32) / 255
    with pytest.raises(ValueError, match=r"\[0, 1\].*do_rescale=False"):
        processor(unit)
    from_unit = processor(unit, do_rescale=False, return_tensors="pt")["pixel_values_videos"]
    from_float255 = processor(frames.astype(np.float32), return_tensors="pt")["pixel_values_videos"]
    torch.testing.assert_close(from_unit, from_float255, atol=1e-4, rtol=0)
    for bad, message in [
        (frames.astype(bool), "boolean"),
        (frames.astype(np.int64) * 2, "0..255"),
        (frames.astype(np.float32) * 2, "0..255 scale"),
        (frames.astype(np.float32) - 1, "0..255 scale"),
        (np.full(frames.shape, np.nan, dtype=np.float32), "non-finite"),
    ]:
        with pytest.raises(ValueError, match=message):
            processor(bad)


@settings(max_examples=60, deadline=None)
@given(
    video=arrays(
        dtype=st.sampled_from([np.uint8, np.int16, np.int64, np.float32, np.float64, np.bool_]),
        shape=st.tuples(st.integers(1, 2), st.integers(1, 9), st.integers(1, 9), st.integers(1, 4)),
    )
)
def test_any_array_is_processed_or_refused_with_a_value_error(video):
    """Whatever array comes in: a clear ValueError, or an output whose sizes say what was read."""
    processor = Mask2FormerVideoProcessor(size={"shortest_edge": 16, "longest_edge": 64})
    try:
        inputs = processor(video, return_tensors="pt")
    except ValueError:
        return
    height, width = inputs["original_sizes"][0].tolist()
    assert (
        video.shape[-1] == 3
        and video.shape[1] != 3
        and (height, width) == video.shape[1:3]
        or (video.shape[1] == 3 and video.shape[-1] != 3 and (height, width) == video.shape[2:])
    )
    assert torch.isfinite(inputs["pixel_values_videos"]).all()
