"""`m2f-video train`: train or fine-tune on a YouTube-VIS-format data set with the paper's recipe (Accelerate).

The options are derived from the fields of `TrainingConfig` (`TrainingConfig.command_line_options`). The same
options work under `accelerate launch -m modeling_m2f_video.train ...` for several GPUs or processes.
"""

import argparse
import dataclasses

from ..errors import UserInputError


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
    """One option per `TrainingConfig` field, in its option group."""
    from ..training.config import TrainingConfig

    groups: dict[str, argparse._ArgumentGroup] = {}
    for group, flag, settings in TrainingConfig.command_line_options():
        if group not in groups:
            groups[group] = parser.add_argument_group(group)
        groups[group].add_argument(flag, **settings)


def run(args: argparse.Namespace) -> int:
    """Train; print where the model went and the metric.

    Bad input raises `UserInputError`, which the CLI prints as one line (exit status 2). A plain `ValueError`
    from the layers below (a model config's own checks of a `--config` file's values, say) most likely comes
    from bad input too: it is reported the same way, prefixed `train:`.
    """
    from ..training import TrainingConfig, train

    options = {
        config_field.name: getattr(args, config_field.name) for config_field in dataclasses.fields(TrainingConfig)
    }
    try:
        result = train(TrainingConfig(**options))
    except UserInputError:
        raise
    except ValueError as error:
        raise UserInputError(f"train: {error}") from error
    print(f"model: {result.output_dir} (step {result.step})")
    if result.metrics is not None:
        print("eval: " + ", ".join(f"{key} {value:.4f}" for key, value in result.metrics.items()))
    return 0
