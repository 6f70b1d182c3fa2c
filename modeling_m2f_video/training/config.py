"""What a training run needs: [`TrainingConfig`], whose fields also define the `m2f-video train` options.

The defaults are the official recipe (Mask2Former's `configs/youtubevis_20{19,21}/Base-YouTubeVIS-...yaml` and its
`build_optimizer`): AdamW with lr 1e-4 and weight decay 0.05; the backbone at 0.1 x lr; no weight decay on
normalisation layers and embeddings; the learning rate x0.1 at the decay steps (4000 of 6000 steps for
YouTube-VIS 2019, 5500 of 8000 for 2021), after a linear warmup (10 steps from factor 1.0, which the official
configs make a no-op); gradient clipping of the whole model's norm at 0.01; batches of 16 clips of 2 frames;
mixed precision on GPU.

Each field carries its command-line option in its metadata (`help`, the option `group`, and argparse settings
such as `flag`, `type`, `nargs` or `choices`), so the command line is derived from this one list.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

# Official schedules: total optimizer steps and the steps where the learning rate drops x0.1 (batch 16).
SCHEDULES = {"ytvis2019": (6000, (4000,)), "ytvis2021": (8000, (5500,))}
OPTION_GROUPS = ("data and model", "recipe (defaults: the paper's)", "clips", "run")


def option(default: Any, help: str, group: int, **argparse_settings: Any) -> Any:
    """A config field with its command-line option (`group` indexes `OPTION_GROUPS`)."""
    metadata = {"help": help, "group": OPTION_GROUPS[group], "argparse": argparse_settings}
    if default is dataclasses.MISSING:  # a required field: the option is required too
        return field(metadata={**metadata, "argparse": {**argparse_settings, "required": True}})
    return field(default=default, metadata=metadata)


@dataclass
class TrainingConfig:
    """Everything a training run needs; the defaults are the paper's recipe (see the module docstring).

    `batch_size` is the global number of clips per optimizer step (over all processes and accumulation
    micro-batches). `init` is a model folder (converted video model or transformers image Mask2Former) or a preset
    name (random weights of that architecture); with neither `init` nor `config`, the `r50-ytvis2019` architecture
    is trained from scratch. `mixed_precision="auto"` picks bf16 on GPUs that support it, else fp16 on GPU, none
    on CPU, or what `accelerate launch --mixed_precision` says. The clip fields are those of the official training
    mapper (see `YTVISClipDataset`).
    """

    train_data: str = option(dataclasses.MISSING, "split folder with instances.json and JPEGImages/", 0)
    output_dir: str = option(dataclasses.MISSING, "output folder (checkpoints, logs, final model)", 0, flag="--output")
    eval_data: str | None = option(None, "split folder to evaluate on (YouTube-VIS metric) at the end", 0)
    init: str | None = option(None, "model folder (video or image Mask2Former) or preset name, e.g. r50-ytvis2019", 0)
    config: str | None = option(None, "JSON config of the model to train from random weights", 0)
    test_size: int | None = option(None, "shortest side at evaluation (default: the model's)", 0, type=int)

    schedule: str = option("ytvis2019", "official schedule", 1, choices=sorted(SCHEDULES))
    max_steps: int | None = option(None, "optimizer steps (default: the schedule's)", 1, type=int)
    decay_steps: tuple[int, ...] | None = option(
        None, "steps where the lr drops (default: the schedule's, scaled to max_steps)", 1, type=int, nargs="+"
    )
    decay_gamma: float = option(0.1, "factor of the lr at each decay step", 1, type=float)
    batch_size: int = option(16, "clips per optimizer step, all processes", 1, type=int)
    grad_accum: int = option(1, "micro-batches per optimizer step", 1, type=int)
    lr: float = option(1e-4, "base learning rate", 1, type=float)
    weight_decay: float = option(0.05, "AdamW weight decay (none on norms and embeddings)", 1, type=float)
    backbone_multiplier: float = option(0.1, "backbone lr factor", 1, type=float)
    warmup_iters: int = option(10, "linear warmup steps", 1, type=int)
    warmup_factor: float = option(1.0, "lr factor at the start of the warmup", 1, type=float)
    clip_grad_norm: float = option(0.01, "maximum gradient norm of the whole model; 0 disables it", 1, type=float)
    mixed_precision: str = option("auto", "mixed precision", 1, choices=["auto", "no", "fp16", "bf16"])
    cpu: bool = option(False, "train on the CPU even if a GPU is present", 1, action="store_true")

    num_frames: int = option(2, "frames per training clip", 2, type=int)
    sampling_frame_range: int = option(20, "frames of a clip lie within this range", 2, type=int, flag="--frame-range")
    min_sizes: tuple[int, ...] = option((360, 480), "shortest sides to choose from", 2, type=int, nargs="+")
    max_size: int = option(1333, "longest side cap", 2, type=int)
    crop_range: tuple[int, int] | None = option(
        None, "random crop size range", 2, type=int, nargs=2, metavar=("MIN", "MAX"), flag="--crop"
    )

    seed: int = option(0, "seed of the weights, the clips and their augmentation", 3, type=int)
    num_workers: int = option(4, "DataLoader workers", 3, type=int)
    save_every: int = option(1000, "checkpoint period in steps (0: only at the end)", 3, type=int)
    keep_checkpoints: int = option(2, "checkpoints to keep", 3, type=int)
    eval_every: int = option(0, "evaluation period in steps (0: only at the end)", 3, type=int)
    log_every: int = option(20, "tracker logging period in steps", 3, type=int)
    log_with: str | list[str] | None = option(None, "Accelerate trackers: tensorboard, wandb, all, ...", 3, nargs="+")
    resume: bool | str = option(
        False,
        "continue from the newest checkpoint in OUTPUT (or from CHECKPOINT)",
        3,
        nargs="?",
        const=True,
        metavar="CHECKPOINT",
    )
    progress: bool = option(True, "no progress bars", 3, action="store_false", flag="--no-progress")

    def __post_init__(self) -> None:
        for name in ("decay_steps", "min_sizes", "crop_range"):
            value = getattr(self, name)
            if isinstance(value, list):
                setattr(self, name, tuple(value))

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

    @staticmethod
    def command_line_options() -> list[tuple[str, str, dict[str, Any]]]:
        """`(option group, flag, argparse settings)` of every field, in field order."""
        options = []
        for config_field in dataclasses.fields(TrainingConfig):
            settings = dict(config_field.metadata["argparse"])
            flag = settings.pop("flag", "--" + config_field.name.replace("_", "-"))
            settings.update(dest=config_field.name, help=config_field.metadata["help"])
            if not settings.get("required"):
                default = config_field.default
                settings["default"] = list(default) if isinstance(default, tuple) else default
            options.append((config_field.metadata["group"], flag, settings))
        return options


@dataclass
class TrainingResult:
    """What `train` returns: the final folder, the step reached, this run's per-step losses and the metric."""

    output_dir: Path
    step: int
    losses: list[float] = field(default_factory=list)
    metrics: dict[str, float] | None = None
