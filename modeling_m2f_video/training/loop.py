"""The training loop: Accelerate, the paper's recipe, one GPU or many, exactly resumable.

The recipe is the official one (see [`TrainingConfig`]). `batch_size` is the *global* number of clips per optimizer
step, as the official `IMS_PER_BATCH`; each process takes `batch_size / (num_processes * grad_accum)` clips per
micro-batch. Checkpoints hold model, optimizer, schedule and every process's RNG states plus the step, as tensors
and plain data only (see `checkpoints`), so `resume` continues the same loss trajectory and runs no code from the
checkpoint folder. A step whose loss (or, without fp16 loss scaling, gradient norm) is not finite stops the run
before it changes the weights.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
from pathlib import Path
from typing import Any

import torch
from accelerate import Accelerator
from accelerate.utils import set_seed
from torch import nn
from tqdm.auto import tqdm

from ..errors import UserInputError
from ..processing.video_processing_m2f_video import Mask2FormerVideoProcessor
from .checkpoints import (
    LOG_FILE,
    _save_final,
    list_checkpoints,
    load_checkpoint,
    prepare_output_dir,
    resume_checkpoint,
    save_checkpoint,
)
from .config import TrainingConfig, TrainingResult
from .data import YTVISSplit, batch_to_device, build_clip_loader, load_split, per_device_batch_size
from .evaluation import evaluate_split, label_to_category
from .model_setup import StepSchedule, build_model, parameter_groups, resolve_mixed_precision


class TrainingDivergedError(UserInputError):
    """The loss (or the gradient norm) of a step is not finite: the run stops before that step's update."""


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

    Returns the result on every process (metrics included). Everything the run needs is checked before the
    first step: the options, the data, the model's start point, the output folder (a folder that holds a run
    needs `resume` or `overwrite`) and the checkpoint to resume from.

    Raises:
        UserInputError: naming the option, file or record that is wrong (missing data, unknown init, a batch
            that does not split over the processes, nothing to resume, a damaged checkpoint, ...);
            `TrainingDivergedError` when the loss stops being finite.
    """
    cfg.validate()  # again: the config may have been changed since it was made
    accelerator = accelerator or build_accelerator(cfg)
    output_dir = Path(cfg.output_dir)
    max_steps, decay_steps = cfg.resolved_steps()
    per_device_batch_size(cfg.batch_size, accelerator.num_processes, cfg.grad_accum)
    train_split = load_split(cfg.train_data, "--train-data")
    eval_split = load_split(cfg.eval_data, "--eval-data") if cfg.eval_data else None
    checkpoint = resume_checkpoint(cfg, output_dir, accelerator) if cfg.resume else None

    set_seed(cfg.seed)  # the same initial weights on every process
    model, processor = build_model(cfg, train_split.categories)
    if eval_split is not None:
        label_to_category(model.config, eval_split)  # the evaluation data must fit: say so now, not after training
    prepare_output_dir(cfg, accelerator)
    optimizer = torch.optim.AdamW(parameter_groups(model, cfg.lr, cfg.weight_decay, cfg.backbone_multiplier))
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, StepSchedule(decay_steps, cfg.decay_gamma, cfg.warmup_iters, cfg.warmup_factor)
    )
    model, optimizer = accelerator.prepare(model, optimizer)
    set_seed(cfg.seed, device_specific=True)  # each process draws its own random points in the loss

    start_step = 0
    if checkpoint is not None:
        start_step = load_checkpoint(checkpoint, accelerator, model, optimizer, scheduler)
        accelerator.step = start_step * cfg.grad_accum  # Accelerate's micro-batch count (gradient sync timing)
        _trim_log(accelerator, output_dir, start_step)
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
        record = _step_record(accelerator, step, step_loss, terms, grad_norm, lr)  # the same on every process
        _check_finite(record, accelerator, output_dir)
        optimizer.step()
        scheduler.step()
        optimizer.zero_grad(set_to_none=True)

        losses.append(record["loss"])
        bar.update(1)
        bar.set_postfix(loss=f"{record['loss']:.3f}", lr=f"{lr:.2e}")
        if cfg.eval_every and step % cfg.eval_every == 0 and step < max_steps and eval_split is not None:
            metrics = evaluate_split(model, processor, eval_split, accelerator, progress=False)
            record.update({f"eval/{key}": value for key, value in (metrics or {}).items()})
        _log(accelerator, cfg, output_dir, record)
        if (cfg.save_every and step % cfg.save_every == 0) or step == max_steps:
            save_checkpoint(accelerator, output_dir, step, cfg.keep_checkpoints, model, optimizer, scheduler)
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


def _check_finite(record: dict[str, float], accelerator: Accelerator, output_dir: Path) -> None:
    """Stop with a clear error, before the update, when the step's loss or gradient norm is NaN or infinite.

    With fp16 loss scaling an infinite gradient norm is normal (the scaler skips that step), so only the loss
    counts then. Nothing of the step is saved: the newest checkpoint stays the last good state.
    """
    values = {"loss": record["loss"]}
    if accelerator.scaler is None:
        values["gradient norm"] = record["grad_norm"]
    bad = {name: value for name, value in values.items() if not math.isfinite(value)}
    if not bad:
        return
    checkpoints = list_checkpoints(output_dir)
    kept = f"the newest checkpoint, {checkpoints[-1]}, is intact" if checkpoints else "no checkpoint was written"
    raise TrainingDivergedError(
        f"step {record['step']}: the {' and the '.join(f'{name} is {value}' for name, value in bad.items())}; "
        f"training stopped before this update ({kept}). Try a lower --lr or check the data"
    )


def _trim_log(accelerator: Accelerator, output_dir: Path, step: int) -> None:
    """Drops the `log.jsonl` records after `step` (the interrupted run's), so that the resumed run's records follow.

    A line cut short by the interruption is dropped too. The file is replaced in one rename.
    """
    log_file = output_dir / LOG_FILE
    if not accelerator.is_main_process or not log_file.is_file():
        return
    kept = []
    for line in log_file.read_text(encoding="utf-8").splitlines():
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(record, dict) and isinstance(record.get("step"), int) and record["step"] <= step:
            kept.append(line + "\n")
    trimmed = log_file.with_name(LOG_FILE + ".tmp")
    trimmed.write_text("".join(kept), encoding="utf-8")
    os.replace(trimmed, log_file)


def _tracker_config(cfg: TrainingConfig) -> dict[str, Any]:
    """The config as flat scalars, as trackers want them."""
    return {
        key: value if isinstance(value, int | float | str | bool) else str(value)
        for key, value in dataclasses.asdict(cfg).items()
    }
