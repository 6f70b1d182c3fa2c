"""Tests of `Mask2FormerVideoProcessor`: pre-processing, post-processing, input kinds, bad input, save/load."""

from pathlib import Path
from types import SimpleNamespace

import av
import numpy as np
import PIL.Image
import pytest
import torch
import torch.nn.functional as F
from transformers import AutoVideoProcessor

from modeling_m2f_video.configuration import Mask2FormerVideoConfig
from modeling_m2f_video.processing.video_processing_m2f_video import (
    Mask2FormerVideoProcessor,
    get_resize_output_size,
)

FIXTURE = Path(__file__).parent / "fixtures/official/r50_slim"
OFFICIAL_MEAN = np.array([123.675, 116.28, 103.53], dtype=np.float32)
OFFICIAL_STD = np.array([58.395, 57.12, 57.375], dtype=np.float32)


def random_video(num_frames: int, height: int, width: int, seed: int = 0) -> np.ndarray:
    """(T, H, W, 3) uint8 noise."""
    return np.random.default_rng(seed).integers(0, 256, (num_frames, height, width, 3), dtype=np.uint8)


def smooth_video(num_frames: int, height: int, width: int) -> np.ndarray:
    """(T, H, W, 3) uint8 gradients: survive lossy video encoding well."""
    y, x = np.mgrid[0:height, 0:width]
    frames = [np.stack([x * 255 // width, y * 255 // height, np.full_like(x, 40 * t)], -1) for t in range(num_frames)]
    return np.stack(frames).astype(np.uint8)


def write_mp4(path: Path, video: np.ndarray) -> None:
    """Encode (T, H, W, 3) uint8 frames as an mp4 file with PyAV."""
    codec = "libx264" if "libx264" in av.codecs_available else "mpeg4"
    with av.open(str(path), "w") as container:
        stream = container.add_stream(codec, rate=5)
        stream.height, stream.width = video.shape[1:3]
        stream.pix_fmt = "yuv420p"
        for frame in video:
            container.mux(stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")))
        container.mux(stream.encode())


def decode_with_pyav(path: Path) -> np.ndarray:
    """All frames of a file as (T, H, W, 3) uint8, decoded directly with PyAV."""
    with av.open(str(path)) as container:
        return np.stack([frame.to_ndarray(format="rgb24") for frame in container.decode(video=0)])


def reference_normalise_and_pad(video: np.ndarray, padded_size: tuple[int, int]) -> np.ndarray:
    """The official recipe in numpy: (x - mean) / std in float32 on 0..255 values, zero padding at bottom/right."""
    normalised = (video.astype(np.float32) - OFFICIAL_MEAN) / OFFICIAL_STD  # (T, H, W, 3)
    padded = np.zeros((video.shape[0], *padded_size, 3), dtype=np.float32)
    padded[:, : video.shape[1], : video.shape[2]] = normalised
    return padded.transpose(0, 3, 1, 2)  # (T, 3, Hp, Wp)


def reference_post_process(class_logits, mask_logits, target_size, resized_size, top_k):
    """Official `inference_video` for one video, written plainly: upsample every query, then select."""
    num_classes = class_logits.shape[-1] - 1
    padded_size = (4 * mask_logits.shape[-2], 4 * mask_logits.shape[-1])
    all_masks = F.interpolate(mask_logits, size=padded_size, mode="bilinear", align_corners=False)  # (Q, T, Hp, Wp)
    scores = class_logits.softmax(-1)[:, :-1].flatten()
    top_scores, top_indices = scores.topk(top_k, sorted=False)
    queries = top_indices // num_classes
    selected = all_masks[queries][:, :, : resized_size[0], : resized_size[1]]
    selected = F.interpolate(selected, size=target_size, mode="bilinear", align_corners=False)
    return top_scores, top_indices % num_classes, queries, selected


def random_outputs(batch_size=2, num_queries=12, num_classes=7, num_frames=3, mask_size=(6, 8), seed=0):
    generator = torch.Generator().manual_seed(seed)
    return SimpleNamespace(
        class_queries_logits=torch.randn(batch_size, num_queries, num_classes + 1, generator=generator) * 3,
        masks_queries_logits=torch.randn(batch_size, num_queries, num_frames, *mask_size, generator=generator) * 4,
    )


# ---------------------------------------------------------------------------------------------------------------
# Pre-processing
# ---------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("size", "expected"),
    [
        ((96, 128), (360, 480)),
        ((720, 1280), (360, 640)),
        ((1280, 720), (640, 360)),
        ((480, 854), (360, 641)),  # 640.5 rounds up, as int(x + 0.5) does
        ((100, 1000), (133, 1333)),  # longest side capped: 3600 -> 1333
        ((360, 360), (360, 360)),
    ],
)
def test_resize_output_size(size, expected):
    assert get_resize_output_size(*size, shortest_edge=360, longest_edge=1333) == expected
    processed = Mask2FormerVideoProcessor()(random_video(1, *size))
    assert tuple(processed["resized_sizes"][0].tolist()) == expected
    assert tuple(processed["original_sizes"][0].tolist()) == size
    padded = tuple(-(-side // 32) * 32 for side in expected)
    assert tuple(processed["pixel_values_videos"].shape) == (1, 1, 3, *padded)


def test_normalise_and_pad_match_numpy_reference():
    video = random_video(2, 50, 70)
    processed = Mask2FormerVideoProcessor(do_resize=False)(video)
    pixel_values = processed["pixel_values_videos"]
    assert pixel_values.dtype == torch.float32 and pixel_values.shape == (1, 2, 3, 64, 96)
    expected = reference_normalise_and_pad(video, (64, 96))
    assert np.abs(pixel_values[0].numpy() - expected).max() <= 1e-6
    expected_mask = np.zeros((64, 96), dtype=np.int64)
    expected_mask[:50, :70] = 1
    assert processed["pixel_mask"].dtype == torch.int64
    np.testing.assert_array_equal(processed["pixel_mask"][0].numpy(), expected_mask)
    assert processed["resized_sizes"].tolist() == [[50, 70]] and processed["original_sizes"].tolist() == [[50, 70]]


def test_mean_std_from_detectron2_constants_are_exact():
    """Statistics given as the official 0..255 constants divided by 255 normalise exactly like the defaults."""
    video = random_video(2, 32, 32)
    from_constants = Mask2FormerVideoProcessor(
        do_resize=False,
        image_mean=[value / 255 for value in (123.675, 116.28, 103.53)],
        image_std=[value / 255 for value in (58.395, 57.12, 57.375)],
    )
    expected = reference_normalise_and_pad(video, (32, 32))
    assert np.array_equal(from_constants(video)["pixel_values_videos"][0].numpy(), expected)
    assert np.array_equal(
        Mask2FormerVideoProcessor(do_resize=False)(video)["pixel_values_videos"][0].numpy(), expected
    )


def test_size_divisibility_is_configurable():
    video = random_video(1, 50, 70)
    assert Mask2FormerVideoProcessor(do_resize=False, size_divisibility=16)(video)["pixel_mask"].shape == (1, 64, 80)
    assert Mask2FormerVideoProcessor(do_resize=False, size_divisibility=1)(video)["pixel_mask"].shape == (1, 50, 70)
    assert Mask2FormerVideoProcessor(do_resize=False, do_pad=False)(video)["pixel_mask"].shape == (1, 50, 70)


def test_official_fixture_input():
    from safetensors.torch import load_file

    frames = np.load(FIXTURE / "input.npz")["frames"]  # (3, 96, 128, 3) uint8
    expected = load_file(FIXTURE / "outputs.safetensors")["images"]  # (3, 3, 96, 128)
    processed = Mask2FormerVideoProcessor(do_resize=False)(frames)
    assert (processed["pixel_values_videos"][0] - expected).abs().max() <= 1e-6
    assert processed["pixel_mask"].all()


def test_resize_matches_pil_bilinear():
    """detectron2 resizes uint8 frames with PIL's bilinear filter; torchvision's antialiased bilinear agrees to 1."""
    video = smooth_video(2, 90, 120) // 2 + random_video(2, 90, 120) // 2
    processor = Mask2FormerVideoProcessor(do_rescale=False, do_normalize=False, do_pad=False)
    resized = processor(video)["pixel_values_videos"][0].permute(0, 2, 3, 1).numpy()  # (T, 360, 480, 3)
    expected = np.stack([np.asarray(PIL.Image.fromarray(f).resize((480, 360), PIL.Image.BILINEAR)) for f in video])
    difference = np.abs(resized - expected.astype(np.float32))
    assert difference.max() <= 1
    assert (difference > 0).mean() < 0.01


def test_all_input_kinds_agree(tmp_path):
    video = smooth_video(3, 40, 56)
    processor = Mask2FormerVideoProcessor(size={"shortest_edge": 64, "longest_edge": 1333})
    expected = processor(video)["pixel_values_videos"]
    assert expected.shape == (1, 3, 3, 64, 96)
    inputs = {
        "numpy (T, H, W, 3)": video,
        "torch (T, 3, H, W)": torch.from_numpy(video).permute(0, 3, 1, 2),
        "torch (T, H, W, 3)": torch.from_numpy(video),
        "list of PIL images": [PIL.Image.fromarray(frame) for frame in video],
        "list of numpy frames": list(video),
        "float 0..255": video.astype(np.float32),
    }
    for name, video_input in inputs.items():
        result = processor(video_input)["pixel_values_videos"]
        # Float input skips the uint8 rounding after the resize, hence a small tolerance for it only.
        tolerance = 0.05 if name == "float 0..255" else 0.0
        assert (result - expected).abs().max() <= tolerance, name

    path = tmp_path / "clip.mp4"
    write_mp4(path, video)
    decoded = decode_with_pyav(path)
    assert decoded.shape == video.shape
    expected_from_file = processor(decoded)["pixel_values_videos"]
    for path_input in (str(path), path):
        processed = processor(path_input)
        assert torch.equal(processed["pixel_values_videos"], expected_from_file)
        assert processed["original_sizes"].tolist() == [[40, 56]]


def test_input_data_format_resolves_ambiguous_layout():
    """A (T, H, W, 3) video with H = 3 looks channels-first; `input_data_format` says otherwise."""
    video = random_video(2, 3, 40)
    processor = Mask2FormerVideoProcessor(do_resize=False, size_divisibility=1)
    processed = processor(video, input_data_format="channels_last")
    assert processed["original_sizes"].tolist() == [[3, 40]]
    assert (
        np.abs(processed["pixel_values_videos"][0].numpy() - reference_normalise_and_pad(video, (3, 40))).max() <= 1e-6
    )
    with pytest.raises(ValueError, match="3 channels"):
        processor(random_video(2, 5, 40), input_data_format="channels_first")


def test_frame_sampling_and_metadata(tmp_path):
    video = smooth_video(6, 32, 32)
    processor = Mask2FormerVideoProcessor(do_resize=False)
    processed = processor(video, do_sample_frames=True, num_frames=3, return_metadata=True)
    assert processed["pixel_values_videos"].shape[1] == 3
    assert list(processed["video_metadata"][0].frames_indices) == [0, 2, 4]
    expected = processor(video[[0, 2, 4]])["pixel_values_videos"]
    assert torch.equal(processed["pixel_values_videos"], expected)

    path = tmp_path / "clip.mp4"
    write_mp4(path, video)
    from_file = processor(str(path), do_sample_frames=True, num_frames=2, return_metadata=True)
    assert from_file["pixel_values_videos"].shape[1] == 2
    assert from_file["video_metadata"][0].fps == 5.0


def test_batch_padding_to_common_size():
    small, large = random_video(2, 40, 50, seed=1), random_video(2, 70, 33, seed=2)
    processor = Mask2FormerVideoProcessor(do_resize=False)
    batch = processor([small, large])
    assert batch["pixel_values_videos"].shape == (2, 2, 3, 96, 64)
    assert batch["original_sizes"].tolist() == [[40, 50], [70, 33]]
    assert batch["resized_sizes"].tolist() == [[40, 50], [70, 33]]
    for index, video in enumerate((small, large)):
        expected = reference_normalise_and_pad(video, (96, 64))
        assert np.abs(batch["pixel_values_videos"][index].numpy() - expected).max() <= 1e-6
        height, width = video.shape[1:3]
        assert batch["pixel_mask"][index, :height, :width].all() and batch["pixel_mask"][index].sum() == height * width

    # A batch as a 5-D array equals the same videos as a list; each video alone equals its slice of the batch.
    pair = np.stack([small, random_video(2, 40, 50, seed=3)])
    as_array = processor(pair)["pixel_values_videos"]
    assert torch.equal(as_array, processor(list(pair))["pixel_values_videos"])
    assert torch.equal(as_array[1:], processor(pair[1])["pixel_values_videos"])


def test_return_numpy_tensors():
    processed = Mask2FormerVideoProcessor(do_resize=False)(random_video(1, 32, 32), return_tensors="np")
    assert isinstance(processed["pixel_values_videos"], np.ndarray)
    assert processed["pixel_values_videos"].dtype == np.float32


@pytest.mark.parametrize(
    ("video", "message"),
    [
        ([], "empty list"),
        ([[]], "empty list of frames"),
        (np.zeros((0, 32, 32, 3), dtype=np.uint8), "zero frames"),
        ([random_video(1, 32, 32)[0], random_video(1, 32, 48)[0]], "same size"),
        ([PIL.Image.new("RGB", (32, 32)), PIL.Image.new("RGB", (48, 32))], "same size"),
        (np.full((2, 32, 32, 3), np.nan, dtype=np.float32), "non-finite"),
        (torch.tensor([[[[0.0, 1.0, float("inf")]]]]).expand(1, 4, 4, 3), "non-finite"),
        (np.zeros((2, 32, 32, 4), dtype=np.uint8), "3 channels"),
        (np.zeros((2, 32, 32), dtype=np.uint8), "4 dimensions"),
        (np.zeros((32, 32, 3), dtype=np.uint8)[None, None, None], "dimensions"),
        ([random_video(2, 32, 32), random_video(3, 32, 32)], "same number of frames"),
        (12, "Unsupported video input"),
    ],
)
def test_bad_input_raises(video, message):
    with pytest.raises(ValueError, match=message):
        Mask2FormerVideoProcessor()(video)


def test_unreadable_files_name_the_file(tmp_path):
    corrupt = tmp_path / "corrupt.mp4"
    corrupt.write_bytes(b"not a video" * 100)
    with pytest.raises(ValueError, match="corrupt.mp4"):
        Mask2FormerVideoProcessor()(str(corrupt))
    with pytest.raises(ValueError, match="missing.mp4"):
        Mask2FormerVideoProcessor()(str(tmp_path / "missing.mp4"))


def test_different_sizes_without_padding_raise():
    with pytest.raises(ValueError, match="do_pad"):
        Mask2FormerVideoProcessor(do_resize=False, do_pad=False)([random_video(1, 32, 32), random_video(1, 32, 40)])


# ---------------------------------------------------------------------------------------------------------------
# Post-processing
# ---------------------------------------------------------------------------------------------------------------


def test_post_processing_matches_reference():
    outputs = random_outputs()
    target_sizes = [(30, 41), (17, 25)]
    resized_sizes = [(20, 30), (24, 32)]
    results = Mask2FormerVideoProcessor().post_process_video_instance_segmentation(
        outputs, target_sizes=torch.tensor(target_sizes), top_k=5, resized_sizes=resized_sizes, return_mask_logits=True
    )
    assert len(results) == 2
    for index, result in enumerate(results):
        scores, labels, queries, logits = reference_post_process(
            outputs.class_queries_logits[index],
            outputs.masks_queries_logits[index],
            target_sizes[index],
            resized_sizes[index],
            top_k=5,
        )
        order = scores.argsort(descending=True)
        assert torch.equal(result["scores"], scores[order])
        assert torch.equal(result["labels"], labels[order]) and result["labels"].dtype == torch.int64
        assert torch.equal(result["query_indices"], queries[order])
        assert torch.equal(result["mask_logits"], logits[order])
        assert torch.equal(result["masks"], logits[order] > 0) and result["masks"].dtype == torch.bool
        assert result["masks"].shape == (5, 3, *target_sizes[index])
        assert (result["scores"][:-1] >= result["scores"][1:]).all()


def test_post_processing_without_resized_sizes_assumes_no_padding():
    outputs = random_outputs(batch_size=1)
    result = Mask2FormerVideoProcessor().post_process_video_instance_segmentation(outputs, [(24, 32)], top_k=4)[0]
    *_, logits = reference_post_process(
        outputs.class_queries_logits[0], outputs.masks_queries_logits[0], (24, 32), (24, 32), top_k=4
    )
    assert torch.equal(result["masks"].sum((1, 2, 3)).sort().values, (logits > 0).sum((1, 2, 3)).sort().values)


def test_post_processing_threshold():
    outputs = random_outputs(batch_size=1)
    processor = Mask2FormerVideoProcessor()
    everything = processor.post_process_video_instance_segmentation(outputs, [(24, 32)], top_k=10)[0]
    threshold = float(everything["scores"][3])
    kept = processor.post_process_video_instance_segmentation(outputs, [(24, 32)], top_k=10, threshold=threshold)[0]
    assert torch.equal(kept["scores"], everything["scores"][:3])
    assert torch.equal(kept["masks"], everything["masks"][:3])
    nothing = processor.post_process_video_instance_segmentation(outputs, [(24, 32)], threshold=1.0)[0]
    assert nothing["masks"].shape == (0, 3, 24, 32) and nothing["labels"].shape == (0,)


def test_post_processing_never_upsamples_all_queries(monkeypatch):
    outputs = random_outputs(batch_size=1, num_queries=50)
    recorded = []
    interpolate = F.interpolate

    def recording_interpolate(input, *args, **kwargs):
        recorded.append(tuple(input.shape))
        return interpolate(input, *args, **kwargs)

    monkeypatch.setattr(torch.nn.functional, "interpolate", recording_interpolate)
    Mask2FormerVideoProcessor().post_process_video_instance_segmentation(outputs, [(24, 32)], top_k=10)
    assert recorded, "interpolate was not called"
    assert all(shape[0] == 1 for shape in recorded), recorded
    assert len(recorded) == 2 * 10  # one upsampling to the padded size and one resize per kept query


def test_post_processing_matches_official_fixture():
    from safetensors.torch import load_file

    official = load_file(FIXTURE / "outputs.safetensors")
    outputs = SimpleNamespace(
        class_queries_logits=official["pred_logits"], masks_queries_logits=official["pred_masks"]
    )
    result = Mask2FormerVideoProcessor().post_process_video_instance_segmentation(
        outputs, target_sizes=[(96, 128)], top_k=10, resized_sizes=[(96, 128)], return_mask_logits=True
    )[0]
    num_classes = official["pred_logits"].shape[-1] - 1
    ours = (result["query_indices"] * num_classes + result["labels"]).argsort()
    theirs = official["inference.topk_indices"].argsort()
    assert torch.equal(result["query_indices"][ours], official["inference.query_indices"][theirs])
    assert torch.equal(result["labels"][ours], official["inference.labels"][theirs])
    assert (result["scores"][ours] - official["inference.scores"][theirs]).abs().max() <= 1e-5
    official_logits = official["inference.mask_logits"][theirs]
    differ = result["masks"][ours] != official["inference.masks"][theirs]
    assert not differ[official_logits.abs() >= 1e-3].any()
    assert (result["mask_logits"][ours] - official_logits).abs().max() <= 1e-4


# ---------------------------------------------------------------------------------------------------------------
# Construction, save / load
# ---------------------------------------------------------------------------------------------------------------


def test_from_model_config():
    swin = Mask2FormerVideoProcessor.from_model_config(Mask2FormerVideoConfig.from_preset("swin-tiny-ytvis2019"))
    assert swin.size.shortest_edge == 480 and swin.size.longest_edge == 1333
    resnet = Mask2FormerVideoProcessor.from_model_config(Mask2FormerVideoConfig.from_preset("r50-ytvis2021"))
    assert resnet.size.shortest_edge == 360
    assert (
        Mask2FormerVideoProcessor.from_model_config(Mask2FormerVideoConfig(), size_divisibility=64).size_divisibility
        == 64
    )


def test_save_and_load_round_trip(tmp_path):
    processor = Mask2FormerVideoProcessor(size={"shortest_edge": 480, "longest_edge": 1000}, size_divisibility=64)
    processor.save_pretrained(tmp_path)
    loaded = Mask2FormerVideoProcessor.from_pretrained(tmp_path)
    assert loaded.to_dict() == processor.to_dict()
    assert loaded.size.shortest_edge == 480 and loaded.size_divisibility == 64

    AutoVideoProcessor.register(Mask2FormerVideoConfig, Mask2FormerVideoProcessor, exist_ok=True)
    auto_loaded = AutoVideoProcessor.from_pretrained(tmp_path)
    assert type(auto_loaded) is Mask2FormerVideoProcessor
    assert auto_loaded.to_dict() == processor.to_dict()
    video = random_video(2, 40, 60)
    assert torch.equal(auto_loaded(video)["pixel_values_videos"], processor(video)["pixel_values_videos"])
