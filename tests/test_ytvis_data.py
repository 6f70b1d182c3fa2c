"""The YouTube-VIS reader: index, clip sampling as the official mapper, test-mode videos, collate, bad input."""

import json
import logging

import datasets
import numpy as np
import pytest
import torch
from PIL import Image
from pycocotools import mask as mask_utils

from modeling_m2f_video.processing.synthetic import generate_video, make_synthetic_dataset
from modeling_m2f_video.processing.video_processing_m2f_video import Mask2FormerVideoProcessor
from modeling_m2f_video.processing.ytvis_dataset import (
    YTVISClipDataset,
    YTVISCollator,
    YTVISVideoDataset,
    build_ytvis_index,
    index_categories,
    index_image_root,
    sample_clip_frames,
    sample_clip_transform,
)

SYNTHETIC = {"num_frames": 6, "height": 40, "width": 56, "num_classes": 4, "max_objects": 3}


# ----------------------------------------------------------------------------------------------------------------
# Hand-made data sets
# ----------------------------------------------------------------------------------------------------------------


def _rle(mask: np.ndarray) -> dict:
    """Uncompressed RLE (counts as a list), the form YouTube-VIS 2019/2021 uses."""
    flat = np.asfortranarray(mask).reshape(-1, order="F").astype(np.uint8)
    counts, value, run = [], 0, 0
    for pixel in flat:
        if pixel != value:
            counts.append(run)
            value, run = pixel, 0
        run += 1
    counts.append(run)
    return {"size": list(mask.shape), "counts": counts}


def _write_set(root, videos: list[dict], categories=((3, "cat"), (7, "dog"), (10, "owl"))) -> tuple:
    """Write PNG frames (exact pixels) and an annotation file; returns (json path, image root).

    Each video dict has `frames` (T, H, W, 3) uint8 and `instances`: a list of (category_id, masks (T, H, W) bool,
    iscrowd) where an all-False frame is written as null.
    """
    image_root = root / "JPEGImages"
    content = {"videos": [], "annotations": [], "categories": [{"id": i, "name": n} for i, n in categories]}
    for video_id, video in enumerate(videos, start=1):
        frames = video["frames"]
        (image_root / f"v{video_id}").mkdir(parents=True, exist_ok=True)
        file_names = []
        for t, frame in enumerate(frames):
            file_names.append(f"v{video_id}/{t:05d}.png")
            Image.fromarray(frame).save(image_root / file_names[-1])
        height, width = frames.shape[1:3]
        content["videos"].append(
            {"id": video_id, "height": height, "width": width, "length": len(frames), "file_names": file_names}
        )
        for category_id, masks, iscrowd in video["instances"]:
            content["annotations"].append(
                {
                    "id": len(content["annotations"]) + 1,
                    "video_id": video_id,
                    "category_id": category_id,
                    "iscrowd": iscrowd,
                    "segmentations": [_rle(m) if m.any() else None for m in masks],
                }
            )
    path = root / "instances.json"
    path.write_text(json.dumps(content))
    return path, image_root


def _presence_video() -> dict:
    """Four frames of 16x24; the red channel is 255 exactly on instance A and B's pixels (left-right asymmetric).

    A (category 3) is visible in frame 0 only, B (category 10) in frame 2 only, C (crowd, category 7) everywhere.
    Frames 1 and 3 hold no non-crowd instance.
    """
    masks_a = np.zeros((4, 16, 24), dtype=bool)
    masks_a[0, 2:9, 1:6] = True
    masks_b = np.zeros((4, 16, 24), dtype=bool)
    masks_b[2, 5:14, 15:23] = True
    masks_b[2, 5:8, 10:15] = True
    masks_c = np.zeros((4, 16, 24), dtype=bool)
    masks_c[:, 12:15, 0:4] = True
    frames = np.zeros((4, 16, 24, 3), dtype=np.uint8)
    frames[..., 0] = 255 * (masks_a | masks_b)
    frames[..., 1] = np.arange(24, dtype=np.uint8)[None, None, :] * 10  # a horizontal ramp shows flips
    return {"frames": frames, "instances": [(3, masks_a, 0), (10, masks_b, 0), (7, masks_c, 1)]}


