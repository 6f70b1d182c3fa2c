"""Train a video Mask2Former from scratch on synthetic videos and measure its AP.

It writes a synthetic YouTube-VIS set (unless it exists), trains with `modeling_m2f_video.training.train`
(the `m2f-video train` code, on the GPU when there is one), evaluates on the held-out split with the YouTube-VIS
metric, and writes the recipe, steps, wall time and the 12 numbers to `WORK/benchmark.json`. Two model sizes:
`small` (0.6 M parameters, the demo model, trains on a CPU) and `large` (5.1 M, a GPU run at twice the
resolution).

`--minutes M` picks the number of steps that fits M minutes on this machine: a 40-step probe run (same model,
data and batch) measures the time per step first. With `--install-demo`, the trained folder becomes the
package's demo model (`modeling_m2f_video/demo_model/`) with a model card (README.md) that gives the command
line; `--install-from WORK` installs a finished run (e.g. one trained on another machine) without training.

    python benchmarks/train_synthetic.py --work /tmp/m2f-synthetic --install-demo
    python benchmarks/train_synthetic.py --work /tmp/m2f-large --model large --videos 1000 --height 192 \
        --width 256 --size 192 --classes 6 --batch-size 16 --minutes 4
"""

import argparse
import dataclasses
import json
import os
import shlex
import shutil
import sys
import time
from pathlib import Path

import torch
from transformers import ResNetConfig

from modeling_m2f_video import Mask2FormerVideoConfig, Mask2FormerVideoForVideoInstanceSegmentation
from modeling_m2f_video.model_cards import save_model_card
from modeling_m2f_video.processing.synthetic import make_synthetic_dataset
from modeling_m2f_video.training import TrainingConfig, train

DEMO_DIR = Path(__file__).resolve().parents[1] / "modeling_m2f_video" / "demo_model"
DEMO_FILES = ("config.json", "model.safetensors", "video_preprocessor_config.json", "eval.json")


# Per size: backbone channels and blocks, decoder width, pixel-decoder layers, masked-attention layers + 1
# (transformers' `decoder_layers` counts the learnable query embedding as a layer), heads, points per mask.
MODEL_SIZES = {
    "small": {"channels": [16, 32, 64, 128], "depths": [1, 1, 1, 1], "hidden": 64, "encoder_layers": 1,
              "decoder_layers": 4, "heads": 4, "points": 512},
    "large": {"channels": [32, 64, 128, 256], "depths": [2, 2, 2, 2], "hidden": 128, "encoder_layers": 3,
              "decoder_layers": 7, "heads": 8, "points": 2048},
}  # fmt: skip


def model_config(args: argparse.Namespace) -> Mask2FormerVideoConfig:
    """A ResNet of basic blocks + a narrow decoder of the chosen size, enough for the synthetic shapes."""
    size = MODEL_SIZES[args.model]
    backbone = ResNetConfig(
        embedding_size=size["channels"][0],
        hidden_sizes=size["channels"],
        depths=size["depths"],
        layer_type="basic",
        out_features=["stage1", "stage2", "stage3", "stage4"],
    )
    return Mask2FormerVideoConfig(
        backbone_config=backbone,
        # From scratch the batch norms must learn; frozen ones (for pretrained backbones) would stay identities.
        backbone_frozen_batch_norm=False,
        feature_size=size["hidden"],
        mask_feature_size=size["hidden"],
        hidden_dim=size["hidden"],
        encoder_layers=size["encoder_layers"],
        encoder_feedforward_dim=2 * size["hidden"],
        decoder_layers=size["decoder_layers"],
        num_attention_heads=size["heads"],
        dim_feedforward=4 * size["hidden"],
        num_queries=args.queries,
        train_num_points=size["points"],
        test_shortest_edge=args.size,
        test_top_k=10,
    )


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", default="/tmp/m2f-train-synthetic", help="folder for the data and the run")
    parser.add_argument("--model", choices=sorted(MODEL_SIZES), default="small", help="model size (default small)")
    parser.add_argument("--videos", type=int, default=160, help="synthetic videos (train + valid)")
    parser.add_argument("--frames", type=int, default=6, help="frames per video")
    parser.add_argument("--classes", type=int, default=3, help="synthetic classes")
    parser.add_argument("--height", type=int, default=96)
    parser.add_argument("--width", type=int, default=128)
    parser.add_argument("--size", type=int, default=96, help="shortest side in training and at test time")
    parser.add_argument("--queries", type=int, default=10)
    parser.add_argument("--steps", type=int, default=800, help="optimizer steps (ignored with --minutes)")
    parser.add_argument("--minutes", type=float, help="train for as many steps as fit in this time (probed)")
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--clip-frames", type=int, default=2, help="frames per training clip")
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--num-workers", type=int, default=1)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--install-demo", action="store_true", help="copy the trained model to the demo folder")
    parser.add_argument("--install-from", metavar="WORK", help="install the finished run in WORK; no training")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.install_from:
        install_demo(Path(args.install_from))
        return 0
    work = Path(args.work)
    data = work / "data"
    if not (data / "valid" / "instances.json").is_file():
        make_synthetic_dataset(
            data,
            num_videos=args.videos,
            num_frames=args.frames,
            num_classes=args.classes,
            height=args.height,
            width=args.width,
            seed=args.seed,
            progress=False,
        )
    config, config_file = model_config(args), work / "model_config.json"
    config.to_json_file(config_file)
    cfg = TrainingConfig(
        train_data=str(data / "train"),
        output_dir=str(work / "model"),
        eval_data=str(data / "valid"),
        config=str(config_file),
        max_steps=args.steps,
        batch_size=args.batch_size,
        num_frames=args.clip_frames,
        lr=args.lr,
        backbone_multiplier=1.0,  # from scratch: the backbone learns as fast as the rest
        min_sizes=(args.size,),
        num_workers=args.num_workers,
        save_every=500,
        seed=args.seed,
    )
    seconds_per_step = None
    if args.minutes:
        seconds_per_step = probe_seconds_per_step(cfg, work / "probe")
        cfg.max_steps = max(1, int(args.minutes * 60 / seconds_per_step))
    start = time.perf_counter()
    result = train(cfg)
    wall_time = time.perf_counter() - start
    report = {
        "command": "python benchmarks/train_synthetic.py " + shlex.join(argv if argv is not None else sys.argv[1:]),
        "device": device_description(),
        "model": args.model,
        "parameters": sum(
            param.numel() for param in Mask2FormerVideoForVideoInstanceSegmentation(config).parameters()
        ),
        "data": {key: getattr(args, key) for key in ("videos", "frames", "classes", "height", "width", "seed")},
        "recipe": {key: getattr(args, key) for key in ("batch_size", "clip_frames", "lr", "size", "queries")},
        "steps": cfg.max_steps,
        "probe_seconds_per_step": seconds_per_step,
        "threads": torch.get_num_threads(),
        "wall_time_s": round(wall_time, 1),
        "first_losses": [round(loss, 3) for loss in result.losses[:10]],
        "last_losses": [round(loss, 3) for loss in result.losses[-10:]],
        "metrics": result.metrics,
    }
    (work / "benchmark.json").write_text(json.dumps(report, indent=2))
    print(json.dumps(report, indent=2))
    if args.install_demo:
        install_demo(work)
    return 0


