"""Training the video Mask2Former with Accelerate: the paper's recipe, one GPU or many, exactly resumable.

The recipe is the official one (Mask2Former's `configs/youtubevis_20{19,21}/Base-YouTubeVIS-...yaml` and its
`build_optimizer`): AdamW with lr 1e-4 and weight decay 0.05; the backbone at 0.1 x lr; no weight decay on
normalisation layers and embeddings; the learning rate x0.1 at the decay steps (4000 of 6000 steps for
YouTube-VIS 2019, 5500 of 8000 for 2021), after a linear warmup (10 steps from factor 1.0, which the official
configs make a no-op); gradient clipping of the whole model's norm at 0.01; batches of 16 clips of 2 frames;
mixed precision on GPU. Every number is a field of [`TrainingConfig`].

Design choices that make runs reproducible and distributable:

- `batch_size` is the *global* number of clips per optimizer step, as the official `IMS_PER_BATCH`; each
  process takes `batch_size / (num_processes * grad_accum)` clips per micro-batch.
- Clip `n` of the run (counted over all processes and steps) is a function of `(seed, n)` only: the video
  comes from a per-epoch permutation seeded by `(seed, epoch)` and its augmentation from a generator seeded by
  `(seed, n)`. So the clips of a step do not depend on the number of processes, on gradient accumulation or on
  DataLoader workers, and a resumed run sees exactly the clips the uninterrupted run would have seen.
- Checkpoints are `accelerator.save_state` folders (model, optimizer, schedule and every process's RNG states)
  plus the step, so `resume` continues the same loss trajectory.
- Evaluation splits the videos over the processes (video i goes to process i mod P, so none is duplicated) and
  gathers their predictions with `gather_object` before computing the YouTube-VIS metric on the main process.
"""

from __future__ import annotations

import bisect
import dataclasses
import json
import logging
import os
import shutil
import tempfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from accelerate import Accelerator
from accelerate.utils import broadcast_object_list, gather_object, set_seed
from torch import nn
from tqdm.auto import tqdm

from .configuration import Mask2FormerVideoConfig
from .configuration.presets import PRESETS
from .modeling_m2f_video import Mask2FormerVideoForVideoInstanceSegmentation
from .processing.video_processing_m2f_video import Mask2FormerVideoProcessor
from .processing.ytvis_data import (
    YTVISClipDataset,
    YTVISCollator,
    YTVISVideoDataset,
    build_ytvis_index,
    index_categories,
)
from .ytvis_eval import evaluate_ytvis
from .ytvis_io import predictions_to_records, write_submission_zip

logger = logging.getLogger(__name__)

# Official schedules: total optimizer steps and the steps where the learning rate drops x0.1 (batch 16).
SCHEDULES = {"ytvis2019": (6000, (4000,)), "ytvis2021": (8000, (5500,))}
METRIC_KEYS = ("AP", "AP50", "AP75", "APs", "APm", "APl", "AR1", "AR10", "AR100", "ARs", "ARm", "ARl")
CHECKPOINTS_DIR = "checkpoints"
STATE_FILE = "training_state.json"
LOG_FILE = "log.jsonl"
NORM_TYPES = (
    nn.BatchNorm1d,
    nn.BatchNorm2d,
    nn.BatchNorm3d,
    nn.SyncBatchNorm,
    nn.GroupNorm,
    nn.InstanceNorm1d,
    nn.InstanceNorm2d,
    nn.InstanceNorm3d,
    nn.LayerNorm,
    nn.LocalResponseNorm,
)
# Parameters that are embeddings without being `nn.Embedding` modules (Swin's tables, the pixel decoder's).
EMBEDDING_PARAMETER_NAMES = (
    "level_embed",
    "relative_position_bias_table",
    "absolute_pos_embed",
    "position_embeddings",
)


