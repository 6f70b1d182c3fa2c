"""The synthetic YouTube-VIS generator: exact masks, determinism, the annotation format and the CLI."""

import colorsys
import json
import math

import numpy as np
import pytest
from PIL import Image
from pycocotools import mask as mask_utils

from modeling_m2f_video.cli import main
from modeling_m2f_video.processing.synthetic import (
    MAX_CLASSES,
    SHAPES,
    category_names,
    class_colour_family,
    generate_video,
    make_synthetic_dataset,
    shape_contains,
    split_indices,
)

SMALL = {"num_frames": 5, "height": 48, "width": 64, "num_classes": 12, "max_objects": 4}


@pytest.fixture(scope="module")
def synthetic_set(tmp_path_factory):
    """A 6-video set (5 train, 1 valid) written once for the module."""
    root = tmp_path_factory.mktemp("synthetic")
    paths = make_synthetic_dataset(root, num_videos=6, seed=7, valid_fraction=0.2, progress=False, **SMALL)
    return root, paths


def _decode(segmentation: dict) -> np.ndarray:
    return mask_utils.decode(segmentation).astype(bool)


def test_generate_video_shapes_and_invariants():
    video = generate_video(0, seed=3, **SMALL)
    num_objects = len(video.labels)
    assert video.frames.shape == (5, 48, 64, 3) and video.frames.dtype == np.uint8
    assert video.masks.shape == (num_objects, 5, 48, 64) and video.masks.dtype == bool
    assert 1 <= num_objects <= 4
    assert video.labels.dtype == np.int64 and ((0 <= video.labels) & (video.labels < 12)).all()
    # Every object is visible somewhere, and no pixel belongs to two objects (occlusion resolved).
    assert video.masks.any(axis=(1, 2, 3)).all()
    assert video.masks.sum(axis=0).max() <= 1


def test_generate_video_is_deterministic_and_seed_dependent():
    first, again = generate_video(4, seed=11, **SMALL), generate_video(4, seed=11, **SMALL)
    np.testing.assert_array_equal(first.frames, again.frames)
    np.testing.assert_array_equal(first.masks, again.masks)
    np.testing.assert_array_equal(first.labels, again.labels)
    assert not np.array_equal(first.frames, generate_video(4, seed=12, **SMALL).frames)
    assert not np.array_equal(first.frames, generate_video(5, seed=11, **SMALL).frames)


def test_objects_enter_leave_and_occlude():
    """Over a handful of videos some instances are absent in some frames and some objects overlap.

    Shapes are painted whole, so two objects' visible masks share a boundary (horizontally adjacent pixels
    of two different objects) almost only where one covers part of the other.
    """
    absent_frames, shared_boundary = 0, 0
    for index in range(12):
        video = generate_video(index, seed=0, num_frames=8, height=48, width=64, num_classes=6, max_objects=5)
        absent_frames += int((~video.masks.any(axis=(2, 3))).sum())
        owner = np.where(video.masks.any(axis=0), video.masks.argmax(axis=0), -1)  # (T, H, W)
        left, right = owner[..., :-1], owner[..., 1:]
        shared_boundary += int(((left >= 0) & (right >= 0) & (left != right)).sum())
    assert absent_frames > 0
    assert shared_boundary > 0


def test_class_colour_is_visible_in_the_frames():
    """The hue of an object's visible pixels is within its class's colour family."""
    for index in range(6):
        video = generate_video(index, seed=1, num_frames=2, height=96, width=128, num_classes=MAX_CLASSES)
        for masks, label in zip(video.masks, video.labels, strict=True):
            pixels = video.frames[masks].astype(np.float64) / 255.0  # (P, 3)
            if len(pixels) < 50:
                continue
            hue, saturation, _ = colorsys.rgb_to_hsv(*pixels.mean(axis=0))
            family_hue = class_colour_family(label)[1]
            distance = abs((hue * 360.0 - family_hue + 180.0) % 360.0 - 180.0)
            assert distance < 25.0 and saturation > 0.4, (index, label, hue * 360.0, saturation)


def test_triangle_is_the_regular_triangle():
    """The star-polygon inside test with inner vertices on the edges equals three half-planes."""
    u, v = np.meshgrid(np.linspace(-1.1, 1.1, 221), np.linspace(-1.1, 1.1, 221))
    inside = shape_contains("triangle", u, v)
    # Vertices at angles -90, 30 and 150 degrees on the unit circle: each edge is at distance 1/2 from the centre.
    expected = np.ones_like(inside)
    for edge_angle in (90.0, 210.0, 330.0):  # outward normals of the three edges
        normal = (math.cos(math.radians(edge_angle)), math.sin(math.radians(edge_angle)))
        expected &= u * normal[0] + v * normal[1] <= 0.5 + 1e-9
    assert (inside != expected).mean() < 0.002  # only points on the boundary may differ by rounding
    for shape in SHAPES:
        assert shape_contains(shape, u, v).any()
        assert not shape_contains(shape, u, v)[np.hypot(u, v) > 1.0 + 1e-9].any()  # fits the unit circle