PROBE_STEPS = 40


def probe_seconds_per_step(cfg: TrainingConfig, probe_dir: Path) -> float:
    """Seconds per step of `cfg` on this machine, from a short run (set-up included, so it errs on the long side)."""
    probe = dataclasses.replace(
        cfg, output_dir=str(probe_dir), eval_data=None, max_steps=PROBE_STEPS, save_every=0, progress=False
    )
    start = time.perf_counter()
    train(probe)
    seconds = (time.perf_counter() - start) / PROBE_STEPS
    shutil.rmtree(probe_dir)
    return seconds


def device_description() -> str:
    """The GPU's name, or the CPU's core count."""
    if torch.cuda.is_available():
        return torch.cuda.get_device_name(0)
    return f"CPU, {os.cpu_count()} cores"


def install_demo(work: Path) -> None:
    """Copies the run's model folder into the package's demo folder, with a model card saying how it was made."""
    report = json.loads((work / "benchmark.json").read_text())
    DEMO_DIR.mkdir(exist_ok=True)
    for name in DEMO_FILES:
        shutil.copy2(work / "model" / name, DEMO_DIR / name)
    config = Mask2FormerVideoConfig.from_pretrained(DEMO_DIR)
    metrics = report["metrics"] or {}
    recipe = report["recipe"]
    how_made = "\n".join(
        [
            f"The project's demo model: a small video Mask2Former ({report['parameters'] / 1e6:.1f} M parameters: a"
            f" 4-stage ResNet of basic blocks, {config.backbone_config.hidden_sizes[0]}-"
            f"{config.backbone_config.hidden_sizes[-1]} channels; a {config.hidden_dim}-channel decoder with"
            f" {config.decoder_layers - 1} masked-attention layers and {config.num_queries} queries) trained from",
            "scratch on the project's synthetic videos (moving, scaling, occluding textured shapes; a class is a shape",
            "and a colour family). It is for demos and tests of the pipeline, not for real videos. Made with, from the",
            "repository root:",
            "",
            "```bash",
            report["command"],
            "```",
            "",
            f"Training: {report['steps']} steps of {recipe['batch_size']} clips of {recipe['clip_frames']} frames,"
            f" {report['wall_time_s'] / 60:.1f} minutes on {report['device']}"
            + (
                f" (`--minutes` chose the steps; `--steps {report['steps']}` repeats them)"
                if report["probe_seconds_per_step"]
                else ""
            )
            + f". Synthetic data: {json.dumps(report['data'])}.",
            "",
            f"On the held-out synthetic videos (YouTube-VIS metric): AP {metrics.get('AP', -1):.3f}, "
            f"AP50 {metrics.get('AP50', -1):.3f}, AP75 {metrics.get('AP75', -1):.3f}; all 12 numbers in `eval.json`.",
        ]
    )
    save_model_card(DEMO_DIR, config, how_made=how_made)


if __name__ == "__main__":
    sys.exit(main())