@pytest.fixture
def presence_set(tmp_path):
    return _write_set(tmp_path, [_presence_video()])


@pytest.fixture(scope="module")
def synthetic_set(tmp_path_factory):
    root = tmp_path_factory.mktemp("ytvis_synthetic")
    make_synthetic_dataset(root, num_videos=4, seed=2, valid_fraction=0.25, progress=False, **SYNTHETIC)
    return root


@pytest.fixture(scope="module")
def synthetic_index(synthetic_set):
    return build_ytvis_index(synthetic_set / "train" / "instances.json", synthetic_set / "train" / "JPEGImages")


# ----------------------------------------------------------------------------------------------------------------
# The index
# ----------------------------------------------------------------------------------------------------------------


def test_index_rows_and_save_load_round_trip(synthetic_set, synthetic_index, tmp_path):
    content = json.loads((synthetic_set / "train" / "instances.json").read_text())
    assert len(synthetic_index) == len(content["videos"]) == 3
    row = synthetic_index[0]
    assert row["length"] == len(row["file_names"]) == 6 and (row["height"], row["width"]) == (40, 56)
    assert index_categories(synthetic_index)[0] == {"id": 1, "name": "red_ellipse", "label": 0}
    synthetic_index.save_to_disk(str(tmp_path / "index"))
    loaded = datasets.load_from_disk(str(tmp_path / "index"))
    assert loaded.to_list() == synthetic_index.to_list()
    assert index_categories(loaded) == index_categories(synthetic_index)
    assert index_image_root(loaded) == str((synthetic_set / "train" / "JPEGImages").resolve())


def test_index_maps_categories_and_converts_segmentations(presence_set):
    path, image_root = presence_set
    index = build_ytvis_index(path, image_root)
    assert [c["label"] for c in index_categories(index)] == [0, 1, 2]
    instances = index[0]["instances"]
    assert [(i["category_id"], i["label"], i["iscrowd"]) for i in instances] == [
        (3, 0, False),
        (10, 2, False),
        (7, 1, True),
    ]
    video = _presence_video()
    for instance, (_, masks, _) in zip(instances, video["instances"], strict=True):
        for t, counts in enumerate(instance["segmentations"]):
            if counts is None:
                assert not masks[t].any()
            else:
                decoded = mask_utils.decode({"size": [16, 24], "counts": counts}).astype(bool)
                np.testing.assert_array_equal(decoded, masks[t])


def test_index_accepts_polygons(tmp_path):
    video = _presence_video()
    path, image_root = _write_set(tmp_path, [video])
    content = json.loads(path.read_text())
    square = [[2.0, 2.0, 10.0, 2.0, 10.0, 10.0, 2.0, 10.0]]  # x, y pairs
    content["annotations"][0]["segmentations"] = [square, None, None, None]
    index = build_ytvis_index(content, image_root)
    counts = index[0]["instances"][0]["segmentations"][0]
    decoded = mask_utils.decode({"size": [16, 24], "counts": counts})
    expected = mask_utils.decode(mask_utils.merge(mask_utils.frPyObjects(square, 16, 24)))
    np.testing.assert_array_equal(decoded, expected)


# ----------------------------------------------------------------------------------------------------------------
# Clip sampling
# ----------------------------------------------------------------------------------------------------------------


def test_sample_clip_frames_follows_the_official_rules():
    generator = torch.Generator().manual_seed(0)
    references_seen = set()
    for _ in range(300):
        frames = sample_clip_frames(100, num_frames=5, frame_range=20, generator=generator)
        assert len(frames) == 5 and frames == sorted(frames)
        # Some frame (the reference) has every other frame within 20 of it and distinct from it.
        assert any(all(0 < abs(f - frames[i]) <= 20 for j, f in enumerate(frames) if j != i) for i in range(5))
        references_seen.update(frames)
    assert min(references_seen) == 0 and max(references_seen) == 99
    for _ in range(50):  # two frames: the second is another frame within the range
        first, second = sample_clip_frames(30, num_frames=2, frame_range=20, generator=generator)
        assert 0 < second - first <= 20
    assert sample_clip_frames(1, num_frames=3, generator=generator) == [0, 0, 0]
    shuffled = [sample_clip_frames(50, 4, 20, shuffle=True, generator=generator) for _ in range(30)]
    assert any(frames != sorted(frames) for frames in shuffled)


