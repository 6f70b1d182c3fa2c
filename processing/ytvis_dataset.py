"""YouTube-VIS-format data on disk (YouTube-VIS 2019/2021, OVIS, the synthetic set): index, clips, batches.

Three layers:

1. `build_ytvis_index(annotation_json, image_root)` reads and checks an annotation file and returns a
   `datasets.Dataset` with one row per video (frame file names, and per instance its contiguous label and
   per-frame compressed RLE, null where absent). It can be saved with `save_to_disk` and shared; the
   categories and the image root travel in its `info`.
2. `YTVISClipDataset` yields training clips the way the official Mask2Former `YTVISDatasetMapper` does, and
   `YTVISVideoDataset` yields whole videos with their ground truth for evaluation.
3. `YTVISCollator` batches clips with the project's video processor (normalisation and padding) and pads
   the masks to the same size.

Bad input raises a `ValueError` that names the video (missing or mis-sized frames, frame counts that
disagree, empty videos, unknown categories); what the official loader skips (annotations of unknown
videos) is skipped, counted and logged.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import datasets
import numpy as np
import torch
from PIL import Image
from pycocotools import mask as mask_utils
from torchvision import tv_tensors
from torchvision.transforms import v2

from ..ytvis.reader import Video, track_rles
from ..ytvis.rle import rle_to_json
from .video_processing_m2f_video import Mask2FormerVideoProcessor, get_resize_output_size

logger = logging.getLogger(__name__)

INDEX_FORMAT = "m2f-video/ytvis-index/1"

# The official training defaults (Mask2Former video configs and detectron2's defaults).
DEFAULT_NUM_FRAMES = 2
DEFAULT_SAMPLING_FRAME_RANGE = 20
DEFAULT_MIN_SIZES = (360, 480)
DEFAULT_MAX_SIZE = 1333

INDEX_FEATURES = datasets.Features(
    {
        "video_id": datasets.Value("int64"),
        "height": datasets.Value("int32"),
        "width": datasets.Value("int32"),
        "length": datasets.Value("int32"),
        "file_names": datasets.List(datasets.Value("string")),
        "instances": datasets.List(
            {
                "id": datasets.Value("int64"),
                "category_id": datasets.Value("int64"),
                "label": datasets.Value("int64"),
                "iscrowd": datasets.Value("bool"),
                # Compressed RLE counts per frame (size = the video's height, width); null where absent.
                "segmentations": datasets.List(datasets.Value("string")),
            }
        ),
    }
)


# ----------------------------------------------------------------------------------------------------------------
# The index
# ----------------------------------------------------------------------------------------------------------------


def build_ytvis_index(
    annotation_json: str | os.PathLike | dict,
    image_root: str | os.PathLike,
    *,
    check_files: bool = True,
    skip_unannotated: bool = False,
) -> datasets.Dataset:
    """Read a YouTube-VIS-format annotation file into a `datasets.Dataset` with one row per video.

    Category ids are mapped to contiguous 0-based labels in increasing id order, as the official loader
    does. Segmentations (compressed or uncompressed RLE, or polygons) are stored as compressed RLE strings.
    The index's `info.description` keeps the categories and `image_root`; read them back with
    `index_categories` and `index_image_root`.

    Args:
        annotation_json: path of the JSON file, or its content already loaded.
        image_root: folder that the videos' `file_names` are relative to (`.../JPEGImages`).
        check_files: check that every frame file exists (one `stat` per frame).
        skip_unannotated: leave out videos with no annotation (counted and logged). The official video
            configs keep them (`FILTER_EMPTY_ANNOTATIONS: False`), which is the default here.

    Raises:
        ValueError: naming the video, for an empty video, frame counts that disagree, a missing frame file,
            a segmentation of the wrong size, or an unknown category id.
    """
    content = _load_json(annotation_json)
    categories = _contiguous_categories(content.get("categories") or [])
    label_of = {category["id"]: category["label"] for category in categories}
    videos = {}
    for video in content.get("videos") or []:
        _check_video(video, image_root, check_files)
        if video["id"] in videos:
            raise ValueError(f"video {video['id']} appears twice in the annotation file")
        videos[video["id"]] = video

    annotations = content.get("annotations") or []
    instances_of = _group_annotations(annotations, videos, label_of)
    unannotated = [video_id for video_id in videos if not instances_of.get(video_id)]
    if skip_unannotated and unannotated:
        logger.warning("skipped %d of %d videos that have no annotation", len(unannotated), len(videos))
    elif annotations and unannotated:  # a test split has no annotations at all: nothing to report
        logger.warning(
            "%d of %d videos have no annotation: kept, as clips without instances", len(unannotated), len(videos)
        )
    kept = sorted(set(videos) - set(unannotated)) if skip_unannotated else sorted(videos)
    rows = [_index_row(videos[video_id], instances_of.get(video_id, [])) for video_id in kept]
    description = {"format": INDEX_FORMAT, "image_root": str(Path(image_root).resolve()), "categories": categories}
    info = datasets.DatasetInfo(description=json.dumps(description), features=INDEX_FEATURES)
    columns = {name: [row[name] for row in rows] for name in INDEX_FEATURES}  # keeps the schema when empty
    return datasets.Dataset.from_dict(columns, info=info)


def _index_row(video: dict, instances: list[dict]) -> dict:
    """One row of the index (see `INDEX_FEATURES`)."""
    return {
        "video_id": video["id"],
        "height": video["height"],
        "width": video["width"],
        "length": video["length"],
        "file_names": list(video["file_names"]),
        "instances": instances,
    }


def index_categories(index: datasets.Dataset) -> list[dict]:
    """The index's categories: dicts with `id` (as in the JSON), `name` and contiguous `label`."""
    return _index_description(index)["categories"]


