"""The training clips of a run: the split folder, and a sampler that makes clip `n` a function of `(seed, n)` only.

So the clips of a step do not depend on the number of processes, on gradient accumulation or on DataLoader workers,
and a resumed run sees exactly the clips the uninterrupted run would have seen.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path, PureWindowsPath
from typing import Any

import numpy as np
import torch
from accelerate import Accelerator

from ..errors import UserInputError
from ..processing.video_processing_m2f_video import Mask2FormerVideoProcessor
from ..processing.ytvis_dataset import YTVISClipDataset, YTVISCollator, build_ytvis_index, index_categories
from ..ytvis.rle import decode_rle_strings
from .config import TrainingConfig


@dataclass
class YTVISSplit:
    """A YouTube-VIS-format split folder: its annotation file and its index (see `build_ytvis_index`)."""

    path: Path
    annotation_file: Path
    index: Any

    @property
    def categories(self) -> list[dict]:
        """The split's categories, each with its JSON `id`, `name` and contiguous model `label`."""
        return index_categories(self.index)


def load_split(path: str | os.PathLike, option: str = "data") -> YTVISSplit:
    """Read and check a split folder (`instances.json` + `JPEGImages/`) before any training starts.

    Besides the reader's own checks (`build_ytvis_index`: frame counts, sizes, missing frames, unknown
    categories), every video, category and annotation must have an integer `id`, every frame file must lie
    inside `JPEGImages/` (no absolute paths, no `..`), and every compressed RLE string must decode to its frame,
    so that bad data is reported now, with its place, and not as a crash hours into training.

    Raises:
        UserInputError: naming the option (a missing folder or file), or the annotation file and the record.
    """
    path = Path(path)
    if not path.is_dir():
        raise UserInputError(f"{option}: {path} is not a folder")
    annotation_file = path / "instances.json"
    if not annotation_file.is_file():
        raise UserInputError(
            f"{option}: {path} has no instances.json (expected {path}/instances.json and JPEGImages/)"
        )
    if not (path / "JPEGImages").is_dir():
        raise UserInputError(f"{option}: {path} has no JPEGImages/ folder")
    content = _read_annotation_file(annotation_file)
    _check_records(content, annotation_file)
    try:
        index = build_ytvis_index(content, path / "JPEGImages")
    except ValueError as error:
        raise UserInputError(f"{annotation_file}: {error}") from error
    _check_rle_strings(index, annotation_file)
    if len(index) == 0:
        raise UserInputError(f"{annotation_file}: lists no videos")
    return YTVISSplit(path=path, annotation_file=annotation_file, index=index)


def _read_annotation_file(annotation_file: Path) -> dict:
    """The annotation file's JSON object; malformed JSON is a UserInputError naming the file."""
    try:
        content = json.loads(annotation_file.read_bytes())
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise UserInputError(f"{annotation_file}: not valid JSON ({error})") from error
    if not isinstance(content, dict):
        raise UserInputError(f"{annotation_file}: must hold a JSON object with videos, categories and annotations")
    for key in ("videos", "categories", "annotations"):
        if not isinstance(content.get(key) or [], list):
            raise UserInputError(f"{annotation_file}: '{key}' must be a list")
    return content


def _check_records(content: dict, annotation_file: Path) -> None:
    """Every record is an object with an integer `id`, and every video's frame files stay inside `JPEGImages/`."""
    for key in ("videos", "categories", "annotations"):
        for i, record in enumerate(content.get(key) or []):
            if not isinstance(record, dict):
                raise UserInputError(f"{annotation_file}: {key}[{i}] must be an object")
            if not _is_int(record.get("id")):
                where = f"{key}[{i}]" + (f" (video_id {record.get('video_id')})" if key == "annotations" else "")
                raise UserInputError(f"{annotation_file}: {where} has no integer 'id' (got {record.get('id')!r})")
    for video in content.get("videos") or []:
        file_names = video.get("file_names")
        for t, file_name in enumerate(file_names if isinstance(file_names, list) else []):
            if not _inside_image_root(file_name):
                raise UserInputError(
                    f"{annotation_file}: video {video['id']}: file_names[{t}] {file_name!r} is not a relative "
                    "path inside JPEGImages/ (absolute paths and '..' are refused)"
                )


