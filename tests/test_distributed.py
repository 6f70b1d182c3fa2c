"""Distributed training on CPU (gloo): `accelerate launch --num_processes 2` gives what one process gives.

One optimizer step of 2 processes with 1 clip each must produce the averaged gradients of 1 process with both
clips, and evaluation must gather every video's predictions exactly once. The worker (tests/distributed_worker.py)
runs the training module's own sampler, collator, forward/backward and prediction code.

The training command itself must run for several steps on 2 processes, here with a Swin backbone: DDP, with its
default `find_unused_parameters=False`, fails at the second step if a trainable parameter got no gradient in the
first (as the final norm of transformers' `SwinModel`, which the Swin backbone never uses, did while it was
trainable; `tests/test_modeling.py` checks that every trainable parameter of either backbone gets a gradient).
"""

import json
import math
import os
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest
import torch
from conftest import tiny_config
from distributed_worker import TRAIN_STEPS

from modeling_m2f_video.processing.synthetic import make_synthetic_dataset

WORKER = Path(__file__).with_name("distributed_worker.py")
TIMEOUT_S = 240


def launch(mode: str, num_processes: int, data: Path, model_config: Path, output: Path) -> subprocess.Popen:
    """Starts the worker in `mode` on `num_processes` processes (`accelerate launch` for more than one)."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(WORKER.parent)}
    command = [sys.executable]
    if num_processes > 1:
        command += ["-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", str(num_processes)]
        command += ["--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no"]
    command += [str(WORKER), mode, str(data), str(model_config), str(output)]
    return subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def wait_for(processes: dict[str, subprocess.Popen]) -> None:
    """Waits for every worker; a failed one fails the test with the end of its output."""
    for name, process in processes.items():
        output, _ = process.communicate(timeout=TIMEOUT_S)
        assert process.returncode == 0, f"{name} failed:\n{output[-4000:]}"


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> dict:
    """The worker's outputs: first-step gradients and evaluation records (ResNet) with 1 and with 2 processes, and
    a 2-process run of the training command with a Swin backbone (all started at once to save time)."""
    root = tmp_path_factory.mktemp("distributed")
    # Every video has 2 objects, so the two clips of the step have the same number of tracks: the class loss is a
    # weighted mean over each process's queries, and the average of per-process means equals the mean over both
    # clips only when the clips carry the same weight (as in the official code).
    make_synthetic_dataset(
        root / "data",
        num_videos=12,
        num_frames=4,
        num_classes=3,
        height=64,
        width=80,
        valid_fraction=0.25,
        progress=False,
    )
    configs = {backbone: root / f"tiny-{backbone}.json" for backbone in ("resnet", "swin")}
    for backbone, path in configs.items():
        tiny_config(backbone, test_shortest_edge=64).to_json_file(path)
    data = root / "data"
    wait_for(
        {
            "1-process gradients worker": launch("gradients", 1, data, configs["resnet"], root / "one"),
            "2-process gradients worker": launch("gradients", 2, data, configs["resnet"], root / "two"),
            "2-process Swin training": launch("train", 2, data, configs["swin"], root / "swin"),
        }
    )
    return {1: root / "one", 2: root / "two", "swin": root / "swin"}


def test_two_processes_average_to_the_one_process_gradients(runs):
    summaries = {count: json.loads((runs[count] / "summary.json").read_text()) for count in (1, 2)}
    assert summaries[1]["num_processes"] == 1 and summaries[2]["num_processes"] == 2
    # Both runs trained on the same two clips, and they weigh the same in the class loss (see the fixture).
    assert summaries[1]["instances_per_clip"] == summaries[2]["instances_per_clip"]
    assert len(set(summaries[1]["instances_per_clip"])) == 1

    one = torch.load(runs[1] / "gradients.pt", weights_only=True)
    two = torch.load(runs[2] / "gradients.pt", weights_only=True)
    assert one.keys() == two.keys() and len(one) > 100
    largest = max(gradient.abs().max().item() for gradient in one.values())
    assert largest > 1e-2  # the comparison is meaningful
    for name, gradient in one.items():
        torch.testing.assert_close(two[name], gradient, rtol=1e-3, atol=1e-5, msg=lambda m, name=name: f"{name}: {m}")


def test_evaluation_gathers_every_video_once(runs):
    videos = json.loads((runs[1].parent / "data" / "valid" / "instances.json").read_text())["videos"]
    assert len(videos) == 3  # an odd number: the two processes get different numbers of videos
    top_k = tiny_config().test_top_k
    records = {count: json.loads((runs[count] / "records.json").read_text()) for count in (1, 2)}
    for count, run_records in records.items():
        per_video = Counter(record["video_id"] for record in run_records)
        assert per_video == {video["id"]: top_k for video in videos}, f"{count} process(es)"

    def key(record: dict) -> tuple:
        return record["video_id"], record["category_id"], round(record["score"], 5)

    one, two = sorted(records[1], key=key), sorted(records[2], key=key)
    assert [key(record) for record in one] == [key(record) for record in two]
    assert [record["segmentations"] for record in one] == [record["segmentations"] for record in two]


def test_swin_trains_for_several_steps_on_two_processes(runs):
    summary = json.loads((runs["swin"] / "training.json").read_text())
    assert summary["step"] == TRAIN_STEPS >= 2 and len(summary["losses"]) == TRAIN_STEPS
    assert all(math.isfinite(loss) for loss in summary["losses"])
    # Every trainable parameter got a gradient and was updated, the Swin backbone's included.
    changes = summary["parameter_changes"]
    assert any(name.startswith("model.pixel_level_module.encoder.swin.") for name in changes)
    assert not [name for name, change in changes.items() if change == 0]