def index_image_root(index: datasets.Dataset) -> str:
    """The absolute image root the index was built with."""
    return _index_description(index)["image_root"]


def _index_description(index: datasets.Dataset) -> dict:
    try:
        description = json.loads(index.info.description or "")
    except json.JSONDecodeError:
        description = {}
    if description.get("format") != INDEX_FORMAT:
        raise ValueError("not a YouTube-VIS index built by build_ytvis_index (its info.description is missing)")
    return description


def _load_json(annotation_json: str | os.PathLike | dict) -> dict:
    if isinstance(annotation_json, dict):
        return annotation_json
    path = Path(annotation_json)
    if not path.is_file():
        raise ValueError(f"annotation file not found: {path}")
    with path.open() as file:
        return json.load(file)


def _contiguous_categories(categories: list[dict]) -> list[dict]:
    """Categories sorted by id, each with its contiguous 0-based `label`."""
    ordered = sorted(categories, key=lambda category: category["id"])
    ids = [category["id"] for category in ordered]
    if len(set(ids)) != len(ids):
        raise ValueError(f"the annotation file repeats category ids: {ids}")
    return [
        {"id": category["id"], "name": category.get("name", str(category["id"])), "label": label}
        for label, category in enumerate(ordered)
    ]


def _check_video(video: dict, image_root: str | os.PathLike, check_files: bool) -> None:
    """Raise a ValueError naming the video if it has no frames, inconsistent lengths or missing files."""
    name = _video_name(video)
    missing = [key for key in ("id", "height", "width", "length", "file_names") if key not in video]
    if missing:
        raise ValueError(f"{name} lacks {', '.join(missing)}")
    file_names = video["file_names"] or []
    if not file_names or not video.get("length"):
        raise ValueError(f"{name} is empty: it has no frames")
    if video["length"] != len(file_names):
        raise ValueError(f"{name} has length {video['length']} but {len(file_names)} file_names")
    if check_files:
        for file_name in file_names:
            if not (Path(image_root) / file_name).is_file():
                raise ValueError(f"{name}: frame file not found: {Path(image_root) / file_name}")


def _video_name(video: dict) -> str:
    """How errors name a video: its id and its folder."""
    file_names = video.get("file_names") or []
    folder = f" ({Path(file_names[0]).parent})" if file_names else ""
    return f"video {video.get('id')}{folder}"