def _inside_image_root(file_name: Any) -> bool:
    """Whether a `file_names` entry is a relative path without `..`, so that it names a file under the image root.

    Read with Windows rules, so that backslashes, drives and roots count too (a name like `C:x` or `\\x` is
    refused everywhere).
    """
    if not isinstance(file_name, str) or not file_name:
        return False
    path = PureWindowsPath(file_name)
    return not (path.drive or path.root or ".." in path.parts)


def _check_rle_strings(index: Any, annotation_file: Path) -> None:
    """Decode-check every compressed RLE string of the index at once: well formed and covering its frame exactly.

    The reader keeps compressed strings as they are, and pycocotools would only fail on a bad one when a clip
    showing that frame is decoded, naming no video.
    """
    strings, totals, places = [], [], []
    columns = index.select_columns(["video_id", "height", "width", "file_names", "instances"])[:]
    for video_id, height, width, file_names, instances in zip(*columns.values(), strict=True):
        for instance in instances:
            for t, counts in enumerate(instance["segmentations"]):
                if counts is not None:
                    strings.append(counts)
                    totals.append(height * width)
                    places.append((video_id, instance["id"], t, file_names[t]))
    runs, owner, well_formed = decode_rle_strings([counts.encode("ascii", errors="replace") for counts in strings])
    is_ascii = np.array([counts.isascii() for counts in strings], dtype=bool)
    covered = np.bincount(owner, weights=runs, minlength=len(strings)) == np.array(totals)
    bad = np.flatnonzero(~(well_formed & covered & is_ascii))
    if bad.size:
        video_id, annotation_id, t, file_name = places[bad[0]]
        counts = strings[bad[0]]
        shown = repr(counts if len(counts) <= 40 else counts[:40] + "...")
        raise UserInputError(
            f"{annotation_file}: video {video_id}, annotation {annotation_id}: segmentations[{t}] (frame "
            f"{file_name}): invalid compressed RLE counts {shown} (malformed, or runs not covering the "
            f"{totals[bad[0]]} pixels of the frame)"
        )


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _mixed_seed(*numbers: int) -> int:
    """A 63-bit seed that mixes several integers well (numpy's SeedSequence)."""
    return int(np.random.SeedSequence(list(numbers)).generate_state(2, np.uint64)[0] >> np.uint64(1))


class SeededClipDataset(torch.utils.data.Dataset):
    """Wraps a `YTVISClipDataset` so that clip number `n` of a run is augmented by a generator seeded by (seed, n).

    Items are addressed by `(video_index, sample_number)` pairs, as `ClipSampler` yields them. The inner
    dataset draws all its randomness from its `generator` attribute, which is replaced per item; DataLoader
    workers each hold their own copy of the dataset, so this is safe with any number of workers.
    """

    def __init__(self, clips: YTVISClipDataset, seed: int) -> None:
        self.clips = clips
        self.seed = seed

    def __len__(self) -> int:
        return len(self.clips)

    def __getitem__(self, key: tuple[int, int]) -> dict:
        video_index, sample_number = key
        self.clips.generator = torch.Generator().manual_seed(_mixed_seed(self.seed, sample_number))
        return self.clips[video_index]