@dataclass
class TrainingConfig:
    """Everything a training run needs; the defaults are the paper's recipe (see the module docstring).

    Data and model:
        train_data: a YouTube-VIS-format split folder holding `instances.json` and `JPEGImages/`.
        output_dir: where checkpoints, logs, the final model folder and `eval.json` go.
        eval_data: a split folder to evaluate on at the end (and every `eval_every` steps).
        init: a model folder (converted video model or transformers image Mask2Former) to start from, or a
            preset name (random weights of that architecture). With neither `init` nor `config`, the
            `r50-ytvis2019` architecture is trained from scratch.
        config: a JSON file of a `Mask2FormerVideoConfig` (random weights).
        test_size: shortest side at evaluation; default: the model config's `test_shortest_edge`.

    Schedule and optimizer:
        schedule: "ytvis2019" (6000 steps, decay at 4000) or "ytvis2021" (8000, decay at 5500).
        max_steps: optimizer steps; default: the schedule's. Decay steps scale with it unless given.
        decay_steps: steps where the learning rate is multiplied by `decay_gamma`.
        batch_size: clips per optimizer step over all processes and accumulation micro-batches.
        grad_accum: micro-batches per optimizer step.
        warmup_iters, warmup_factor: linear warmup from `warmup_factor` x lr to lr over `warmup_iters` steps.
        clip_grad_norm: maximum L2 norm of the whole model's gradient (0 disables clipping).
        mixed_precision: "auto" (bf16 on GPUs that support it, else fp16 on GPU, none on CPU, or what
            `accelerate launch --mixed_precision` says), "no", "fp16" or "bf16".

    Clips (the official training mapper):
        num_frames, sampling_frame_range, min_sizes, max_size, crop_range: see `YTVISClipDataset`.

    Bookkeeping:
        save_every: checkpoint period in steps (0: only at the end); keep_checkpoints: how many to keep.
        eval_every: evaluation period in steps (0: only at the end).
        resume: continue from the latest checkpoint in `output_dir` (True) or from a given checkpoint folder.
        log_with: Accelerate tracker(s) ("tensorboard", "wandb", "all", ...); None logs only to `log.jsonl`.
    """

    train_data: str
    output_dir: str
    eval_data: str | None = None
    init: str | None = None
    config: str | None = None
    test_size: int | None = None

    schedule: str = "ytvis2019"
    max_steps: int | None = None
    decay_steps: tuple[int, ...] | None = None
    decay_gamma: float = 0.1
    batch_size: int = 16
    grad_accum: int = 1
    lr: float = 1e-4
    weight_decay: float = 0.05
    backbone_multiplier: float = 0.1
    warmup_iters: int = 10
    warmup_factor: float = 1.0
    clip_grad_norm: float = 0.01
    mixed_precision: str = "auto"
    cpu: bool = False

    num_frames: int = 2
    sampling_frame_range: int = 20
    min_sizes: tuple[int, ...] = (360, 480)
    max_size: int = 1333
    crop_range: tuple[int, int] | None = None

    seed: int = 0
    num_workers: int = 4
    save_every: int = 1000
    keep_checkpoints: int = 2
    eval_every: int = 0
    log_every: int = 20
    log_with: str | list[str] | None = None
    resume: bool | str = False
    progress: bool = True

    def resolved_steps(self) -> tuple[int, tuple[int, ...]]:
        """The number of steps and the decay steps, filled in from the official schedule where not given."""
        if self.schedule not in SCHEDULES:
            raise ValueError(f"unknown schedule {self.schedule!r}; choose one of {', '.join(SCHEDULES)}")
        official_steps, official_decay = SCHEDULES[self.schedule]
        max_steps = official_steps if self.max_steps is None else self.max_steps
        if max_steps < 0:
            raise ValueError(f"max_steps must be >= 0, got {max_steps}")
        if self.decay_steps is not None:
            return max_steps, tuple(sorted(self.decay_steps))
        return max_steps, tuple(round(step * max_steps / official_steps) for step in official_decay)


@dataclass
class TrainingResult:
    """What `train` returns: the final folder, the step reached, this run's per-step losses and the metric."""

    output_dir: Path
    step: int
    losses: list[float] = field(default_factory=list)
    metrics: dict[str, float] | None = None