def _group_annotations(annotations: list[dict], videos: dict[int, dict], label_of: dict[int, int]) -> dict:
    """The index's instance records per video id; annotations of unknown videos are skipped and logged."""
    instances_of: dict[int, list[dict]] = {}
    num_orphans = 0
    for annotation in annotations:
        video = videos.get(annotation.get("video_id"))
        if video is None:
            num_orphans += 1
            continue
        instances_of.setdefault(video["id"], []).append(_instance_record(annotation, video, label_of))
    if num_orphans:
        logger.warning("skipped %d annotations whose video_id is not among the videos", num_orphans)
    return instances_of


def _instance_record(annotation: dict, video: dict, label_of: dict[int, int]) -> dict:
    """One annotation as an index instance: contiguous label and per-frame compressed RLE counts (None if absent).

    The per-frame segmentations (compressed or uncompressed RLE, polygons) are read and checked by the metric's
    reader, so training and evaluation accept the same files.
    """
    name = f"{_video_name(video)}, annotation {annotation.get('id')}"
    category_id = annotation.get("category_id")
    if category_id not in label_of:
        raise ValueError(f"{name}: unknown category_id {category_id} (known: {sorted(label_of)})")
    frames = Video(id=video["id"], height=video["height"], width=video["width"], length=video["length"])
    rles = track_rles(annotation.get("segmentations"), frames, name, polygons=True)
    return {
        "id": annotation["id"],
        "category_id": category_id,
        "label": label_of[category_id],
        "iscrowd": bool(annotation.get("iscrowd", 0)),
        "segmentations": [None if rle is None else rle_to_json(rle)["counts"] for rle in rles],
    }


# ----------------------------------------------------------------------------------------------------------------
# Reading frames and masks
# ----------------------------------------------------------------------------------------------------------------


def read_frames(row: dict, image_root: str | os.PathLike, frame_indices: Sequence[int]) -> torch.Tensor:
    """Frames `frame_indices` of an index row as a (T, 3, H, W) uint8 RGB tensor.

    Raises a ValueError naming the video if a file is missing, unreadable, or not of the video's size.
    """
    frames = []
    for t in frame_indices:
        path = Path(image_root) / row["file_names"][t]
        try:
            with Image.open(path) as image:
                array = np.asarray(image.convert("RGB"))  # (H, W, 3)
        except OSError as error:  # missing, unreadable or not an image
            raise ValueError(f"video {row['video_id']}: cannot read frame {t} ({path}): {error}") from error
        if array.shape[:2] != (row["height"], row["width"]):
            raise ValueError(
                f"video {row['video_id']}: frame {t} ({path}) is {array.shape[0]}x{array.shape[1]} "
                f"but the annotation says {row['height']}x{row['width']}"
            )
        frames.append(torch.from_numpy(array.copy()).permute(2, 0, 1))
    return torch.stack(frames)


def decode_masks(row: dict, instances: Sequence[dict], frame_indices: Sequence[int]) -> torch.Tensor:
    """(N, T, H, W) bool masks of `instances` at `frame_indices`; all False where an instance is absent."""
    height, width = row["height"], row["width"]
    masks = np.zeros((len(instances), len(frame_indices), height, width), dtype=bool)
    for n, instance in enumerate(instances):
        for k, t in enumerate(frame_indices):
            counts = instance["segmentations"][t]
            if counts is not None:
                masks[n, k] = mask_utils.decode({"size": [height, width], "counts": counts}).astype(bool)
    return torch.from_numpy(masks)


# ----------------------------------------------------------------------------------------------------------------
# Training clips
# ----------------------------------------------------------------------------------------------------------------


