"""What a training run needs: [`TrainingConfig`], whose fields also define the `m2f-video train` options.

The defaults are the official recipe (Mask2Former's `configs/youtubevis_20{19,21}/Base-YouTubeVIS-...yaml` and its
`build_optimizer`): AdamW with lr 1e-4 and weight decay 0.05; the backbone at 0.1 x lr; no weight decay on
normalisation layers and embeddings; the learning rate x0.1 at the decay steps (4000 of 6000 steps for
YouTube-VIS 2019, 5500 of 8000 for 2021), after a linear warmup (10 steps from factor 1.0, which the official
configs make a no-op); gradient clipping of the whole model's norm at 0.01; batches of 16 clips of 2 frames;
mixed precision on GPU.

Each field carries its command-line option in its metadata (`help`, the option `group`, the `Bounds` of a number,
and argparse settings such as `flag`, `nargs` or `choices`), so the command line is derived from this one list, and
`TrainingConfig.validate` checks the same rules for library users.
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import UserInputError

# Official schedules: total optimizer steps and the steps where the learning rate drops x0.1 (batch 16).
SCHEDULES = {"ytvis2019": (6000, (4000,)), "ytvis2021": (8000, (5500,))}
OPTION_GROUPS = ("data and model", "recipe (defaults: the paper's)", "clips", "run")


@dataclass(frozen=True)
class Bounds:
    """The numbers a numeric option accepts: integers, or finite floats, from `low` (excluded if `open_low`) up to
    `high`. `TrainingConfig.validate` checks the fields with it and the command line parses the options with it,
    so that the two give the same answer (`--lr nan` never reaches the optimizer)."""

    integer: bool
    low: float | None = None
    open_low: bool = False
    high: float | None = None

    def describe(self) -> str:
        """What is accepted, as error messages say it: "an integer >= 1", "a finite number > 0"."""
        kind = "an integer" if self.integer else "a finite number"
        if self.low is not None and self.high is not None:
            return f"{kind} from {self.low} to {self.high}"
        if self.low is not None:
            return f"{kind} {'>' if self.open_low else '>='} {self.low}"
        return kind

    def accepts(self, value: Any) -> bool:
        """Whether `value` is of the right kind and in range (bools are not numbers here)."""
        if isinstance(value, bool) or not isinstance(value, int if self.integer else int | float):
            return False
        if not math.isfinite(value):
            return False
        if self.low is not None and (value <= self.low if self.open_low else value < self.low):
            return False
        return self.high is None or value <= self.high

    def parse(self, text: str) -> int | float:
        """The argparse `type` of the option: the number in `text`, or an argparse error saying what is accepted."""
        try:
            value = int(text) if self.integer else float(text)
        except ValueError:
            value = None
        if value is None or not self.accepts(value):
            raise argparse.ArgumentTypeError(f"{text!r}: must be {self.describe()}")
        return value


COUNT = Bounds(integer=True, low=1)
NON_NEGATIVE_INTEGER = Bounds(integer=True, low=0)
POSITIVE = Bounds(integer=False, low=0, open_low=True)
NON_NEGATIVE = Bounds(integer=False, low=0)
SEED = Bounds(integer=True, low=0, high=2**31 - 1)  # numpy's seed must stay below 2**32 with the process index added


def option(default: Any, help: str, group: int, bounds: Bounds | None = None, **argparse_settings: Any) -> Any:
    """A config field with its command-line option (`group` indexes `OPTION_GROUPS`).

    `bounds` says which numbers the field accepts; it also becomes the option's argparse `type`.
    """
    if bounds is not None:
        argparse_settings["type"] = bounds.parse
    metadata = {"help": help, "group": OPTION_GROUPS[group], "bounds": bounds, "argparse": argparse_settings}
    if default is dataclasses.MISSING:  # a required field: the option is required too
        return field(metadata={**metadata, "argparse": {**argparse_settings, "required": True}})
    return field(default=default, metadata=metadata)


def option_flag(config_field: dataclasses.Field) -> str:
    """The command-line flag of a config field (`lr` -> `--lr`), as error messages name the field."""
    return config_field.metadata["argparse"].get("flag", "--" + config_field.name.replace("_", "-"))


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
    test_size: int | None = option(None, "shortest side at evaluation (default: the model's)", 0, COUNT)

    schedule: str = option("ytvis2019", "official schedule", 1, choices=sorted(SCHEDULES))
    max_steps: int | None = option(None, "optimizer steps (default: the schedule's)", 1, NON_NEGATIVE_INTEGER)
    decay_steps: tuple[int, ...] | None = option(
        None, "steps where the lr drops (default: the schedule's, scaled to max_steps)", 1, NON_NEGATIVE_INTEGER,
        nargs="+",
    )  # fmt: skip
    decay_gamma: float = option(0.1, "factor of the lr at each decay step", 1, POSITIVE)
    batch_size: int = option(16, "clips per optimizer step, all processes", 1, COUNT)
    grad_accum: int = option(1, "micro-batches per optimizer step", 1, COUNT)
    lr: float = option(1e-4, "base learning rate", 1, POSITIVE)
    weight_decay: float = option(0.05, "AdamW weight decay (none on norms and embeddings)", 1, NON_NEGATIVE)
    backbone_multiplier: float = option(0.1, "backbone lr factor", 1, NON_NEGATIVE)
    warmup_iters: int = option(10, "linear warmup steps", 1, NON_NEGATIVE_INTEGER)
    warmup_factor: float = option(1.0, "lr factor at the start of the warmup", 1, POSITIVE)
    clip_grad_norm: float = option(0.01, "maximum gradient norm of the whole model; 0 disables it", 1, NON_NEGATIVE)
    mixed_precision: str = option("auto", "mixed precision", 1, choices=["auto", "no", "fp16", "bf16"])
    cpu: bool = option(False, "train on the CPU even if a GPU is present", 1, action="store_true")

    num_frames: int = option(2, "frames per training clip", 2, COUNT)
    sampling_frame_range: int = option(
        20, "frames of a clip lie within this range", 2, NON_NEGATIVE_INTEGER, flag="--frame-range"
    )
    min_sizes: tuple[int, ...] = option((360, 480), "shortest sides to choose from", 2, COUNT, nargs="+")
    max_size: int = option(1333, "longest side cap", 2, COUNT)
    crop_range: tuple[int, int] | None = option(
        None, "random crop size range", 2, COUNT, nargs=2, metavar=("MIN", "MAX"), flag="--crop"
    )

    seed: int = option(0, "seed of the weights, the clips and their augmentation", 3, SEED)
    num_workers: int = option(4, "DataLoader workers", 3, NON_NEGATIVE_INTEGER)
    save_every: int = option(1000, "checkpoint period in steps (0: only at the end)", 3, NON_NEGATIVE_INTEGER)
    keep_checkpoints: int = option(2, "checkpoints to keep (0: all)", 3, NON_NEGATIVE_INTEGER)
    eval_every: int = option(0, "evaluation period in steps (0: only at the end)", 3, NON_NEGATIVE_INTEGER)
    log_every: int = option(20, "tracker logging period in steps", 3, COUNT)
    log_with: str | list[str] | None = option(None, "Accelerate trackers: tensorboard, wandb, all, ...", 3, nargs="+")
    resume: bool | str = option(
        False,
        "continue from the newest complete checkpoint in OUTPUT (or from CHECKPOINT)",
        3,
        nargs="?",
        const=True,
        metavar="CHECKPOINT",
    )
    overwrite: bool = option(
        False, "replace the run already in OUTPUT (its checkpoints, log and model are deleted)", 3, action="store_true"
    )
    progress: bool = option(True, "no progress bars", 3, action="store_false", flag="--no-progress")

    def __post_init__(self) -> None:
        for name in ("decay_steps", "min_sizes", "crop_range"):
            value = getattr(self, name)
            if isinstance(value, list):
                setattr(self, name, tuple(value))
        self.validate()

    def validate(self) -> None:
        """Check every option, so that a run never starts with a value it cannot train with.

        Numbers must be of their field's kind and in its range (see `Bounds`: `--lr nan`, `--batch-size 0` and
        `--seed -1` are refused), choices one of theirs, `--crop MIN MAX` ordered, and `--init`/`--config` and
        `--resume`/`--overwrite` not given together. `train` calls it again, for configs changed after creation.

        Raises:
            UserInputError: naming the option and its value, e.g. `--lr nan: must be a finite number > 0`.
        """
        for config_field in dataclasses.fields(self):
            _check_field(config_field, getattr(self, config_field.name))
        if self.crop_range is not None and self.crop_range[0] > self.crop_range[1]:
            raise UserInputError(f"--crop {self.crop_range[0]} {self.crop_range[1]}: MIN must not exceed MAX")
        if self.init and self.config:
            raise UserInputError(f"--init {self.init}: give --init or --config, not both")
        if self.resume and self.overwrite:
            raise UserInputError("--overwrite: give --resume (continue the run) or --overwrite (replace it), not both")
        if not isinstance(self.resume, bool | str | os.PathLike):
            raise UserInputError(f"--resume {self.resume!r}: must be True/False or a checkpoint folder")

    def resolved_steps(self) -> tuple[int, tuple[int, ...]]:
        """The number of steps and the decay steps, filled in from the official schedule where not given."""
        official_steps, official_decay = SCHEDULES[self.schedule]
        max_steps = official_steps if self.max_steps is None else self.max_steps
        if self.decay_steps is not None:
            return max_steps, tuple(sorted(self.decay_steps))
        return max_steps, tuple(round(step * max_steps / official_steps) for step in official_decay)

    @staticmethod
    def command_line_options() -> list[tuple[str, str, dict[str, Any]]]:
        """`(option group, flag, argparse settings)` of every field, in field order."""
        options = []
        for config_field in dataclasses.fields(TrainingConfig):
            settings = dict(config_field.metadata["argparse"])
            flag = option_flag(config_field)
            settings.pop("flag", None)
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


def _check_field(config_field: dataclasses.Field, value: Any) -> None:
    """Raise a UserInputError naming the option if `value` is not one the field accepts (None: the default)."""
    flag = option_flag(config_field)
    if config_field.default is dataclasses.MISSING and not value:
        raise UserInputError(f"{flag}: is required")
    if value is None:
        return
    settings, bounds = config_field.metadata["argparse"], config_field.metadata["bounds"]
    shown = " ".join(map(repr, value)) if isinstance(value, tuple) else repr(value)
    where = f"{flag} {shown}".rstrip()
    if "choices" in settings and value not in settings["choices"]:
        raise UserInputError(f"{where}: choose one of {', '.join(settings['choices'])}")
    if bounds is None:
        return
    nargs = settings.get("nargs")
    if nargs is None:
        if not bounds.accepts(value):
            raise UserInputError(f"{where}: must be {bounds.describe()}")
        return
    if not isinstance(value, tuple) or not value or (nargs == 2 and len(value) != 2):
        raise UserInputError(f"{where}: needs {'two numbers' if nargs == 2 else 'one or more numbers'}")
    if not all(bounds.accepts(item) for item in value):
        raise UserInputError(f"{where}: each value must be {bounds.describe()}")
