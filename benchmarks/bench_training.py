"""Training benchmark: time and peak memory of one optimisation step on a batch of 2-frame clips.

A step is forward with random labels (a few rectangle tracks per clip, deep supervision on), backward, gradient
clipping at 0.01 and an AdamW update, as in the paper's recipe. Time is the median over `--repeats` steps after
`--warmup` ones, split into forward (with the loss), backward and optimiser; peak memory as in the inference
benchmark (fresh process on the CPU, `torch.cuda.max_memory_allocated` on CUDA).

    python benchmarks/bench_training.py --presets r50 --size 360x640 --batch-size 2
    python benchmarks/bench_training.py --quick
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import torch
from benchmark_utils import (
    PartTimer,
    answer_as_worker,
    autocast_context,
    gigabytes,
    load_benchmark_script,
    machine_info,
    markdown_table,
    measure_peak_memory,
    run_worker,
    seconds,
    time_runs,
    write_records,
)

inference = load_benchmark_script("bench_inference")

QUICK_SETTINGS = {"presets": ["tiny-r50"], "size": "64x96", "repeats": 1, "warmup": 1}
STEP_PARTS = ("forward", "backward", "optimizer")


def random_labels(
    batch_size: int, num_frames: int, height: int, width: int, num_labels: int, device: str, seed: int = 0
) -> dict[str, list[torch.Tensor]]:
    """Per clip, 1 to 3 tracks: a random rectangle per frame (absent in none), and a random class each."""
    generator = torch.Generator().manual_seed(seed)
    mask_labels, class_labels = [], []
    for _ in range(batch_size):
        num_tracks = int(torch.randint(1, 4, (1,), generator=generator))
        masks = torch.zeros(num_tracks, num_frames, height, width)
        for track in range(num_tracks):
            for frame in range(num_frames):
                top, left = (int(torch.randint(0, side // 2, (1,), generator=generator)) for side in (height, width))
                masks[track, frame, top : top + height // 3, left : left + width // 3] = 1
        mask_labels.append(masks.to(device))
        class_labels.append(torch.randint(0, num_labels, (num_tracks,), generator=generator).to(device))
    return {"mask_labels": mask_labels, "class_labels": class_labels}


def build_training_setup(case: dict[str, Any]) -> tuple[torch.nn.Module, torch.optim.Optimizer, dict[str, Any]]:
    """The model in training mode, its AdamW optimiser (backbone lr x0.1) and one batch with labels."""
    model = inference.build_video_model(case["preset"], None, case["device"]).train()
    backbone = set(model.model.pixel_level_module.encoder.parameters())
    trainable = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(
        [
            {"params": [p for p in trainable if p not in backbone], "lr": 1e-4},
            {"params": [p for p in trainable if p in backbone], "lr": 1e-5},
        ],
        weight_decay=0.05,
    )
    height, width = case["size"]
    pixel_values = torch.randn(case["batch_size"], case["num_frames"], 3, height, width, device=case["device"])
    labels = random_labels(
        case["batch_size"], case["num_frames"], height, width, model.config.num_labels, case["device"]
    )
    return model, optimizer, {"pixel_values_videos": pixel_values, **labels}


def training_step(model, optimizer, batch: dict[str, Any], precision: str, timer: PartTimer) -> float:
    """One forward + backward + clipped AdamW step; returns the loss."""
    optimizer.zero_grad(set_to_none=True)
    with timer.part("forward"), autocast_context(precision, batch["pixel_values_videos"].device):
        loss = model(**batch).loss
    with timer.part("backward"):
        loss.backward()
    with timer.part("optimizer"):
        torch.nn.utils.clip_grad_norm_(model.parameters(), 0.01)
        optimizer.step()
    return float(loss.detach())


def measure_memory_here(payload: dict[str, Any]) -> dict[str, Any]:
    """Build the configuration and report the peak memory of one training step (after one unmeasured step)."""
    torch.set_num_threads(payload["threads"])
    model, optimizer, batch = build_training_setup(payload)
    timer = PartTimer({}, payload["device"])
    training_step(model, optimizer, batch, payload["precision"], timer)  # optimiser state now exists
    memory: dict[str, Any] = {}
    with measure_peak_memory(payload["device"], memory):
        training_step(model, optimizer, batch, payload["precision"], timer)
    return memory


def benchmark_case(case: dict[str, Any], args: argparse.Namespace) -> dict[str, Any]:
    """Time and memory of the training step for one configuration, as a record."""
    model, optimizer, batch = build_training_setup(case)
    timer = PartTimer({}, case["device"])
    losses = []

    def step() -> None:
        losses.append(training_step(model, optimizer, batch, case["precision"], timer))

    timing = time_runs(step, args.repeats, args.warmup, timer, case["device"])
    record = {
        **case,
        "repeats": args.repeats,
        "warmup": args.warmup,
        "step_s": timing["total_s"],
        "parts_s": {name: timing["parts_s"].get(name, 0.0) for name in STEP_PARTS},
        "runs_s": timing["runs_s"],
        "losses": losses,
    }
    if args.memory == "subprocess":
        record["memory"] = run_worker(Path(__file__), {**case, "threads": torch.get_num_threads()})
    elif args.memory == "inprocess":
        record["memory"] = {}
        with measure_peak_memory(case["device"], record["memory"]):
            training_step(model, optimizer, batch, case["precision"], timer)
    return record


def table(records: list[dict[str, Any]]) -> str:
    header = ["preset", "input", "batch x frames", "precision", "step", "forward", "backward", "optimizer", "peak mem"]
    rows = [
        [
            record["preset"],
            "x".join(map(str, record["size"])),
            f"{record['batch_size']} x {record['num_frames']}",
            record["precision"],
            seconds(record["step_s"]),
            *(seconds(record["parts_s"][name]) for name in STEP_PARTS),
            gigabytes(record["memory"]["peak_bytes"]) if record.get("memory") else "",
        ]
        for record in records
    ]
    return markdown_table(header, rows)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], allow_abbrev=False)
    parser.add_argument("--quick", action="store_true", help="tiny config, one step: checks the code path")
    parser.add_argument("--presets", nargs="+", default=["r50"], help="r50, swin-t, swin-l, a preset name, tiny-r50")
    parser.add_argument("--size", default="360x640", help="frame size HxW (multiple of 32 is best)")
    parser.add_argument("--batch-size", type=int, default=2, help="clips per batch")
    parser.add_argument("--frames", type=int, default=2, help="frames per clip (the paper uses 2)")
    parser.add_argument("--precisions", nargs="+", choices=["fp32", "bf16"], default=["fp32"])
    parser.add_argument("--repeats", type=int, default=5, help="measured steps (median)")
    parser.add_argument("--warmup", type=int, default=1, help="unmeasured steps before them")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--threads", type=int, help="torch CPU threads (default: torch's)")
    parser.add_argument("--memory", choices=["auto", "subprocess", "inprocess", "off"], default="auto")
    parser.add_argument("--output", help="write the records as JSON here")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    return parser


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.quick:  # tiny settings become the defaults; options given explicitly still win
        parser.set_defaults(**QUICK_SETTINGS)
        args = parser.parse_args(argv)
    if args.memory == "auto":
        fresh = torch.device(args.device).type == "cpu" and not args.quick
        args.memory = "subprocess" if fresh else "inprocess"
    if args.threads:
        torch.set_num_threads(args.threads)
    return args


def run(args: argparse.Namespace) -> list[dict[str, Any]]:
    """Measure every (preset, precision), print the table and write the records; returns the records."""
    if torch.device(args.device).type == "cuda" and not torch.cuda.is_available():
        raise SystemExit("--device cuda was asked for, but CUDA is not available")
    records = []
    for preset in args.presets:
        for precision in args.precisions:
            case = {
                "preset": preset,
                "size": list(inference.parse_size(args.size)),
                "batch_size": args.batch_size,
                "num_frames": args.frames,
                "precision": precision,
                "device": args.device,
            }
            records.append(benchmark_case(case, args))
    machine = machine_info(args.device)
    print(f"{machine}\n\n{table(records)}")
    write_records(args.output, "training", records, machine=machine)
    return records


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.worker:
        answer_as_worker(measure_memory_here(json.loads(args.worker)))
        return 0
    run(args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