def sample_clip_frames(
    length: int,
    num_frames: int = DEFAULT_NUM_FRAMES,
    frame_range: int = DEFAULT_SAMPLING_FRAME_RANGE,
    shuffle: bool = False,
    generator: torch.Generator | None = None,
) -> list[int]:
    """Frame indices of one training clip, as the official mapper samples them.

    A reference frame is drawn uniformly; the other `num_frames - 1` frames are drawn uniformly *with
    replacement* (as `np.random.choice` does by default) among the frames at most `frame_range` away from
    it, the reference excluded; the result is sorted (shuffled instead if `shuffle`). A one-frame video
    (where the official code fails) repeats its only frame.
    """
    if length < 1 or num_frames < 1:
        raise ValueError(f"need a video length and num_frames of at least 1, got {length} and {num_frames}")
    reference = int(torch.randint(length, (1,), generator=generator))
    candidates = list(range(max(0, reference - frame_range), min(length, reference + frame_range + 1)))
    candidates.remove(reference)
    if not candidates:
        candidates = [reference]
    picks = torch.randint(len(candidates), (num_frames - 1,), generator=generator).tolist()
    frames = sorted([candidates[p] for p in picks] + [reference])
    if shuffle:
        frames = [frames[p] for p in torch.randperm(len(frames), generator=generator).tolist()]
    return frames


@dataclass(frozen=True)
class ClipTransform:
    """The augmentation of one clip, the same for all its frames: crop, then resize, then flip.

    Attributes:
        crop: (top, left, height, width) of the crop in the original frame, or None.
        size: (height, width) after resizing.
        flip: whether to flip horizontally.
    """

    crop: tuple[int, int, int, int] | None
    size: tuple[int, int]
    flip: bool


def sample_clip_transform(
    height: int,
    width: int,
    *,
    min_sizes: Sequence[int] = DEFAULT_MIN_SIZES,
    max_size: int = DEFAULT_MAX_SIZE,
    flip_prob: float = 0.5,
    crop_range: tuple[int, int] | None = None,
    generator: torch.Generator | None = None,
) -> ClipTransform:
    """Draw the clip's augmentation, as the official "choice_by_clip" resize and "flip_by_clip" flip.

    The shortest side is one of `min_sizes` (chosen once per clip), the longest side capped at `max_size`,
    rounded as detectron2 does. With `crop_range = (lo, hi)`, a crop of height and width each drawn in
    [min(side, lo), min(side, hi)] (detectron2's "absolute_range") is taken first at a random place;
    unlike the official per-frame crop, it is the same for every frame of the clip.
    """
    crop = None
    if crop_range is not None:
        crop_height = _randint(min(height, crop_range[0]), min(height, crop_range[1]), generator)
        crop_width = _randint(min(width, crop_range[0]), min(width, crop_range[1]), generator)
        top = _randint(0, height - crop_height, generator)
        left = _randint(0, width - crop_width, generator)
        crop = (top, left, crop_height, crop_width)
        height, width = crop_height, crop_width
    shortest = min_sizes[_randint(0, len(min_sizes) - 1, generator)]
    size = get_resize_output_size(height, width, shortest, max_size)
    flip = bool(torch.rand((), generator=generator) < flip_prob)
    return ClipTransform(crop=crop, size=size, flip=flip)


def _randint(low: int, high: int, generator: torch.Generator | None) -> int:
    """A uniform integer in [low, high], both included."""
    return int(torch.randint(low, high + 1, (1,), generator=generator))


