"""`m2f-video train`: train or fine-tune on a YouTube-VIS-format data set with the paper's recipe (Accelerate).

The same options work under `accelerate launch -m modeling_m2f_video.train ...` for several GPUs or processes.
"""

import argparse
import sys

from ..training import SCHEDULES, TrainingConfig


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the `train` subcommand."""
    parser = subparsers.add_parser(
        "train",
        help="train a video Mask2Former on a YouTube-VIS-format data set",
        description=(
            "Train with the paper's recipe (AdamW lr 1e-4, weight decay 0.05, backbone lr x0.1, step decay, "
            "gradient clipping 0.01, batch 16 clips of 2 frames). OUTPUT ends up as a from_pretrained folder; "
            "with --eval-data, OUTPUT/eval.json holds the YouTube-VIS metric. For several GPUs: "
            "accelerate launch -m modeling_m2f_video.train ..."
        ),
    )
    add_arguments(parser)
    parser.set_defaults(func=run)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The training options (shared by `m2f-video train` and `python -m modeling_m2f_video.train`)."""
    defaults = TrainingConfig(train_data="", output_dir="")
    data = parser.add_argument_group("data and model")
    data.add_argument("--train-data", required=True, help="split folder with instances.json and JPEGImages/")
    data.add_argument("--output", required=True, help="output folder (checkpoints, logs, final model)")
    data.add_argument("--eval-data", help="split folder to evaluate on (YouTube-VIS metric) at the end")
    data.add_argument("--init", help="model folder (video or image Mask2Former) or preset name, e.g. r50-ytvis2019")
    data.add_argument("--config", help="JSON config of the model to train from random weights")
    data.add_argument("--test-size", type=int, help="shortest side at evaluation (default: the model's)")

    recipe = parser.add_argument_group("recipe (defaults: the paper's)")
    recipe.add_argument("--schedule", choices=sorted(SCHEDULES), default=defaults.schedule, help="official schedule")
    recipe.add_argument("--max-steps", type=int, help="optimizer steps (default: the schedule's)")
    recipe.add_argument("--decay-steps", type=int, nargs="+", help="steps where the lr drops (default: scaled)")
    recipe.add_argument("--batch-size", type=int, default=defaults.batch_size, help="clips per step, all processes")
    recipe.add_argument("--grad-accum", type=int, default=defaults.grad_accum, help="micro-batches per step")
    recipe.add_argument("--lr", type=float, default=defaults.lr, help="base learning rate")
    recipe.add_argument("--weight-decay", type=float, default=defaults.weight_decay)
    recipe.add_argument("--backbone-multiplier", type=float, default=defaults.backbone_multiplier)
    recipe.add_argument("--warmup-iters", type=int, default=defaults.warmup_iters)
    recipe.add_argument("--warmup-factor", type=float, default=defaults.warmup_factor)
    recipe.add_argument("--clip-grad-norm", type=float, default=defaults.clip_grad_norm, help="0 disables it")
    recipe.add_argument("--mixed-precision", choices=["auto", "no", "fp16", "bf16"], default=defaults.mixed_precision)
    recipe.add_argument("--cpu", action="store_true", help="train on the CPU even if a GPU is present")

    clips = parser.add_argument_group("clips")
    clips.add_argument("--num-frames", type=int, default=defaults.num_frames, help="frames per training clip")
    clips.add_argument("--frame-range", type=int, default=defaults.sampling_frame_range)
    clips.add_argument("--min-sizes", type=int, nargs="+", default=list(defaults.min_sizes), help="shortest sides")
    clips.add_argument("--max-size", type=int, default=defaults.max_size, help="longest side cap")
    clips.add_argument("--crop", type=int, nargs=2, metavar=("MIN", "MAX"), help="random crop size range")

    run_options = parser.add_argument_group("run")
    run_options.add_argument("--seed", type=int, default=defaults.seed)
    run_options.add_argument("--num-workers", type=int, default=defaults.num_workers, help="DataLoader workers")
    run_options.add_argument("--save-every", type=int, default=defaults.save_every, help="checkpoint period")
    run_options.add_argument("--keep-checkpoints", type=int, default=defaults.keep_checkpoints)
    run_options.add_argument("--eval-every", type=int, default=defaults.eval_every, help="evaluation period")
    run_options.add_argument("--log-every", type=int, default=defaults.log_every, help="tracker logging period")
    run_options.add_argument("--log-with", nargs="+", help="Accelerate trackers: tensorboard, wandb, all, ...")
    run_options.add_argument(
        "--resume",
        nargs="?",
        const=True,
        default=False,
        metavar="CHECKPOINT",
        help="continue from the newest checkpoint in OUTPUT (or from CHECKPOINT)",
    )
    run_options.add_argument("--no-progress", action="store_true", help="no progress bars")


def config_from_args(args: argparse.Namespace) -> TrainingConfig:
    """The `TrainingConfig` the parsed options describe."""
    return TrainingConfig(
        train_data=args.train_data,
        output_dir=args.output,
        eval_data=args.eval_data,
        init=args.init,
        config=args.config,
        test_size=args.test_size,
        schedule=args.schedule,
        max_steps=args.max_steps,
        decay_steps=tuple(args.decay_steps) if args.decay_steps else None,
        batch_size=args.batch_size,
        grad_accum=args.grad_accum,
        lr=args.lr,
        weight_decay=args.weight_decay,
        backbone_multiplier=args.backbone_multiplier,
        warmup_iters=args.warmup_iters,
        warmup_factor=args.warmup_factor,
        clip_grad_norm=args.clip_grad_norm,
        mixed_precision=args.mixed_precision,
        cpu=args.cpu,
        num_frames=args.num_frames,
        sampling_frame_range=args.frame_range,
        min_sizes=tuple(args.min_sizes),
        max_size=args.max_size,
        crop_range=tuple(args.crop) if args.crop else None,
        seed=args.seed,
        num_workers=args.num_workers,
        save_every=args.save_every,
        keep_checkpoints=args.keep_checkpoints,
        eval_every=args.eval_every,
        log_every=args.log_every,
        log_with=args.log_with,
        resume=args.resume,
        progress=not args.no_progress,
    )


def run(args: argparse.Namespace) -> int:
    """Train; print where the model went and the metric. Bad input exits with status 2 and a clear message."""
    from ..training import train

    try:
        result = train(config_from_args(args))
    except ValueError as error:
        print(f"train: error: {error}", file=sys.stderr)
        return 2
    print(f"model: {result.output_dir} (step {result.step})")
    if result.metrics is not None:
        print("eval: " + ", ".join(f"{key} {value:.4f}" for key, value in result.metrics.items()))
    return 0