def test_sample_clip_transform_size_choice_cap_and_flip():
    generator = torch.Generator().manual_seed(0)
    transforms = [sample_clip_transform(720, 1280, generator=generator) for _ in range(60)]
    assert {t.size for t in transforms} == {(360, 640), (480, 853)}  # shortest side 360 or 480, rounded like d2
    assert {t.flip for t in transforms} == {True, False}
    assert all(t.crop is None for t in transforms)
    capped = {sample_clip_transform(720, 1280, max_size=768, generator=generator).size for _ in range(60)}
    assert capped == {(360, 640), (432, 768)}
    for _ in range(30):
        crop = sample_clip_transform(700, 1000, crop_range=(600, 720), generator=generator).crop
        top, left, height, width = crop
        assert 600 <= height <= 700 and 600 <= width <= 720 and top + height <= 700 and left + width <= 1000


def test_clips_keep_absent_frames_empty_and_drop_absent_instances(presence_set):
    path, image_root = presence_set
    index = build_ytvis_index(path, image_root)
    video = _presence_video()
    dataset = YTVISClipDataset(index, min_sizes=(16,), flip_prob=0.0, generator=torch.Generator().manual_seed(1))
    instance_counts, empty_frame_seen = set(), False
    for _ in range(40):
        clip = dataset[0]
        frames = clip["frame_indices"]
        expected = [k for k, (_, masks, crowd) in enumerate(video["instances"]) if not crowd and masks[frames].any()]
        assert clip["instance_ids"].tolist() == [k + 1 for k in expected]  # crowd and absent instances dropped
        assert clip["class_labels"].tolist() == [[0, 2][k] for k in expected]  # contiguous labels of 3 and 10
        for n, k in enumerate(expected):
            np.testing.assert_array_equal(clip["mask_labels"][n].numpy(), video["instances"][k][1][frames])
        assert clip["pixel_values_videos"].shape == (2, 3, 16, 24)
        instance_counts.add(len(expected))
        empty_frame_seen |= any(not mask.any() for mask in clip["mask_labels"].flatten(0, 1))
    assert instance_counts == {0, 1, 2}  # clips with none, one and both instances
    assert empty_frame_seen  # an instance kept in the clip with an empty mask in a frame where it is absent


def test_flip_and_crop_move_image_and_masks_together(presence_set):
    """The red channel is exactly the union of the instances' masks; it must stay so after augmentation.

    A 12x12 crop resized to shortest side 12 is not interpolated, so the comparison is exact.
    """
    path, image_root = presence_set
    index = build_ytvis_index(path, image_root)
    video = _presence_video()
    for flip_prob, crop_range, min_size in ((1.0, None, 16), (1.0, (12, 12), 12), (0.0, (12, 12), 12)):
        dataset = YTVISClipDataset(index, min_sizes=(min_size,), flip_prob=flip_prob, crop_range=crop_range)
        torch.manual_seed(3)
        for _ in range(15):
            clip = dataset[0]
            pixels = clip["pixel_values_videos"]  # (T, 3, h, w)
            red = pixels[:, 0] == 255
            union = clip["mask_labels"].any(dim=0) if len(clip["mask_labels"]) else torch.zeros_like(red)
            assert torch.equal(red, union)
            green = pixels[0, 1, 0].tolist()  # the ramp 10 * x along the first row
            steps = {b - a for a, b in zip(green, green[1:], strict=False)}
            assert steps == ({-10} if flip_prob else {10})
            if crop_range is None:
                flipped = video["frames"][clip["frame_indices"]][:, :, ::-1, 0] == 255
                np.testing.assert_array_equal(red.numpy(), flipped)


def test_clip_resizes_frames_and_masks_to_one_size_per_clip(synthetic_index):
    dataset = YTVISClipDataset(synthetic_index, min_sizes=(32, 48), max_size=60, num_frames=3)
    torch.manual_seed(0)
    sizes = set()
    for _ in range(12):
        clip = dataset[1]
        frames, masks = clip["pixel_values_videos"], clip["mask_labels"]
        assert frames.dtype == torch.uint8 and frames.shape[:2] == (3, 3)
        assert masks.dtype == torch.bool and masks.shape[1:] == (3, *frames.shape[-2:])
        sizes.add(tuple(frames.shape[-2:]))
    assert sizes == {(32, 45), (43, 60)}  # 40x56 with shortest side 32, or 48 capped at longest side 60