def apply_clip_transform(
    transform: ClipTransform, frames: torch.Tensor, masks: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Apply one clip transform to (T, 3, H, W) uint8 frames and (N, T, H, W) bool masks.

    Frames are resized bilinearly with antialiasing (as the processor does), masks with nearest neighbour
    (torchvision's rule for `tv_tensors.Mask`).
    """
    num_instances, num_frames = masks.shape[:2]
    frames = _transform_tensor(transform, tv_tensors.Video(frames)).as_subclass(torch.Tensor)
    if num_instances == 0:
        return frames, masks.new_zeros((0, num_frames, *transform.size))
    flat_masks = tv_tensors.Mask(masks.flatten(0, 1).to(torch.uint8))  # (N * T, H, W)
    masks = _transform_tensor(transform, flat_masks).as_subclass(torch.Tensor)
    return frames, masks.reshape(num_instances, num_frames, *transform.size).bool()


def _transform_tensor(transform: ClipTransform, tensor: torch.Tensor) -> torch.Tensor:
    """Crop, resize and flip one tv_tensor; its type picks the interpolation."""
    if transform.crop is not None:
        tensor = v2.functional.crop(tensor, *transform.crop)
    tensor = v2.functional.resize(tensor, list(transform.size), antialias=True)
    return v2.functional.horizontal_flip(tensor) if transform.flip else tensor


class YTVISClipDataset(torch.utils.data.Dataset):
    """Training clips from a YouTube-VIS index, as the official `YTVISDatasetMapper` produces them.

    Each item is a clip of `num_frames` frames (see `sample_clip_frames`), augmented once per clip (see
    `sample_clip_transform`). Its instances are the non-crowd instances visible in at least one frame of
    the clip after augmentation; in frames where an instance is absent its mask is empty. Each instance
    keeps its own label (the official code labels an instance absent from the clip's last frame with the
    no-object class, a quirk not reproduced here).

    Items are dicts: `pixel_values_videos` (T, 3, h, w) uint8, `mask_labels` (N, T, h, w) bool,
    `class_labels` (N,) int64, `instance_ids` (N,) int64, `video_id` int, `frame_indices` list[int].
    Randomness comes from torch's global generator, which DataLoader seeds differently in each worker; a
    `generator` makes single-process loading reproducible (each worker would copy the same one).
    """

    def __init__(
        self,
        index: datasets.Dataset,
        *,
        image_root: str | os.PathLike | None = None,
        num_frames: int = DEFAULT_NUM_FRAMES,
        sampling_frame_range: int = DEFAULT_SAMPLING_FRAME_RANGE,
        sampling_frame_shuffle: bool = False,
        min_sizes: Sequence[int] = DEFAULT_MIN_SIZES,
        max_size: int = DEFAULT_MAX_SIZE,
        flip_prob: float = 0.5,
        crop_range: tuple[int, int] | None = None,
        generator: torch.Generator | None = None,
    ) -> None:
        if len(index) == 0:
            raise ValueError("the YouTube-VIS index has no videos")
        self.index = index
        self.image_root = Path(image_root if image_root is not None else index_image_root(index))
        self.num_frames = num_frames
        self.sampling_frame_range = sampling_frame_range
        self.sampling_frame_shuffle = sampling_frame_shuffle
        self.min_sizes = tuple(min_sizes)
        self.max_size = max_size
        self.flip_prob = flip_prob
        self.crop_range = crop_range
        self.generator = generator

    def __len__(self) -> int:
        return len(self.index)

    def __getitem__(self, item: int) -> dict:
        row = self.index[item]
        frame_indices = sample_clip_frames(
            row["length"], self.num_frames, self.sampling_frame_range, self.sampling_frame_shuffle, self.generator
        )
        instances = [instance for instance in row["instances"] if not instance["iscrowd"]]
        frames = read_frames(row, self.image_root, frame_indices)  # (T, 3, H, W)
        masks = decode_masks(row, instances, frame_indices)  # (N, T, H, W)
        transform = sample_clip_transform(
            row["height"],
            row["width"],
            min_sizes=self.min_sizes,
            max_size=self.max_size,
            flip_prob=self.flip_prob,
            crop_range=self.crop_range,
            generator=self.generator,
        )
        frames, masks = apply_clip_transform(transform, frames, masks)
        present = masks.flatten(1).any(dim=1)  # (N,): visible in at least one frame of the clip
        return {
            "pixel_values_videos": frames,
            "mask_labels": masks[present],
            "class_labels": torch.tensor([i["label"] for i in instances], dtype=torch.int64)[present],
            "instance_ids": torch.tensor([i["id"] for i in instances], dtype=torch.int64)[present],
            "video_id": row["video_id"],
            "frame_indices": frame_indices,
        }


# ----------------------------------------------------------------------------------------------------------------
# Whole videos for evaluation
# ----------------------------------------------------------------------------------------------------------------


class YTVISVideoDataset(torch.utils.data.Dataset):
    """Whole videos from a YouTube-VIS index, at their original size, for inference and evaluation.

    Frames are not resized: pass them to the video processor (which resizes to the test size, normalises
    and pads) and post-process to `original_size`. Items are dicts: `pixel_values_videos` (T, 3, H, W)
    uint8, `video_id` int, `original_size` (H, W), `file_names`, and with `with_ground_truth` (the
    default) `mask_labels` (N, T, H, W) bool (empty where absent), `class_labels` (N,) int64,
    `instance_ids` (N,) int64 and `iscrowd` (N,) bool for every annotated instance.
    """

    def __init__(
        self, index: datasets.Dataset, *, image_root: str | os.PathLike | None = None, with_ground_truth: bool = True
    ) -> None:
        self.index = index
        self.image_root = Path(image_root if image_root is not None else index_image_root(index))
        self.with_ground_truth = with_ground_truth

    def __len__(self) -> int:
        return len(self.index)

    def __getitem__(self, item: int) -> dict:
        row = self.index[item]
        frame_indices = list(range(row["length"]))
        result = {
            "pixel_values_videos": read_frames(row, self.image_root, frame_indices),
            "video_id": row["video_id"],
            "original_size": (row["height"], row["width"]),
            "file_names": row["file_names"],
        }
        if self.with_ground_truth:
            instances = row["instances"]
            result["mask_labels"] = decode_masks(row, instances, frame_indices)
            result["class_labels"] = torch.tensor([i["label"] for i in instances], dtype=torch.int64)
            result["instance_ids"] = torch.tensor([i["id"] for i in instances], dtype=torch.int64)
            result["iscrowd"] = torch.tensor([i["iscrowd"] for i in instances], dtype=torch.bool)
        return result


# ----------------------------------------------------------------------------------------------------------------
# Batching
# ----------------------------------------------------------------------------------------------------------------


class YTVISCollator:
    """Batch training clips into the model's inputs, with the project's video processor.

    Returns a dict: `pixel_values_videos` (B, T, 3, Hp, Wp) float32 normalised and zero-padded at the
    bottom/right to a multiple of 32, `pixel_mask` (B, Hp, Wp), `mask_labels` (list of (N_b, T, Hp, Wp)
    float32, zero in the padding) and `class_labels` (list of (N_b,) int64). Clips are already resized, so
    the processor only normalises and pads (`do_resize=False`). A class (not a closure) so that it
    pickles into DataLoader workers.
    """

    def __init__(self, processor: Mask2FormerVideoProcessor | None = None) -> None:
        self.processor = processor if processor is not None else Mask2FormerVideoProcessor()

    def __call__(self, batch: list[dict]) -> dict:
        if not batch:
            raise ValueError("cannot collate an empty batch")
        inputs = self.processor([clip["pixel_values_videos"] for clip in batch], do_resize=False, return_tensors="pt")
        padded_height, padded_width = inputs["pixel_values_videos"].shape[-2:]
        mask_labels = []
        for clip in batch:
            masks = clip["mask_labels"]  # (N, T, h, w)
            padded = masks.new_zeros((*masks.shape[:2], padded_height, padded_width), dtype=torch.float32)
            padded[..., : masks.shape[-2], : masks.shape[-1]] = masks
            mask_labels.append(padded)
        return {
            "pixel_values_videos": inputs["pixel_values_videos"],
            "pixel_mask": inputs["pixel_mask"],
            "mask_labels": mask_labels,
            "class_labels": [clip["class_labels"] for clip in batch],
        }


__all__ = [
    "ClipTransform",
    "YTVISClipDataset",
    "YTVISCollator",
    "YTVISVideoDataset",
    "apply_clip_transform",
    "build_ytvis_index",
    "decode_masks",
    "index_categories",
    "index_image_root",
    "read_frames",
    "sample_clip_frames",
    "sample_clip_transform",
]
