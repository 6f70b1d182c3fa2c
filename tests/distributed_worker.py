"""Worker of tests/test_distributed.py: one training step's gradients and the evaluation records of a run, or a
short run of the training command.

Run it with `accelerate launch --num_processes 2 --cpu` or with plain `python` (one process):

    python tests/distributed_worker.py gradients DATA_DIR MODEL_CONFIG_JSON OUTPUT_DIR
    python tests/distributed_worker.py train DATA_DIR MODEL_CONFIG_JSON OUTPUT_DIR

`gradients` computes the gradients of the first optimizer step (batch of 2 clips over however many processes there
are, through the training module's own sampler, collator and forward/backward) and the gathered evaluation records
of DATA_DIR/valid, and the main process saves both to OUTPUT_DIR.

`train` runs the training command's `train` for `TRAIN_STEPS` optimizer steps (2 clips each) from the random
weights of MODEL_CONFIG_JSON, with Accelerate's default DDP settings, and the main process writes the losses and
the largest change of every parameter to OUTPUT_DIR/training.json (the final model folder is OUTPUT_DIR/run). DDP
checks at each step after the first that every trainable parameter got its gradient in the step before, so a
parameter that never gets one makes the second step fail.

The loss draws random points (the matcher and the importance sampling call `torch.rand`), and a batch split over
two processes draws them in a different order than one process with both clips. So that both runs use the same
points for every clip, `torch.rand` is replaced during the step by a fixed point set that is the same for every
mask (it depends only on the number of points): what is compared is the gradient averaging and the loss
normalisation over processes, with the sampling seeded identically.
"""

import json
import sys
from contextlib import contextmanager
from pathlib import Path

import torch
from accelerate import Accelerator, PartialState
from accelerate.utils import gather_object, set_seed

from modeling_m2f_video import Mask2FormerVideoForVideoInstanceSegmentation
from modeling_m2f_video.training import TrainingConfig
from modeling_m2f_video.training.data import build_clip_loader, load_split
from modeling_m2f_video.training.evaluation import predict_split
from modeling_m2f_video.training.loop import forward_backward, train
from modeling_m2f_video.training.model_setup import build_model

TRAIN_STEPS = 3


@contextmanager
def same_points_for_every_mask():
    """`torch.rand(N, P, 2)` returns the same fixed P points for each of the N rows (scalars return 0.5)."""
    original_rand = torch.rand

    def fixed_rand(*size, generator=None, **kwargs):
        shape = tuple(size[0]) if len(size) == 1 and not isinstance(size[0], int) else size
        if len(shape) < 2:
            return torch.full(shape, 0.5, **kwargs)
        points = original_rand(shape[-2:], generator=torch.Generator().manual_seed(0))
        return points.to(**kwargs).expand(shape).clone()

    torch.rand = fixed_rand
    try:
        yield
    finally:
        torch.rand = original_rand


def gradients_and_records(data_dir: str, model_config: str, output_dir: str) -> None:
    """The first step's gradients and the evaluation records (see the module docstring)."""
    accelerator = Accelerator(cpu=True)
    output = Path(output_dir)
    cfg = TrainingConfig(
        train_data=f"{data_dir}/train",
        output_dir=output_dir,
        config=model_config,
        batch_size=2,
        min_sizes=(64,),
        num_workers=0,
        test_size=64,
    )
    split = load_split(cfg.train_data)
    torch.manual_seed(0)
    model, processor = build_model(cfg, split.categories)
    model = accelerator.prepare(model)
    model.train()

    batch = next(iter(build_clip_loader(cfg, split, processor, accelerator)))
    with same_points_for_every_mask():
        loss, _ = forward_backward(model, batch, accelerator)
    instances_per_clip = gather_object([len(labels) for labels in batch["class_labels"]])
    gradients = {
        name: param.grad.clone()
        for name, param in accelerator.unwrap_model(model).named_parameters()
        if param.grad is not None
    }
    records = predict_split(model, processor, load_split(f"{data_dir}/valid"), accelerator, progress=False)
    if accelerator.is_main_process:
        output.mkdir(parents=True, exist_ok=True)
        torch.save(gradients, output / "gradients.pt")
        summary = {"num_processes": accelerator.num_processes, "instances_per_clip": instances_per_clip}
        (output / "summary.json").write_text(json.dumps(summary))
        (output / "records.json").write_text(json.dumps(records))
    accelerator.wait_for_everyone()


def train_a_few_steps(data_dir: str, model_config: str, output_dir: str) -> None:
    """`TRAIN_STEPS` steps of the training command (see the module docstring)."""
    output = Path(output_dir)
    cfg = TrainingConfig(
        train_data=f"{data_dir}/train",
        output_dir=str(output / "run"),
        config=model_config,
        max_steps=TRAIN_STEPS,
        batch_size=2,
        min_sizes=(64,),
        num_workers=0,
        test_size=64,
        cpu=True,
        mixed_precision="no",
        save_every=0,
        progress=False,
    )
    set_seed(cfg.seed)  # as `train` does before it builds the model: the same initial weights
    initial, _ = build_model(cfg, load_split(cfg.train_data).categories)
    result = train(cfg)
    if PartialState().is_main_process:
        trained = Mask2FormerVideoForVideoInstanceSegmentation.from_pretrained(cfg.output_dir)
        trained_parameters = dict(trained.named_parameters())
        changes = {
            name: (trained_parameters[name] - param).abs().max().item()
            for name, param in initial.named_parameters()
            if param.requires_grad
        }
        summary = {"step": result.step, "losses": result.losses, "parameter_changes": changes}
        (output / "training.json").write_text(json.dumps(summary))


if __name__ == "__main__":
    mode, arguments = sys.argv[1], sys.argv[2:5]
    {"gradients": gradients_and_records, "train": train_a_few_steps}[mode](*arguments)
