"""Distributed training on CPU (gloo): `accelerate launch --num_processes 2` gives what one process gives.

One optimizer step of 2 processes with 1 clip each must produce the averaged gradients of 1 process with both
clips, and evaluation must gather every video's predictions exactly once. The worker (tests/distributed_worker.py)
runs the training module's own sampler, collator, forward/backward and prediction code.
"""

import json
import os
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest
import torch
from conftest import tiny_config

from modeling_m2f_video.processing.synthetic import make_synthetic_dataset

WORKER = Path(__file__).with_name("distributed_worker.py")
TIMEOUT_S = 240


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> dict[int, Path]:
    """The worker's outputs with 1 and with 2 processes (both started at once to save time)."""
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
    model_config = root / "tiny.json"
    tiny_config(test_shortest_edge=64).to_json_file(model_config)
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(WORKER.parent)}
    launch = [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2"]
    launch += ["--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no"]
    arguments = [str(WORKER), str(root / "data"), str(model_config)]
    commands = {1: [sys.executable, *arguments, str(root / "one")], 2: [*launch, *arguments, str(root / "two")]}
    processes = {
        count: subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        for count, command in commands.items()
    }
    for count, process in processes.items():
        output, _ = process.communicate(timeout=TIMEOUT_S)
        assert process.returncode == 0, f"{count}-process worker failed:\n{output[-4000:]}"
    return {1: root / "one", 2: root / "two"}


def test_two_processes_average_to_the_one_process_gradients(runs):
    summaries = {count: json.loads((folder / "summary.json").read_text()) for count, folder in runs.items()}
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
    records = {count: json.loads((folder / "records.json").read_text()) for count, folder in runs.items()}
    for count, run_records in records.items():
        per_video = Counter(record["video_id"] for record in run_records)
        assert per_video == {video["id"]: top_k for video in videos}, f"{count} process(es)"

    def key(record: dict) -> tuple:
        return record["video_id"], record["category_id"], round(record["score"], 5)

    one, two = sorted(records[1], key=key), sorted(records[2], key=key)
    assert [key(record) for record in one] == [key(record) for record in two]
    assert [record["segmentations"] for record in one] == [record["segmentations"] for record in two]