def test_category_names_and_limits():
    assert category_names(6) == [
        "red_ellipse",
        "yellow_rectangle",
        "green_triangle",
        "cyan_star",
        "blue_cross",
        "magenta_ellipse",
    ]
    assert len(set(category_names(MAX_CLASSES))) == MAX_CLASSES
    with pytest.raises(ValueError, match="num_classes"):
        category_names(MAX_CLASSES + 1)


def test_split_indices():
    assert split_indices(10, 0.2) == {"train": list(range(8)), "valid": [8, 9]}
    assert split_indices(2, 0.01) == {"train": [0], "valid": [1]}
    assert split_indices(1, 0.5) == {"train": [0], "valid": []}
    assert split_indices(3, 0.0)["valid"] == []
    with pytest.raises(ValueError):
        split_indices(0, 0.2)


def test_written_set_layout_and_format(synthetic_set):
    root, paths = synthetic_set
    assert set(paths) == {"train", "valid"}
    for split, expected_videos in (("train", 5), ("valid", 1)):
        content = json.loads((root / split / "instances.json").read_text())
        assert [c["id"] for c in content["categories"]] == list(range(1, 13))
        assert {"id", "name", "supercategory"} <= set(content["categories"][0])
        assert [v["id"] for v in content["videos"]] == list(range(1, expected_videos + 1))
        annotation_ids = [a["id"] for a in content["annotations"]]
        assert len(set(annotation_ids)) == len(annotation_ids)
        for video in content["videos"]:
            assert video["length"] == len(video["file_names"]) == 5
            for file_name in video["file_names"]:
                with Image.open(root / split / "JPEGImages" / file_name) as image:
                    assert image.format == "JPEG" and image.size == (video["width"], video["height"])
        for annotation in content["annotations"]:
            assert annotation["iscrowd"] == 0 and (annotation["height"], annotation["width"]) == (48, 64)
            assert len(annotation["segmentations"]) == len(annotation["areas"]) == len(annotation["bboxes"]) == 5
            for segmentation, area, bbox in zip(
                annotation["segmentations"], annotation["areas"], annotation["bboxes"], strict=True
            ):
                assert (segmentation is None) == (area is None) == (bbox is None)
                if segmentation is None:
                    continue
                assert isinstance(segmentation["counts"], str) and segmentation["size"] == [48, 64]
                mask = _decode(segmentation)
                assert area == mask.sum() > 0
                ys, xs = np.nonzero(mask)
                assert bbox == [xs.min(), ys.min(), xs.max() - xs.min() + 1, ys.max() - ys.min() + 1]


def test_written_masks_are_the_renderer_visibility(synthetic_set):
    """Decoded RLEs equal the renderer's own per-object visible pixels, and the JPEGs are its frames."""
    root, _ = synthetic_set
    indices = split_indices(6, 0.2)
    for split in ("train", "valid"):
        content = json.loads((root / split / "instances.json").read_text())
        for video_entry, index in zip(content["videos"], indices[split], strict=True):
            video = generate_video(index, seed=7, **SMALL)
            annotations = [a for a in content["annotations"] if a["video_id"] == video_entry["id"]]
            assert [a["category_id"] - 1 for a in annotations] == video.labels.tolist()
            for annotation, masks in zip(annotations, video.masks, strict=True):
                for t, segmentation in enumerate(annotation["segmentations"]):
                    decoded = np.zeros_like(masks[t]) if segmentation is None else _decode(segmentation)
                    np.testing.assert_array_equal(decoded, masks[t])
            first = np.asarray(Image.open(root / split / "JPEGImages" / video_entry["file_names"][0]))
            assert np.abs(first.astype(int) - video.frames[0].astype(int)).mean() < 6.0  # JPEG loss only


def test_written_set_is_deterministic(synthetic_set, tmp_path):
    root, _ = synthetic_set
    make_synthetic_dataset(tmp_path, num_videos=6, seed=7, valid_fraction=0.2, progress=False, **SMALL)
    for split in ("train", "valid"):
        assert (tmp_path / split / "instances.json").read_bytes() == (root / split / "instances.json").read_bytes()
    frame = "train/JPEGImages/video_00002/00003.jpg"
    assert (tmp_path / frame).read_bytes() == (root / frame).read_bytes()