class ClipSampler(torch.utils.data.Sampler):
    """The endless stream of `(video_index, sample_number)` of one process, from optimizer step `start_step` on.

    Sample numbers count the clips of the whole run: step s, micro-batch a, process r, position j in the
    micro-batch is clip `s * G + (a * P + r) * B + j`, with G = P * B * A clips per step (P processes, B clips
    per micro-batch, A micro-batches per step). Clip n is video `permutation(epoch)[n mod V]` with
    `epoch = n // V`, each epoch's permutation of the V videos drawn from (seed, epoch).
    """

    def __init__(
        self,
        num_videos: int,
        seed: int,
        *,
        start_step: int = 0,
        num_processes: int = 1,
        process_index: int = 0,
        per_device_batch: int = 1,
        grad_accum: int = 1,
    ) -> None:
        self.num_videos = num_videos
        self.seed = seed
        self.start_step = start_step
        self.num_processes = num_processes
        self.process_index = process_index
        self.per_device_batch = per_device_batch
        self.grad_accum = grad_accum
        self._epoch, self._permutation = -1, None

    def video_of(self, sample_number: int) -> int:
        """The video index of clip `sample_number`."""
        epoch = sample_number // self.num_videos
        if epoch != self._epoch:
            generator = torch.Generator().manual_seed(_mixed_seed(self.seed, epoch, 1))
            self._epoch, self._permutation = epoch, torch.randperm(self.num_videos, generator=generator).tolist()
        return self._permutation[sample_number % self.num_videos]

    def __iter__(self) -> Iterator[tuple[int, int]]:
        clips_per_step = self.num_processes * self.per_device_batch * self.grad_accum
        step = self.start_step
        while True:
            for micro_batch in range(self.grad_accum):
                first = (
                    step * clips_per_step
                    + (micro_batch * self.num_processes + self.process_index) * self.per_device_batch
                )
                for sample_number in range(first, first + self.per_device_batch):
                    yield self.video_of(sample_number), sample_number
            step += 1


def build_clip_loader(
    cfg: TrainingConfig,
    split: YTVISSplit,
    processor: Mask2FormerVideoProcessor,
    accelerator: Accelerator,
    start_step: int = 0,
) -> torch.utils.data.DataLoader:
    """The endless DataLoader of this process's training micro-batches, from optimizer step `start_step` on."""
    per_device_batch = per_device_batch_size(cfg.batch_size, accelerator.num_processes, cfg.grad_accum)
    clips = YTVISClipDataset(
        split.index,
        num_frames=cfg.num_frames,
        sampling_frame_range=cfg.sampling_frame_range,
        min_sizes=cfg.min_sizes,
        max_size=cfg.max_size,
        crop_range=cfg.crop_range,
    )
    sampler = ClipSampler(
        len(clips),
        cfg.seed,
        start_step=start_step,
        num_processes=accelerator.num_processes,
        process_index=accelerator.process_index,
        per_device_batch=per_device_batch,
        grad_accum=cfg.grad_accum,
    )
    return torch.utils.data.DataLoader(
        SeededClipDataset(clips, cfg.seed),
        batch_size=per_device_batch,
        sampler=sampler,
        collate_fn=YTVISCollator(processor),
        num_workers=cfg.num_workers,
        pin_memory=accelerator.device.type == "cuda",
        # The loader's own generator: creating its iterator must not consume the global RNG that resume restores.
        generator=torch.Generator().manual_seed(cfg.seed),
    )


def per_device_batch_size(batch_size: int, num_processes: int, grad_accum: int) -> int:
    """Clips per process and micro-batch; the global batch must split evenly."""
    if batch_size < 1 or grad_accum < 1:
        raise UserInputError(f"--batch-size {batch_size} --grad-accum {grad_accum}: both must be >= 1")
    if batch_size % (num_processes * grad_accum):
        raise UserInputError(
            f"--batch-size {batch_size}: does not split over {num_processes} process(es) x {grad_accum} "
            "accumulation step(s); choose a multiple of their product"
        )
    return batch_size // (num_processes * grad_accum)


def batch_to_device(batch: dict[str, Any], device: torch.device) -> dict[str, Any]:
    """Moves the tensors of a collated batch (and of its lists of tensors) to `device`."""
    moved = {}
    for key, value in batch.items():
        if isinstance(value, torch.Tensor):
            moved[key] = value.to(device, non_blocking=True)
        elif isinstance(value, list):
            moved[key] = [item.to(device, non_blocking=True) for item in value]
        else:
            moved[key] = value
    return moved
