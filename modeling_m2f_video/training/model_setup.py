"""The model, optimizer and schedule of a run: the starting point, the official parameter groups and step decay."""

from __future__ import annotations

import bisect
import json
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn
from transformers import Mask2FormerConfig, Mask2FormerForUniversalSegmentation

from ..configuration import Mask2FormerVideoConfig
from ..configuration.presets import PRESETS
from ..errors import UserInputError
from ..modeling_m2f_video import Mask2FormerVideoForVideoInstanceSegmentation
from ..processing.video_processing_m2f_video import Mask2FormerVideoProcessor
from .config import TrainingConfig

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


def build_model(
    cfg: TrainingConfig, categories: Sequence[dict]
) -> tuple[Mask2FormerVideoForVideoInstanceSegmentation, Mask2FormerVideoProcessor]:
    """The model to train (labelled with the training data's categories) and its processor.

    `cfg.init` is a preset name (random weights), a video model folder, or a transformers image Mask2Former
    folder (converted on the fly); `cfg.config` a JSON config (random weights). When the checkpoint's label set
    differs from the data's, its class head is re-initialised and everything else is kept.
    """
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
        raise UserInputError(f"--init {init}: no such folder, and not a preset (presets: {', '.join(PRESETS)})")
    return _model_from_folder(Path(init), id2label, extra)


def _config_from_json(path: str, overrides: dict) -> Mask2FormerVideoConfig:
    """A config from a JSON file, with the data's labels; errors name the file."""
    if not Path(path).is_file():
        raise UserInputError(f"--config {path}: no such file")
    try:
        values = json.loads(Path(path).read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise UserInputError(f"--config {path}: not valid JSON ({error})") from error
    if not isinstance(values, dict):
        raise UserInputError(f"--config {path}: must hold a JSON object (a model config)")
    values = {key: value for key, value in values.items() if key not in ("model_type", "transformers_version")}
    try:
        return Mask2FormerVideoConfig.from_dict({**values, **overrides})
    except ValueError as error:  # the config's own checks of its values
        raise UserInputError(f"--config {path}: {error}") from error


def _model_from_folder(
    folder: Path, id2label: dict[int, str], extra: dict
) -> tuple[Mask2FormerVideoForVideoInstanceSegmentation, Mask2FormerVideoProcessor]:
    """Loads a video or image Mask2Former folder; re-initialises the class head when the labels change."""
    config_file = folder / "config.json"
    if not config_file.is_file():
        raise UserInputError(f"--init {folder}: no config.json, so not a model folder")
    try:
        values = json.loads(config_file.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise UserInputError(f"{config_file}: not valid JSON ({error})") from error
    model_type = values.get("model_type") if isinstance(values, dict) else None
    if model_type == "mask2former":
        return _model_from_image_folder(folder, id2label, extra)
    if model_type != Mask2FormerVideoConfig.model_type:
        raise UserInputError(f"--init {folder}: model_type {model_type!r} is not a (video) Mask2Former")

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


def _model_from_image_folder(
    folder: Path, id2label: dict[int, str], extra: dict
) -> tuple[Mask2FormerVideoForVideoInstanceSegmentation, Mask2FormerVideoProcessor]:
    """A video model with the weights of a transformers image Mask2Former folder (class head new if labels change)."""
    image_config = Mask2FormerConfig.from_pretrained(folder)
    new_head = {int(label): name for label, name in image_config.id2label.items()} != id2label
    config = Mask2FormerVideoConfig.from_image_config(image_config, id2label)
    for key, value in extra.items():
        setattr(config, key, value)
    model = Mask2FormerVideoForVideoInstanceSegmentation(config)
    image_state = Mask2FormerForUniversalSegmentation.from_pretrained(folder).state_dict()
    try:
        model.load_image_weights(image_state, new_class_head=new_head)
    except ValueError as error:
        raise UserInputError(f"--init {folder}: {error}") from error
    return model, Mask2FormerVideoProcessor.from_model_config(model.config)


def _with_new_class_head(
    model: Mask2FormerVideoForVideoInstanceSegmentation, id2label: dict[int, str]
) -> Mask2FormerVideoForVideoInstanceSegmentation:
    """A copy of `model` for the label set `id2label`: same weights, freshly initialised class head."""
    config = model.config
    config.id2label = id2label
    config.label2id = {name: label for label, name in id2label.items()}
    new_model = Mask2FormerVideoForVideoInstanceSegmentation(config)
    new_model.load_image_weights(model.state_dict(), new_class_head=True)
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
    during the first `warmup_iters` steps. Rebuilt from the config on resume: checkpoints keep only the step.
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