# ----------------------------------------------------------------------------------------------------------------
# Data
# ----------------------------------------------------------------------------------------------------------------


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
    """Read a split folder (`instances.json` + `JPEGImages/`); errors name the option and what is missing."""
    path = Path(path)
    if not path.is_dir():
        raise ValueError(f"{option}: {path} is not a folder")
    annotation_file = path / "instances.json"
    if not annotation_file.is_file():
        raise ValueError(f"{option}: {path} has no instances.json (expected {path}/instances.json and JPEGImages/)")
    if not (path / "JPEGImages").is_dir():
        raise ValueError(f"{option}: {path} has no JPEGImages/ folder")
    try:
        index = build_ytvis_index(annotation_file, path / "JPEGImages")
    except ValueError as error:
        raise ValueError(f"{option}: {error}") from error
    if len(index) == 0:
        raise ValueError(f"{option}: {annotation_file} lists no videos")
    return YTVISSplit(path=path, annotation_file=annotation_file, index=index)


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
        raise ValueError(f"batch_size and grad_accum must be >= 1, got {batch_size} and {grad_accum}")
    if batch_size % (num_processes * grad_accum):
        raise ValueError(
            f"batch_size {batch_size} does not split over {num_processes} process(es) x {grad_accum} "
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


# ----------------------------------------------------------------------------------------------------------------
# Model, optimizer and schedule
# ----------------------------------------------------------------------------------------------------------------


def build_model(
    cfg: TrainingConfig, categories: Sequence[dict]
) -> tuple[Mask2FormerVideoForVideoInstanceSegmentation, Mask2FormerVideoProcessor]:
    """The model to train (labelled with the training data's categories) and its processor.

    `cfg.init` is a preset name (random weights), a video model folder, or a transformers image Mask2Former
    folder (converted on the fly); `cfg.config` a JSON config (random weights). When the checkpoint's label set
    differs from the data's, its class head is re-initialised and everything else is kept.
    """
    if cfg.init and cfg.config:
        raise ValueError("give --init or --config, not both")
    id2label = {category["label"]: category["name"] for category in categories}
    labels = {"id2label": id2label, "label2id": {name: label for label, name in id2label.items()}}
    extra = {"num_frames": cfg.num_frames}
    if cfg.test_size is not None:
        extra["test_shortest_edge"] = cfg.test_size

    if cfg.config:
        model = Mask2FormerVideoForVideoInstanceSegmentation(_config_from_json(cfg.config, {**labels, **extra}))
        return model, Mask2FormerVideoProcessor.from_model_config(model.config)
    init = cfg.init or "r50-ytvis2019"
    if init in PRESETS:
        model = Mask2FormerVideoForVideoInstanceSegmentation(
            Mask2FormerVideoConfig.from_preset(init, **labels, **extra)
        )
        return model, Mask2FormerVideoProcessor.from_model_config(model.config)
    if not Path(init).is_dir():
        raise ValueError(f"--init {init}: no such folder, and not a preset (presets: {', '.join(PRESETS)})")
    return _model_from_folder(Path(init), id2label, extra)


def _config_from_json(path: str, overrides: dict) -> Mask2FormerVideoConfig:
    """A config from a JSON file, with the data's labels; errors name the file."""
    if not Path(path).is_file():
        raise ValueError(f"--config {path}: no such file")
    try:
        values = json.loads(Path(path).read_text(encoding="utf-8"))
    except json.JSONDecodeError as error:
        raise ValueError(f"--config {path}: not valid JSON ({error})") from error
    values = {key: value for key, value in values.items() if key not in ("model_type", "transformers_version")}
    return Mask2FormerVideoConfig.from_dict({**values, **overrides})


def _model_from_folder(
    folder: Path, id2label: dict[int, str], extra: dict
) -> tuple[Mask2FormerVideoForVideoInstanceSegmentation, Mask2FormerVideoProcessor]:
    """Loads a video or image Mask2Former folder; re-initialises the class head when the labels change."""
    config_file = folder / "config.json"
    if not config_file.is_file():
        raise ValueError(f"--init {folder}: no config.json, so not a model folder")
    model_type = json.loads(config_file.read_text(encoding="utf-8")).get("model_type")
    if model_type == "mask2former":
        from .conversion.image import convert_image_checkpoint

        with tempfile.TemporaryDirectory() as converted:
            convert_image_checkpoint(folder, Path(converted) / "model", id2label=id2label)
            return _model_from_folder(Path(converted) / "model", id2label, extra)
    if model_type != Mask2FormerVideoConfig.model_type:
        raise ValueError(f"--init {folder}: model_type {model_type!r} is not a (video) Mask2Former")

    model = Mask2FormerVideoForVideoInstanceSegmentation.from_pretrained(folder)
    if {int(label): name for label, name in model.config.id2label.items()} != id2label:
        model = _with_new_class_head(model, id2label)
    for key, value in extra.items():
        setattr(model.config, key, value)
    try:
        processor = Mask2FormerVideoProcessor.from_pretrained(folder)
    except OSError:
        processor = Mask2FormerVideoProcessor.from_model_config(model.config)
    if "test_shortest_edge" in extra:
        processor.size = {"shortest_edge": extra["test_shortest_edge"], "longest_edge": processor.size["longest_edge"]}
    return model, processor


def _with_new_class_head(
    model: Mask2FormerVideoForVideoInstanceSegmentation, id2label: dict[int, str]
) -> Mask2FormerVideoForVideoInstanceSegmentation:
    """A copy of `model` for the label set `id2label`: same weights, freshly initialised class head."""
    from .conversion.image import CLASS_HEAD_KEYS

    config = model.config
    config.id2label = id2label
    config.label2id = {name: label for label, name in id2label.items()}
    new_model = Mask2FormerVideoForVideoInstanceSegmentation(config)
    state = {key: value for key, value in model.state_dict().items() if key not in CLASS_HEAD_KEYS}
    missing, unexpected = new_model.load_state_dict(state, strict=False)
    if unexpected or set(missing) - set(CLASS_HEAD_KEYS):
        raise ValueError(f"cannot re-head the checkpoint: missing {missing}, unexpected {unexpected}")
    return new_model


def parameter_groups(
    model: Mask2FormerVideoForVideoInstanceSegmentation, lr: float, weight_decay: float, backbone_multiplier: float
) -> list[dict]:
    """AdamW parameter groups of the official `build_optimizer`.

    Backbone parameters (`model.model.pixel_level_module.encoder`) get `lr * backbone_multiplier`; the
    parameters of normalisation layers and embeddings (`nn.Embedding` modules, and parameters named like
    `EMBEDDING_PARAMETER_NAMES`) get no weight decay. Frozen parameters are left out.
    """
    backbone = {id(param) for param in model.model.pixel_level_module.encoder.parameters()}
    groups: dict[tuple[float, float], list[nn.Parameter]] = {}
    seen: set[int] = set()
    for module in model.modules():
        for name, param in module.named_parameters(recurse=False):
            if not param.requires_grad or id(param) in seen:
                continue
            seen.add(id(param))
            no_decay = isinstance(module, NORM_TYPES + (nn.Embedding,)) or name in EMBEDDING_PARAMETER_NAMES
            key = (lr * backbone_multiplier if id(param) in backbone else lr, 0.0 if no_decay else weight_decay)
            groups.setdefault(key, []).append(param)
    return [{"params": params, "lr": group_lr, "weight_decay": decay} for (group_lr, decay), params in groups.items()]


@dataclass
class StepSchedule:
    """Learning-rate factor at optimizer step s, as detectron2's `WarmupMultiStepLR` (linear warmup).

    `gamma ** (number of decay steps <= s)`, times `warmup_factor * (1 - s / warmup_iters) + s / warmup_iters`
    during the first `warmup_iters` steps. A callable object (not a lambda) so that `LambdaLR` saves it.
    """

    decay_steps: tuple[int, ...]
    gamma: float = 0.1
    warmup_iters: int = 10
    warmup_factor: float = 1.0

    def __call__(self, step: int) -> float:
        factor = self.gamma ** bisect.bisect_right(self.decay_steps, step)
        if step < self.warmup_iters:
            alpha = step / self.warmup_iters
            factor *= self.warmup_factor * (1 - alpha) + alpha
        return factor


def resolve_mixed_precision(choice: str) -> str | None:
    """The Accelerate mixed-precision mode for `choice`; "auto" defers to `accelerate launch`, else picks by device."""
    if choice != "auto":
        return choice
    if os.environ.get("ACCELERATE_MIXED_PRECISION"):
        return None  # Accelerator reads the launcher's choice
    if torch.cuda.is_available():
        return "bf16" if torch.cuda.is_bf16_supported() else "fp16"
    return "no"


# ----------------------------------------------------------------------------------------------------------------
# Evaluation
# ----------------------------------------------------------------------------------------------------------------


@torch.no_grad()
def predict_split(
    model: Mask2FormerVideoForVideoInstanceSegmentation,
    processor: Mask2FormerVideoProcessor,
    split: YTVISSplit,
    accelerator: Accelerator,
    progress: bool = True,
) -> list[dict]:
    """YouTube-VIS submission records of every video of `split`, gathered from all processes on every process.

    Video i is predicted by process `i mod num_processes`, whole (all its frames in one clip, as the official
    inference), with the model's `test_top_k` and the processor's test size.
    """
    model = accelerator.unwrap_model(model)
    label_to_category = _label_to_category(model.config, split)
    videos = YTVISVideoDataset(split.index, with_ground_truth=False)
    shard = range(accelerator.process_index, len(videos), accelerator.num_processes)
    was_training = model.training
    model.eval()
    records = []
    for item in tqdm(shard, desc="evaluating", disable=not (progress and accelerator.is_local_main_process)):
        video = videos[item]
        inputs = processor(video["pixel_values_videos"], return_tensors="pt").to(accelerator.device)
        with accelerator.autocast():
            outputs = model(pixel_values_videos=inputs["pixel_values_videos"], pixel_mask=inputs["pixel_mask"])
        prediction = processor.post_process_video_instance_segmentation(
            outputs,
            target_sizes=[video["original_size"]],
            top_k=model.config.test_top_k,
            resized_sizes=inputs["resized_sizes"],
        )[0]
        prediction = {key: value.cpu() for key, value in prediction.items()}
        records.extend(predictions_to_records(prediction, video["video_id"], label_to_category))
    model.train(was_training)
    return gather_object(records)


def _label_to_category(config: Mask2FormerVideoConfig, split: YTVISSplit) -> list[int]:
    """The split's category id of each model label; the model must have been trained on these categories."""
    categories = sorted(split.categories, key=lambda category: category["label"])
    if len(categories) != config.num_labels:
        raise ValueError(
            f"evaluation data {split.path} has {len(categories)} categories but the model predicts {config.num_labels}"
        )
    return [category["id"] for category in categories]


def evaluate_split(
    model: Mask2FormerVideoForVideoInstanceSegmentation,
    processor: Mask2FormerVideoProcessor,
    split: YTVISSplit,
    accelerator: Accelerator,
    progress: bool = True,
    submission_dir: Path | None = None,
) -> dict[str, float] | None:
    """The 12 YouTube-VIS numbers of the model on `split` (on every process); `None` when it has no ground truth.

    A split without annotations (such as the official valid sets) gets its predictions written as the
    server's submission zip, `submission_dir/results.zip`, instead. The global RNG is left untouched, so
    evaluating during training does not change the training trajectory.
    """
    with torch.random.fork_rng(devices=[accelerator.device] if accelerator.device.type == "cuda" else []):
        records = predict_split(model, processor, split, accelerator, progress)
    metrics = None
    if accelerator.is_main_process:
        annotations = json.loads(split.annotation_file.read_text(encoding="utf-8"))
        if annotations.get("annotations"):
            stats = evaluate_ytvis(annotations, records).stats
            metrics = {key: float(stats[key]) for key in METRIC_KEYS}
        elif submission_dir is not None:
            path = write_submission_zip(records, submission_dir / "results.zip")
            logger.warning("%s has no annotations: wrote the predictions to %s", split.annotation_file, path)
    return broadcast_object_list([metrics])[0]


# ----------------------------------------------------------------------------------------------------------------
# The training loop
# ----------------------------------------------------------------------------------------------------------------


def build_accelerator(cfg: TrainingConfig) -> Accelerator:
    """The Accelerator of a run: mixed precision, accumulation, trackers; the schedule steps once per update."""
    return Accelerator(
        mixed_precision=resolve_mixed_precision(cfg.mixed_precision),
        gradient_accumulation_steps=cfg.grad_accum,
        log_with=cfg.log_with,
        project_dir=cfg.output_dir,
        cpu=cfg.cpu,
        step_scheduler_with_optimizer=False,
    )


def forward_backward(
    model: nn.Module, batch: dict[str, Any], accelerator: Accelerator
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """One micro-batch: the loss, its backward pass (gradients all-reduced by DDP on sync steps) and the terms."""
    with accelerator.accumulate(model):
        outputs = model(**batch_to_device(batch, accelerator.device))
        accelerator.backward(outputs.loss)
    return outputs.loss.detach(), {name: value.detach() for name, value in outputs.loss_dict.items()}


def train(cfg: TrainingConfig, accelerator: Accelerator | None = None) -> TrainingResult:
    """Train (or resume) as `cfg` says; write checkpoints, the final model folder and `eval.json`.

    Returns the result on every process (metrics included). Raises ValueError with a clear message for bad
    input (missing data, unknown init, a batch that does not split over the processes, nothing to resume).
    """
    accelerator = accelerator or build_accelerator(cfg)
    output_dir = Path(cfg.output_dir)
    max_steps, decay_steps = cfg.resolved_steps()
    per_device_batch_size(cfg.batch_size, accelerator.num_processes, cfg.grad_accum)
    train_split = load_split(cfg.train_data, "--train-data")
    eval_split = load_split(cfg.eval_data, "--eval-data") if cfg.eval_data else None
    resume_dir = _resume_checkpoint(cfg, output_dir) if cfg.resume else None

    set_seed(cfg.seed)  # the same initial weights on every process
    model, processor = build_model(cfg, train_split.categories)
    optimizer = torch.optim.AdamW(parameter_groups(model, cfg.lr, cfg.weight_decay, cfg.backbone_multiplier))
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, StepSchedule(decay_steps, cfg.decay_gamma, cfg.warmup_iters, cfg.warmup_factor)
    )
    model, optimizer = accelerator.prepare(model, optimizer)
    accelerator.register_for_checkpointing(scheduler)
    set_seed(cfg.seed, device_specific=True)  # each process draws its own random points in the loss

    start_step = 0
    if resume_dir is not None:
        accelerator.load_state(str(resume_dir))
        start_step = json.loads((resume_dir / STATE_FILE).read_text())["step"]
        accelerator.print(f"resumed from {resume_dir} at step {start_step}")
    if cfg.log_with:
        accelerator.init_trackers("m2f-video-train", config=_tracker_config(cfg))

    losses = _train_steps(
        cfg, accelerator, model, optimizer, scheduler, processor, train_split, eval_split, start_step
    )
    metrics = None
    if eval_split is not None:
        metrics = evaluate_split(model, processor, eval_split, accelerator, cfg.progress, output_dir)
    _save_final(cfg, accelerator, model, processor, metrics)
    accelerator.end_training()
    return TrainingResult(output_dir=output_dir, step=max(max_steps, start_step), losses=losses, metrics=metrics)


def _train_steps(
    cfg: TrainingConfig,
    accelerator: Accelerator,
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    scheduler: torch.optim.lr_scheduler.LRScheduler,
    processor: Mask2FormerVideoProcessor,
    train_split: YTVISSplit,
    eval_split: YTVISSplit | None,
    start_step: int,
) -> list[float]:
    """Optimizer steps `start_step + 1 .. max_steps`, with logging, checkpoints and periodic evaluation."""
    max_steps, _ = cfg.resolved_steps()
    output_dir = Path(cfg.output_dir)
    losses: list[float] = []
    if start_step >= max_steps:
        return losses
    batches = iter(build_clip_loader(cfg, train_split, processor, accelerator, start_step))
    bar = tqdm(
        total=max_steps,
        initial=start_step,
        desc="training",
        disable=not (cfg.progress and accelerator.is_local_main_process),
    )
    model.train()
    for step in range(start_step + 1, max_steps + 1):
        step_loss, terms = torch.zeros((), device=accelerator.device), {}
        for _ in range(cfg.grad_accum):
            loss, loss_dict = forward_backward(model, next(batches), accelerator)
            step_loss += loss / cfg.grad_accum
            terms = {name: terms.get(name, 0) + value / cfg.grad_accum for name, value in loss_dict.items()}
        grad_norm = _clip_gradients(accelerator, model, cfg.clip_grad_norm)
        lr = max(group["lr"] for group in optimizer.param_groups)  # the head's; the backbone's is lower
        optimizer.step()
        scheduler.step()
        optimizer.zero_grad(set_to_none=True)

        record = _step_record(accelerator, step, step_loss, terms, grad_norm, lr)
        losses.append(record["loss"])
        bar.update(1)
        bar.set_postfix(loss=f"{record['loss']:.3f}", lr=f"{lr:.2e}")
        if cfg.eval_every and step % cfg.eval_every == 0 and step < max_steps and eval_split is not None:
            metrics = evaluate_split(model, processor, eval_split, accelerator, progress=False)
            record.update({f"eval/{key}": value for key, value in (metrics or {}).items()})
        _log(accelerator, cfg, output_dir, record)
        if (cfg.save_every and step % cfg.save_every == 0) or step == max_steps:
            save_checkpoint(accelerator, output_dir, step, cfg.keep_checkpoints)
    bar.close()
    return losses


def _clip_gradients(accelerator: Accelerator, model: nn.Module, max_norm: float) -> torch.Tensor:
    """Clips the whole model's gradient norm ("full_model" clipping); returns the norm before clipping."""
    if max_norm > 0:
        return accelerator.clip_grad_norm_(model.parameters(), max_norm)
    grads = [param.grad.detach().float().norm() for param in model.parameters() if param.grad is not None]
    return torch.stack(grads).norm() if grads else torch.zeros(())


def _step_record(
    accelerator: Accelerator,
    step: int,
    loss: torch.Tensor,
    terms: dict[str, torch.Tensor],
    grad_norm: torch.Tensor,
    lr: float,
) -> dict[str, float]:
    """The step's log line: loss averaged over processes, the last layer's loss terms, gradient norm, lr."""
    last_layer = {
        name: value for name, value in terms.items() if name in ("loss_cross_entropy", "loss_mask", "loss_dice")
    }
    values = torch.stack([loss, *last_layer.values()]).float()
    values = accelerator.reduce(values, reduction="mean").tolist()
    record = {"step": step, "loss": values[0], "lr": lr, "grad_norm": float(grad_norm)}
    record.update(zip(last_layer, values[1:]))
    return record


def _log(accelerator: Accelerator, cfg: TrainingConfig, output_dir: Path, record: dict[str, float]) -> None:
    """Appends the record to `output_dir/log.jsonl` and sends it to the trackers every `log_every` steps."""
    if accelerator.is_main_process:
        output_dir.mkdir(parents=True, exist_ok=True)
        with (output_dir / LOG_FILE).open("a", encoding="utf-8") as file:
            file.write(json.dumps(record) + "\n")
    has_eval = any(key.startswith("eval/") for key in record)
    if cfg.log_with and (has_eval or record["step"] % max(cfg.log_every, 1) == 0):
        accelerator.log({key: value for key, value in record.items() if key != "step"}, step=record["step"])


def _tracker_config(cfg: TrainingConfig) -> dict[str, Any]:
    """The config as flat scalars, as trackers want them."""
    return {
        key: value if isinstance(value, int | float | str | bool) else str(value)
        for key, value in dataclasses.asdict(cfg).items()
    }


# ----------------------------------------------------------------------------------------------------------------
# Checkpoints and the final folder
# ----------------------------------------------------------------------------------------------------------------


def save_checkpoint(accelerator: Accelerator, output_dir: Path, step: int, keep: int) -> Path:
    """`accelerator.save_state` into `output_dir/checkpoints/step-NNNNNN`, keeping the newest `keep` checkpoints."""
    checkpoint = output_dir / CHECKPOINTS_DIR / f"step-{step:06d}"
    accelerator.save_state(str(checkpoint))
    if accelerator.is_main_process:
        (checkpoint / STATE_FILE).write_text(json.dumps({"step": step}))
        for old in list_checkpoints(output_dir)[:-keep] if keep > 0 else []:
            shutil.rmtree(old)
    accelerator.wait_for_everyone()
    return checkpoint


def list_checkpoints(output_dir: str | os.PathLike) -> list[Path]:
    """The complete checkpoints of a run, oldest first."""
    folder = Path(output_dir) / CHECKPOINTS_DIR
    found = [path for path in folder.glob("step-*") if (path / STATE_FILE).is_file()] if folder.is_dir() else []
    return sorted(found, key=lambda path: json.loads((path / STATE_FILE).read_text())["step"])


def _resume_checkpoint(cfg: TrainingConfig, output_dir: Path) -> Path:
    """The checkpoint `resume` points to: the given folder, or the newest one of the run."""
    if isinstance(cfg.resume, str | os.PathLike) and not isinstance(cfg.resume, bool):
        checkpoint = Path(cfg.resume)
        if not (checkpoint / STATE_FILE).is_file():
            raise ValueError(f"--resume {checkpoint}: not a checkpoint folder (no {STATE_FILE})")
        return checkpoint
    checkpoints = list_checkpoints(output_dir)
    if not checkpoints:
        raise ValueError(f"--resume: no checkpoint to resume from in {output_dir / CHECKPOINTS_DIR}")
    return checkpoints[-1]


def _save_final(
    cfg: TrainingConfig,
    accelerator: Accelerator,
    model: nn.Module,
    processor: Mask2FormerVideoProcessor,
    metrics: dict[str, float] | None,
) -> None:
    """Writes the `from_pretrained` folder (config, weights, processor, model card) and `eval.json` to `output_dir`."""
    accelerator.wait_for_everyone()
    if not accelerator.is_main_process:
        return
    output_dir = Path(cfg.output_dir)
    unwrapped = accelerator.unwrap_model(model)
    unwrapped.save_pretrained(output_dir, safe_serialization=True)
    processor.save_pretrained(output_dir)
    (output_dir / "training_config.json").write_text(json.dumps(dataclasses.asdict(cfg), indent=2, default=str))
    if metrics is not None:
        (output_dir / "eval.json").write_text(json.dumps(metrics, indent=2))
    write_training_card(output_dir, unwrapped.config, cfg, metrics)


def write_training_card(
    output_dir: Path, config: Mask2FormerVideoConfig, cfg: TrainingConfig, metrics: dict[str, float] | None
) -> Path:
    """The model card (the project's shared builder, `hub.save_model_card`): how the model was trained and scored."""
    from .hub import save_model_card

    return save_model_card(output_dir, config, how_made=training_description(cfg, metrics))


def training_description(cfg: TrainingConfig, metrics: dict[str, float] | None) -> str:
    """Markdown saying how a run was made: start point, data, recipe, and the evaluation numbers if any."""
    max_steps, decay_steps = cfg.resolved_steps()
    lines = [
        "Trained with `m2f-video train` (the m2f-video training module, built on Accelerate).",
        "",
        f"- started from: {cfg.init or cfg.config or 'the r50-ytvis2019 architecture with random weights'}",
        f"- training data: `{cfg.train_data}`",
        f"- recipe: AdamW, lr {cfg.lr} (backbone x{cfg.backbone_multiplier}), weight decay {cfg.weight_decay}, "
        f"{max_steps} steps of {cfg.batch_size} clips of {cfg.num_frames} frames, lr x{cfg.decay_gamma} at "
        f"{list(decay_steps)}, shortest side {list(cfg.min_sizes)}, gradient clipping {cfg.clip_grad_norm}, "
        f"seed {cfg.seed}",
    ]
    if metrics:
        lines += ["", f"YouTube-VIS metric on `{cfg.eval_data}`:", ""]
        lines += ["| " + " | ".join(metrics) + " |", "|" + "---|" * len(metrics)]
        lines += ["| " + " | ".join(f"{value:.4f}" for value in metrics.values()) + " |"]
    return "\n".join(lines)