# ----------------------------------------------------------------------------------------------------------------
# Test mode and batching
# ----------------------------------------------------------------------------------------------------------------


def test_video_dataset_yields_whole_videos_with_exact_ground_truth(synthetic_index):
    dataset = YTVISVideoDataset(synthetic_index)
    for item in range(len(dataset)):
        sample = dataset[item]
        video = generate_video(item, seed=2, **SYNTHETIC)  # train holds the first videos of the set
        assert sample["pixel_values_videos"].shape == (6, 3, 40, 56) and sample["original_size"] == (40, 56)
        np.testing.assert_array_equal(sample["mask_labels"].numpy(), video.masks)
        assert sample["class_labels"].tolist() == video.labels.tolist()
        assert not sample["iscrowd"].any()
    assert "mask_labels" not in YTVISVideoDataset(synthetic_index, with_ground_truth=False)[0]


def test_collate_pads_with_the_processor(synthetic_index, presence_set):
    torch.manual_seed(0)
    clips = [
        YTVISClipDataset(synthetic_index, min_sizes=(40,))[0],
        YTVISClipDataset(build_ytvis_index(*presence_set), min_sizes=(16,), max_size=10_000)[0],
    ]
    batch = YTVISCollator()(clips)
    assert batch["pixel_values_videos"].shape == (2, 2, 3, 64, 64)  # largest clip 40x56 padded to multiples of 32
    assert batch["pixel_mask"].shape == (2, 64, 64)
    assert batch["pixel_mask"][0].sum() == 40 * 56 and batch["pixel_mask"][1].sum() == 16 * 24
    expected = Mask2FormerVideoProcessor()([clips[0]["pixel_values_videos"]], do_resize=False, return_tensors="pt")
    torch.testing.assert_close(batch["pixel_values_videos"][0], expected["pixel_values_videos"][0], rtol=0, atol=0)
    assert (batch["pixel_values_videos"][1, :, :, 16:] == 0).all()
    for clip, masks, labels in zip(clips, batch["mask_labels"], batch["class_labels"], strict=True):
        height, width = clip["mask_labels"].shape[-2:]
        assert masks.dtype == torch.float32 and masks.shape == (len(clip["class_labels"]), 2, 64, 64)
        assert torch.equal(masks[..., :height, :width], clip["mask_labels"].float())
        assert masks[..., height:, :].sum() == 0 and masks[..., width:].sum() == 0
        assert labels.dtype == torch.int64 and torch.equal(labels, clip["class_labels"])


def test_clip_without_instances_collates(tmp_path):
    frames = np.zeros((2, 8, 8, 3), dtype=np.uint8)
    path, image_root = _write_set(tmp_path, [{"frames": frames, "instances": []}])
    clip = YTVISClipDataset(build_ytvis_index(path, image_root), min_sizes=(8,))[0]
    assert clip["mask_labels"].shape == (0, 2, 8, 8) and clip["class_labels"].shape == (0,)
    batch = YTVISCollator()([clip])
    assert batch["mask_labels"][0].shape == (0, 2, 32, 32) and batch["class_labels"][0].shape == (0,)


# ----------------------------------------------------------------------------------------------------------------
# Bad input: a ValueError naming the video, or a counted, logged skip
# ----------------------------------------------------------------------------------------------------------------


def _content_and_root(tmp_path):
    path, image_root = _write_set(tmp_path, [_presence_video()])
    return json.loads(path.read_text()), image_root


def test_missing_frame_file(tmp_path):
    content, image_root = _content_and_root(tmp_path)
    (image_root / "v1" / "00001.png").unlink()
    with pytest.raises(ValueError, match=r"video 1 \(v1\): frame file not found"):
        build_ytvis_index(content, image_root)
    index = build_ytvis_index(content, image_root, check_files=False)  # found only when reading
    with pytest.raises(ValueError, match="video 1: cannot read frame 1"):
        YTVISVideoDataset(index)[0]


