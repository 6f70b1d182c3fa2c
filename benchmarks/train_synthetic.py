"""Train a small video Mask2Former from scratch on synthetic videos (CPU-feasible) and measure its AP.

It writes a synthetic YouTube-VIS set (unless it exists), trains with `modeling_m2f_video.training.train`
(the `m2f-video train` code), evaluates on the held-out split with the YouTube-VIS metric, and prints the recipe,
steps, wall time and the 12 numbers as JSON. With `--install-demo`, the trained folder becomes the package's demo
model (`modeling_m2f_video/demo_model/`), with a model card (README.md) that gives this exact command line.

    python benchmarks/train_synthetic.py --work /tmp/m2f-synthetic --install-demo
"""

import argparse
import json
import shlex
import shutil
import sys
import time
from pathlib import Path

import torch
from transformers import ResNetConfig

from modeling_m2f_video import Mask2FormerVideoConfig
from modeling_m2f_video.hub import save_model_card
from modeling_m2f_video.processing.synthetic import make_synthetic_dataset
from modeling_m2f_video.training import TrainingConfig, train

DEMO_DIR = Path(__file__).resolve().parents[1] / "modeling_m2f_video" / "demo_model"
DEMO_FILES = ("config.json", "model.safetensors", "video_preprocessor_config.json", "eval.json")


def small_model_config(args: argparse.Namespace) -> Mask2FormerVideoConfig:
    """A small ResNet (basic blocks) + a narrow decoder: a few MB, fast on 2 CPU cores, enough for the synthetic shapes."""
    backbone = ResNetConfig(
        embedding_size=16,
        hidden_sizes=[16, 32, 64, 128],
        depths=[1, 1, 1, 1],
        layer_type="basic",
        out_features=["stage1", "stage2", "stage3", "stage4"],
    )
    return Mask2FormerVideoConfig(
        backbone_config=backbone,
        # From scratch the batch norms must learn; frozen ones (for pretrained backbones) would stay identities.
        backbone_frozen_batch_norm=False,
        feature_size=64,
        mask_feature_size=64,
        hidden_dim=64,
        encoder_layers=1,
        encoder_feedforward_dim=128,
        decoder_layers=4,
        num_attention_heads=4,
        dim_feedforward=256,
        num_queries=args.queries,
        train_num_points=512,
        test_shortest_edge=args.size,
        test_top_k=10,
    )


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", default="/tmp/m2f-train-synthetic", help="folder for the data and the run")
    parser.add_argument("--videos", type=int, default=160, help="synthetic videos (train + valid)")
    parser.add_argument("--frames", type=int, default=6, help="frames per video")
    parser.add_argument("--classes", type=int, default=3, help="synthetic classes")
    parser.add_argument("--height", type=int, default=96)
    parser.add_argument("--width", type=int, default=128)
    parser.add_argument("--size", type=int, default=96, help="shortest side in training and at test time")
    parser.add_argument("--queries", type=int, default=10)
    parser.add_argument("--steps", type=int, default=800)
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--clip-frames", type=int, default=2, help="frames per training clip")
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--num-workers", type=int, default=1)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--install-demo", action="store_true", help="copy the trained model to the demo folder")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
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
    model_config = work / "model_config.json"
    small_model_config(args).to_json_file(model_config)
    cfg = TrainingConfig(
        train_data=str(data / "train"),
        output_dir=str(work / "model"),
        eval_data=str(data / "valid"),
        config=str(model_config),
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
    torch.set_num_threads(max(1, torch.get_num_threads()))
    start = time.perf_counter()
    result = train(cfg)
    wall_time = time.perf_counter() - start
    report = {
        "command": "python benchmarks/train_synthetic.py " + shlex.join(argv if argv is not None else sys.argv[1:]),
        "data": {key: getattr(args, key) for key in ("videos", "frames", "classes", "height", "width", "seed")},
        "recipe": {key: getattr(args, key) for key in ("steps", "batch_size", "clip_frames", "lr", "size", "queries")},
        "threads": torch.get_num_threads(),
        "wall_time_s": round(wall_time, 1),
        "first_losses": [round(loss, 3) for loss in result.losses[:10]],
        "last_losses": [round(loss, 3) for loss in result.losses[-10:]],
        "metrics": result.metrics,
    }
    (work / "benchmark.json").write_text(json.dumps(report, indent=2))
    print(json.dumps(report, indent=2))
    if args.install_demo:
        install_demo(work / "model", report)
    return 0


def install_demo(model_dir: Path, report: dict) -> None:
    """Copies the trained folder into the package's demo folder, with a model card saying exactly how it was made."""
    DEMO_DIR.mkdir(exist_ok=True)
    for name in DEMO_FILES:
        shutil.copy2(model_dir / name, DEMO_DIR / name)
    metrics = report["metrics"] or {}
    how_made = "\n".join(
        [
            "The project's demo model: a small video Mask2Former (a 4-stage ResNet of basic blocks, 16-128 channels;",
            "a 64-channel decoder with 3 masked-attention layers and 10 queries) trained from scratch on CPU on the",
            "project's synthetic videos (moving, scaling, occluding textured shapes; a class is a shape and a colour",
            "family). It is for demos and tests of the pipeline, not for real videos. Made with, from the repository",
            "root:",
            "",
            "```bash",
            report["command"],
            "```",
            "",
            f"Training: {report['recipe']['steps']} steps of {report['recipe']['batch_size']} clips of "
            f"{report['recipe']['clip_frames']} frames, "
            f"{report['wall_time_s'] / 60:.1f} minutes on {report['threads']} CPU threads (shared machine). "
            f"Synthetic data: {json.dumps(report['data'])}.",
            "",
            f"On the held-out synthetic videos (YouTube-VIS metric): AP {metrics.get('AP', -1):.3f}, "
            f"AP50 {metrics.get('AP50', -1):.3f}, AP75 {metrics.get('AP75', -1):.3f}; all 12 numbers in `eval.json`.",
        ]
    )
    save_model_card(DEMO_DIR, Mask2FormerVideoConfig.from_pretrained(DEMO_DIR), how_made=how_made)


if __name__ == "__main__":
    sys.exit(main())
