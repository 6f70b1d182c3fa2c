"""Checkpoints of a run (`accelerator.save_state` folders plus the step) and its final `from_pretrained` folder."""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
from pathlib import Path

from accelerate import Accelerator
from torch import nn

from ..configuration import Mask2FormerVideoConfig
from ..processing.video_processing_m2f_video import Mask2FormerVideoProcessor
from .config import TrainingConfig

CHECKPOINTS_DIR = "checkpoints"


STATE_FILE = "training_state.json"


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
    from ..model_cards import save_model_card

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