def test_frame_of_the_wrong_size(tmp_path):
    content, image_root = _content_and_root(tmp_path)
    Image.new("RGB", (10, 10)).save(image_root / "v1" / "00000.png")
    with pytest.raises(ValueError, match="video 1: frame 0 .* is 10x10 but the annotation says 16x24"):
        YTVISVideoDataset(build_ytvis_index(content, image_root))[0]


def test_frame_counts_that_disagree(tmp_path):
    content, image_root = _content_and_root(tmp_path)
    content["videos"][0]["length"] = 5
    with pytest.raises(ValueError, match=r"video 1 \(v1\) has length 5 but 4 file_names"):
        build_ytvis_index(content, image_root)
    content["videos"][0]["length"] = 4
    content["annotations"][1]["segmentations"].append(None)
    with pytest.raises(ValueError, match=r"video 1 \(v1\), annotation 2: 'segmentations' must be a list of 4 entries"):
        build_ytvis_index(content, image_root)


def test_segmentation_of_the_wrong_size(tmp_path):
    content, image_root = _content_and_root(tmp_path)
    content["annotations"][0]["segmentations"][0]["size"] = [8, 8]
    with pytest.raises(
        ValueError,
        match=r"video 1 \(v1\), annotation 1: segmentations\[0\]: RLE size \[8, 8\] disagrees with video 1 \(16x24\)",
    ):
        build_ytvis_index(content, image_root)


def test_empty_video(tmp_path):
    content, image_root = _content_and_root(tmp_path)
    content["videos"].append({"id": 9, "height": 16, "width": 24, "length": 0, "file_names": []})
    with pytest.raises(ValueError, match="video 9 is empty"):
        build_ytvis_index(content, image_root)
    del content["videos"][1]["height"]
    with pytest.raises(ValueError, match="video 9 lacks height"):
        build_ytvis_index(content, image_root)


def test_unknown_category(tmp_path):
    content, image_root = _content_and_root(tmp_path)
    content["annotations"][0]["category_id"] = 42
    with pytest.raises(ValueError, match=r"video 1 \(v1\), annotation 1: unknown category_id 42"):
        build_ytvis_index(content, image_root)


def test_annotations_of_unknown_videos_are_skipped_and_logged(tmp_path, caplog):
    content, image_root = _content_and_root(tmp_path)
    content["annotations"][0]["video_id"] = 77
    with caplog.at_level(logging.WARNING):
        index = build_ytvis_index(content, image_root)
    assert "skipped 1 annotations" in caplog.text
    assert [i["id"] for i in index[0]["instances"]] == [2, 3]


def test_unannotated_videos_are_kept_or_skipped_with_a_count(tmp_path, caplog):
    video = _presence_video()
    path, image_root = _write_set(tmp_path, [video, {"frames": video["frames"], "instances": []}])
    with caplog.at_level(logging.WARNING):
        assert len(build_ytvis_index(path, image_root)) == 2  # the official video configs keep them
        assert "1 of 2 videos have no annotation: kept" in caplog.text
        skipped = build_ytvis_index(path, image_root, skip_unannotated=True)
    assert skipped["video_id"] == [1]
    assert "skipped 1 of 2 videos that have no annotation" in caplog.text


def test_split_without_annotations(tmp_path, caplog):
    """A test split (YouTube-VIS valid/test files have `"annotations": null`) indexes quietly, without instances."""
    content, image_root = _content_and_root(tmp_path)
    content["annotations"] = None
    with caplog.at_level(logging.WARNING):
        index = build_ytvis_index(content, image_root)
    assert index[0]["instances"] == [] and caplog.text == ""
    sample = YTVISVideoDataset(index)[0]
    assert sample["mask_labels"].shape == (0, 4, 16, 24)


def test_missing_annotation_file_and_empty_index(tmp_path):
    with pytest.raises(ValueError, match="annotation file not found"):
        build_ytvis_index(tmp_path / "nope.json", tmp_path)
    empty = build_ytvis_index({"videos": [], "categories": [{"id": 1, "name": "x"}]}, tmp_path)
    with pytest.raises(ValueError, match="no videos"):
        YTVISClipDataset(empty)