def test_cli_make_synthetic(tmp_path, capsys):
    output = tmp_path / "set"
    argv = ["make-synthetic", "--output", str(output), "--videos", "3", "--frames", "2", "--classes", "3"]
    code = main(argv + ["--height", "32", "--width", "40", "--seed", "5", "--valid-fraction", "0.3", "--no-progress"])
    assert code == 0
    train = json.loads((output / "train" / "instances.json").read_text())
    valid = json.loads((output / "valid" / "instances.json").read_text())
    assert len(train["videos"]) == 2 and len(valid["videos"]) == 1
    assert (train["videos"][0]["height"], train["videos"][0]["width"]) == (32, 40)
    assert "green_triangle" in capsys.readouterr().out
    assert train["info"]["motion"] == "linear"


def test_cli_make_synthetic_bounded_motion(tmp_path):
    output = tmp_path / "bounded"
    argv = ["make-synthetic", "--output", str(output), "--videos", "2", "--frames", "3", "--classes", "2"]
    assert main(argv + ["--height", "32", "--width", "40", "--motion", "bounded", "--no-progress"]) == 0
    assert json.loads((output / "train" / "instances.json").read_text())["info"]["motion"] == "bounded"


def test_cli_rejects_bad_arguments(tmp_path, capsys):
    code = main(["make-synthetic", "--output", str(tmp_path), "--videos", "2", "--frames", "2", "--classes", "99"])
    assert code == 2
    assert "num_classes" in capsys.readouterr().err


# ----------------------------------------------------------------------------------------------- motion


def test_linear_motion_is_the_default_and_unchanged():
    """The tests and the demo model were made with these videos: labels and mask areas of the first videos."""
    expected = {0: ([5, 5, 1, 1], [621, 1413, 407, 374]), 1: ([2, 10, 7, 3], [596, 991, 666, 370])}
    for index, (labels, areas) in expected.items():
        video = generate_video(index, seed=3, **SMALL)
        assert video.labels.tolist() == labels and video.masks.sum(axis=(1, 2, 3)).tolist() == areas
        np.testing.assert_array_equal(video.frames, generate_video(index, seed=3, motion="linear", **SMALL).frames)
    assert not np.array_equal(video.frames, generate_video(1, seed=3, motion="bounded", **SMALL).frames)
    with pytest.raises(ValueError, match="motion"):
        generate_video(0, motion="circular")


def test_bounded_motion_stays_in_distribution_at_any_length():
    """Over 1000 frames an object is in view in every frame and no object outgrows the training sizes; with
    linear motion the objects have left or outgrown the frame long before."""
    height, width = 32, 40
    largest_area = math.pi * (1.25 * 0.25 * height * math.sqrt(1.4)) ** 2  # the largest shape the sizes allow
    for index in range(3):
        video = generate_video(index, seed=5, num_frames=1000, height=height, width=width, motion="bounded")
        areas = video.masks.sum(axis=(2, 3))  # (N, T)
        assert (areas > 0).any(axis=0).all()
        assert areas.max() <= largest_area
    linear = generate_video(0, seed=5, num_frames=1000, height=height, width=width)
    linear_areas = linear.masks.sum(axis=(2, 3))
    assert not (linear_areas[:, -1] > 0).any() or linear_areas.max() > largest_area


def test_bounded_objects_come_back_after_a_gap_and_occlude():
    """Some object disappears for at least 4 frames and comes back; some objects overlap."""
    returns, shared_boundary = 0, 0
    for index in range(4):
        video = generate_video(index, seed=0, num_frames=200, height=32, width=40, motion="bounded")
        for present in video.masks.any(axis=(2, 3)):  # (T,) per object
            changes = np.flatnonzero(np.diff(present.astype(int)))  # last frame before each change
            gaps = np.diff(changes)[present[changes[:-1] + 1] == 0] if len(changes) > 1 else []
            returns += int(np.sum(np.asarray(gaps) >= 4))
        owner = np.where(video.masks.any(axis=0), video.masks.argmax(axis=0), -1)
        left, right = owner[..., :-1], owner[..., 1:]
        shared_boundary += int(((left >= 0) & (right >= 0) & (left != right)).sum())
    assert returns > 0 and shared_boundary > 0


def test_written_bounded_set_says_its_motion(tmp_path):
    options = {**SMALL, "num_frames": 40}
    paths = make_synthetic_dataset(tmp_path, num_videos=2, seed=4, motion="bounded", progress=False, **options)
    content = json.loads(paths["valid"].read_text())
    assert content["info"]["motion"] == "bounded"
    video = generate_video(1, seed=4, motion="bounded", **options)
    for annotation, masks in zip(content["annotations"], video.masks, strict=True):
        decoded = [np.zeros_like(masks[0]) if rle is None else _decode(rle) for rle in annotation["segmentations"]]
        np.testing.assert_array_equal(np.stack(decoded), masks)
    with pytest.raises(ValueError, match="motion"):
        make_synthetic_dataset(tmp_path, num_videos=2, num_frames=2, num_classes=3, motion="circular")
