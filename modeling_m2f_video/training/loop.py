"""The training loop: Accelerate, the paper's recipe, one GPU or many, exactly resumable.

The recipe is the official one (see [`TrainingConfig`]). `batch_size` is the *global* number of clips per optimizer
step, as the official `IMS_PER_BATCH`; each process takes `batch_size / (num_processes * grad_accum)` clips per
micro-batch. Checkpoints hold model, optimizer, schedule and every process's RNG states plus the step, so `resume`
continues the same loss trajectory.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import torch
from accelerate import Accelerator
from accelerate.utils import set_seed
from torch import nn
from tqdm.auto import tqdm

from ..processing.video_processing_m2f_video import Mask2FormerVideoProcessor
from .checkpoints import STATE_FILE, _resume_checkpoint, _save_final, save_checkpoint
from .config import TrainingConfig, TrainingResult
from .data import YTVISSplit, batch_to_device, build_clip_loader, load_split, per_device_batch_size
from .evaluation import evaluate_split
from .model_setup import StepSchedule, build_model, parameter_groups, resolve_mixed_precision

LOG_FILE = "log.jsonl"


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
