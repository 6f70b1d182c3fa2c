"""Training on bad input: what is refused, what survives an interruption, and what is never executed.

- resuming reads only safetensors and JSON: planted pickles never run, damaged checkpoints give a clear error
  (property-based, with hypothesis), and the newest intact checkpoint is picked;
- a checkpoint is complete or absent, whatever moment a save is killed at;
- a folder holding a run is not overwritten without `--overwrite`, and `--resume` of another architecture is
  refused;
- option values are checked where they are given, and a non-finite loss stops the run before it spoils the model;
- annotation files are checked record by record before training (ids, frame paths, compressed RLE strings);
- two processes save and resume exactly.
"""

import hashlib
import json
import math
import os
import pickle
import re
import shutil
import socket
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import pytest
import safetensors.torch
import torch
from accelerate import Accelerator
from conftest import tiny_config
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from torch import nn

from modeling_m2f_video import Mask2FormerVideoForVideoInstanceSegmentation
from modeling_m2f_video.cli import main as cli_main
from modeling_m2f_video.errors import UserInputError
from modeling_m2f_video.processing.synthetic import make_synthetic_dataset
from modeling_m2f_video.training import TrainingConfig, train
from modeling_m2f_video.training import loop as training_loop
from modeling_m2f_video.training.checkpoints import (
    STATE_FILE,
    load_checkpoint,
    resume_checkpoint,
    save_checkpoint,
    verify_checkpoint,
)
from modeling_m2f_video.training.data import load_split
from modeling_m2f_video.training.model_setup import StepSchedule
from modeling_m2f_video.ytvis.rle import encode_rle

CHECKPOINT_FILES = (
    "model.safetensors",
    "optimizer.safetensors",
    "optimizer.json",
    "scheduler.json",
    "rng_state_0.json",
    STATE_FILE,
)
# What Accelerate's `load_state` unpickles (with weights_only=False for the custom objects and random states).
ACCELERATE_PICKLES = (
    "custom_checkpoint_0.pkl",
    "random_states_0.pkl",
    "optimizer.bin",
    "scheduler.bin",
    "pytorch_model.bin",
    "scaler.pt",
    "sampler.bin",
)


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    """A small synthetic set (4 train / 2 valid videos of 3 frames, 32 x 48) and a tiny model config."""
    root = tmp_path_factory.mktemp("safety_data")
    make_synthetic_dataset(
        root, num_videos=6, num_frames=3, num_classes=2, height=32, width=48, valid_fraction=0.34, progress=False
    )
    tiny_config(test_shortest_edge=32).to_json_file(root / "tiny.json")
    return root


def run_options(data: Path) -> list[str]:
    """The options of a two-step run of the tiny model, with a checkpoint after each step."""
    return [
        *("--train-data", str(data / "train"), "--config", str(data / "tiny.json"), "--max-steps", "2"),
        *("--save-every", "1", "--keep-checkpoints", "0", "--min-sizes", "32", "--batch-size", "2"),
        *("--num-workers", "0", "--no-progress", "--lr", "1e-3"),
    ]


@pytest.fixture(scope="module")
def finished_run(data, tmp_path_factory) -> Path:
    """A finished two-step run folder (checkpoints step-000001 and step-000002, log, model)."""
    output = tmp_path_factory.mktemp("finished") / "run"
    assert cli_main(["train", *run_options(data), "--output", str(output)]) == 0
    return output


def copy_run(run: Path, destination: Path) -> Path:
    shutil.copytree(run, destination)
    return destination


def log_of(run: Path) -> list[dict]:
    return [json.loads(line) for line in (run / "log.jsonl").read_text().splitlines()]


def files_of(folder: Path) -> dict[str, bytes]:
    return {str(path.relative_to(folder)): path.read_bytes() for path in sorted(folder.rglob("*")) if path.is_file()}


def resign(checkpoint: Path) -> None:
    """Rewrite the marker's sizes and hashes for the files as they are now: a damaged or planted file that also
    passes the integrity check, as an attacker (or a buggy tool) would leave it."""
    marker = json.loads((checkpoint / STATE_FILE).read_text())
    for name, record in marker["files"].items():
        content = (checkpoint / name).read_bytes()
        record.update(bytes=len(content), sha256=hashlib.sha256(content).hexdigest())
    (checkpoint / STATE_FILE).write_text(json.dumps(marker))


class Planted:
    """A pickle whose unpickling runs `open(marker, "w")`: the marker file appears if anything unpickles it."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return open, (str(self.marker), "w")


def plant(path: Path, marker: Path) -> None:
    """Replace `path` by a malicious pickle: in torch's zip format for `.bin`/`.pt` files, plain otherwise."""
    if path.suffix in (".bin", ".pt"):
        torch.save(Planted(marker), path)
    else:
        path.write_bytes(pickle.dumps(Planted(marker)))


# ------------------------------------------------------------------------- a tiny model's training state


class TinyState:
    """A linear model with AdamW and the run's schedule, stepped like a run: the checkpoint functions' subjects."""

    def __init__(self) -> None:
        self.accelerator = Accelerator(cpu=True)
        self.model = nn.Linear(3, 2)
        self.optimizer = torch.optim.AdamW(self.model.parameters(), lr=1e-3)
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(self.optimizer, StepSchedule(decay_steps=(3,)))
        self.step = 0

    def train_to(self, step: int) -> "TinyState":
        while self.step < step:
            self.model(torch.randn(4, 3)).square().sum().backward()
            self.optimizer.step()
            self.scheduler.step()
            self.optimizer.zero_grad()
            self.step += 1
        return self

    def save(self, output: Path, keep: int = 0) -> Path:
        return save_checkpoint(self.accelerator, output, self.step, keep, self.model, self.optimizer, self.scheduler)

    def load(self, checkpoint: Path) -> int:
        """Verify and load a checkpoint folder, as `train` does; the step."""
        self.step = load_checkpoint(
            verify_checkpoint(checkpoint), self.accelerator, self.model, self.optimizer, self.scheduler
        )
        return self.step


def resume_config(output: Path, resume: bool | str = True) -> TrainingConfig:
    return TrainingConfig(train_data="unused", output_dir=str(output), resume=resume)


@pytest.fixture(scope="module")
def tiny_checkpoint(tmp_path_factory) -> Path:
    """A checkpoint of `TinyState` at step 2."""
    return TinyState().train_to(2).save(tmp_path_factory.mktemp("tiny_checkpoint"))


# ---------------------------------------------------------------------------------------- nothing executed


def test_resume_never_unpickles_planted_pickles(data, finished_run, tmp_path, capsys):
    marker = tmp_path / "code_ran"
    resume = ["train", *run_options(data), "--resume"]

    # Every file of the checkpoint replaced by a pickle, with the integrity record left as it was, then updated.
    for resigned in (False, True):
        run = copy_run(finished_run, tmp_path / f"every_file_{resigned}")
        shutil.rmtree(run / "checkpoints" / "step-000002")
        checkpoint = run / "checkpoints" / "step-000001"
        for name in CHECKPOINT_FILES[:-1]:
            plant(checkpoint / name, marker)
        if resigned:
            resign(checkpoint)
        assert cli_main([*resume, str(checkpoint), "--output", str(run)]) == 2
        error = capsys.readouterr().err
        assert error.startswith(f"error: {checkpoint}/") and error.count("\n") == 1, error
        assert ("not a valid safetensors file" if resigned else "truncated or changed") in error
        assert not marker.exists()

    # Accelerate's pickles beside an intact checkpoint are never read: the run resumes and finishes.
    run = copy_run(finished_run, tmp_path / "beside")
    for name in ACCELERATE_PICKLES:
        plant(run / "checkpoints" / "step-000001" / name, marker)
    assert cli_main([*resume, str(run / "checkpoints" / "step-000001"), "--output", str(run)]) == 0
    assert not marker.exists()
    capsys.readouterr()

    # A checkpoint of Accelerate's save_state (the format of earlier versions) is refused, unread.
    old = tmp_path / "old" / "checkpoints" / "step-000001"
    old.mkdir(parents=True)
    for name in ACCELERATE_PICKLES:
        plant(old / name, marker)
    (old / STATE_FILE).write_text(json.dumps({"step": 1}))
    assert cli_main([*resume, str(old), "--output", str(tmp_path / "old")]) == 2
    assert capsys.readouterr().err.startswith(f"error: {old}: a checkpoint of an earlier m2f-video")
    assert not marker.exists()


@pytest.mark.parametrize("name", CHECKPOINT_FILES)
def test_every_checkpoint_file_refuses_a_pickle_even_when_its_hash_matches(tiny_checkpoint, tmp_path, name):
    checkpoint = shutil.copytree(tiny_checkpoint, tmp_path / "checkpoint")
    marker = tmp_path / "code_ran"
    plant(checkpoint / name, marker)
    if name != STATE_FILE:
        resign(checkpoint)
    with pytest.raises(UserInputError, match=f"^{re.escape(str(checkpoint / name))}: not (a )?valid"):
        TinyState().load(checkpoint)
    assert not marker.exists()


DAMAGES = ("truncate", "flip", "pickle", "garbage")


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    name=st.sampled_from(CHECKPOINT_FILES),
    damage=st.sampled_from(DAMAGES),
    where=st.floats(0, 1, exclude_max=True),
    value=st.integers(1, 255),
    garbage=st.binary(min_size=1, max_size=256),
    resigned=st.booleans(),
)
def test_a_damaged_checkpoint_gives_a_clear_error_and_runs_nothing(
    tiny_checkpoint, name, damage, where, value, garbage, resigned
):
    """Truncated, bit-flipped, replaced by a pickle or by garbage, with or without a matching integrity record:
    loading either raises a one-line UserInputError naming the checkpoint, or succeeds where the change is one
    the integrity record cannot see and still valid data; nothing else escapes, and no code runs."""
    with tempfile.TemporaryDirectory() as folder:
        checkpoint = shutil.copytree(tiny_checkpoint, Path(folder) / "checkpoint")
        marker = Path(folder) / "code_ran"
        path = checkpoint / name
        content = path.read_bytes()
        position = int(where * len(content))
        if damage == "truncate":
            path.write_bytes(content[:position])
        elif damage == "flip":
            path.write_bytes(content[:position] + bytes([content[position] ^ value]) + content[position + 1 :])
        elif damage == "pickle":
            plant(path, marker)
        else:
            path.write_bytes(garbage)
        if resigned and name != STATE_FILE:
            resign(checkpoint)
        try:
            TinyState().load(checkpoint)
        except UserInputError as error:
            assert str(error).startswith(str(checkpoint)), error
            assert "\n" not in str(error)
        else:  # only a change the integrity record cannot see: re-signed, or in the record itself (say, a space)
            assert resigned or name == STATE_FILE, "a damaged file passed the integrity check"
        assert not marker.exists()


def test_the_fp16_loss_scale_is_checkpointed_as_json(tmp_path):
    state = TinyState().train_to(1)
    state.accelerator.scaler = torch.amp.GradScaler("cpu", init_scale=1024.0, growth_interval=7)
    checkpoint = state.save(tmp_path)
    assert json.loads((checkpoint / "scaler.json").read_text())["scale"] == 1024.0

    resumed = TinyState()
    resumed.accelerator.scaler = torch.amp.GradScaler("cpu")
    resumed.load(checkpoint)
    assert resumed.accelerator.scaler.state_dict() == state.accelerator.scaler.state_dict()
    for name, value in state.model.state_dict().items():
        torch.testing.assert_close(resumed.model.state_dict()[name], value, rtol=0, atol=0)


# ------------------------------------------------------------------------------------ nothing lost on a kill


def test_a_save_killed_midway_leaves_the_previous_checkpoint_complete(tmp_path, monkeypatch, capsys):
    output = tmp_path / "run"
    state = TinyState().train_to(2)
    state.save(output)
    old_four = files_of(state.train_to(4).save(output))

    # Resume from step 2 and rewrite step 4 on another trajectory; the rewrite is killed mid-file.
    resumed = TinyState()
    assert resumed.load(output / "checkpoints" / "step-000002") == 2
    torch.manual_seed(123)
    resumed.train_to(4)
    real_save_file = safetensors.torch.save_file

    def killed_save_file(tensors, filename, *args, **kwargs):
        if Path(filename).name == "optimizer.safetensors":
            real_save_file(tensors, filename, *args, **kwargs)
            Path(filename).write_bytes(Path(filename).read_bytes()[:100])
            raise KeyboardInterrupt
        real_save_file(tensors, filename, *args, **kwargs)

    monkeypatch.setattr(safetensors.torch, "save_file", killed_save_file)
    with pytest.raises(KeyboardInterrupt):
        resumed.save(output)
    monkeypatch.undo()

    checkpoints = output / "checkpoints"
    assert files_of(checkpoints / "step-000004") == old_four  # untouched, still complete
    assert not (checkpoints / ".step-000004.partial" / STATE_FILE).exists()
    picked = resume_checkpoint(resume_config(output), output, resumed.accelerator)
    assert picked.path == checkpoints / "step-000004" and picked.step == 4
    assert f"resuming from {checkpoints / 'step-000004'} (step 4)" in capsys.readouterr().out

    # The next save replaces step 4 whole and clears the leftover.
    resumed.save(output)
    new_four = files_of(checkpoints / "step-000004")
    assert new_four["model.safetensors"] != old_four["model.safetensors"]
    assert sorted(path.name for path in checkpoints.iterdir()) == ["step-000002", "step-000004"]
    verify_checkpoint(checkpoints / "step-000004")


def test_resume_skips_incomplete_or_damaged_checkpoints_and_names_a_given_one(tmp_path, caplog):
    output = tmp_path / "run"
    state = TinyState()
    for step in (1, 2, 3):
        state.train_to(step).save(output)
    checkpoints = output / "checkpoints"
    optimizer_file = checkpoints / "step-000003" / "optimizer.safetensors"
    optimizer_file.write_bytes(optimizer_file.read_bytes()[:-10])
    (checkpoints / "step-000002" / STATE_FILE).unlink()

    with caplog.at_level("WARNING"):
        picked = resume_checkpoint(resume_config(output), output, state.accelerator)
    assert picked.step == 1
    assert f"{optimizer_file}: truncated or changed" in caplog.text
    assert f"{checkpoints / 'step-000002'}: not a complete checkpoint" in caplog.text

    with pytest.raises(UserInputError, match=f"^{re.escape(str(optimizer_file))}: truncated or changed"):
        resume_checkpoint(resume_config(output, str(checkpoints / "step-000003")), output, state.accelerator)
    with pytest.raises(UserInputError, match="not a complete checkpoint"):
        resume_checkpoint(resume_config(output, str(checkpoints / "step-000002")), output, state.accelerator)
    shutil.rmtree(checkpoints / "step-000001")
    with pytest.raises(UserInputError, match="no checkpoint to resume from"):
        resume_checkpoint(resume_config(output), output, state.accelerator)


def test_resuming_an_earlier_checkpoint_in_place_continues_exactly_and_reads_no_pickle(
    data, finished_run, tmp_path, monkeypatch
):
    """From step 1 of a finished run, in its own folder: the log keeps step 1 (a line cut short by the kill is
    dropped), step 2 is rewritten to the same weights, and neither torch.load nor pickle is called."""
    run = copy_run(finished_run, tmp_path / "run")
    with (run / "log.jsonl").open("a") as log:
        log.write('{"step": 3, "lo')

    def refuse(*args, **kwargs):
        raise AssertionError("resume unpickled something")

    for module, name in ((torch, "load"), (pickle, "load"), (pickle, "loads")):
        monkeypatch.setattr(module, name, refuse)
    checkpoint = run / "checkpoints" / "step-000001"
    assert cli_main(["train", *run_options(data), "--output", str(run), "--resume", str(checkpoint)]) == 0
    monkeypatch.undo()

    assert log_of(run) == log_of(finished_run)
    final = Mask2FormerVideoForVideoInstanceSegmentation.from_pretrained(run).state_dict()
    for name, value in Mask2FormerVideoForVideoInstanceSegmentation.from_pretrained(finished_run).state_dict().items():
        torch.testing.assert_close(final[name], value, rtol=0, atol=0, msg=name)


# ---------------------------------------------------------------------------------------------- refused


def test_a_folder_holding_a_run_is_kept_unless_resumed_or_overwritten(data, finished_run, tmp_path, capsys):
    run = copy_run(finished_run, tmp_path / "run")
    (run / "notes.txt").write_text("mine")
    before = files_of(run)
    assert cli_main(["train", *run_options(data), "--output", str(run)]) == 2
    assert capsys.readouterr().err == (
        f"error: {run}: already holds a finished run; pass --resume to continue it or --overwrite to replace it\n"
    )
    assert files_of(run) == before

    unfinished = copy_run(finished_run, tmp_path / "unfinished")
    (unfinished / "model.safetensors").unlink()
    assert cli_main(["train", *run_options(data), "--output", str(unfinished)]) == 2
    assert "already holds an unfinished run (checkpoints, log.jsonl, training_config.json)" in capsys.readouterr().err

    assert cli_main(["train", *run_options(data), "--output", str(run), "--resume", "--overwrite"]) == 2
    assert "not both" in capsys.readouterr().err

    assert cli_main(["train", *run_options(data), "--max-steps", "1", "--output", str(run), "--overwrite"]) == 0
    assert [record["step"] for record in log_of(run)] == [1]
    assert [path.name for path in (run / "checkpoints").iterdir()] == ["step-000001"]
    assert (run / "notes.txt").read_text() == "mine"


def test_resume_refuses_a_checkpoint_of_another_architecture(data, finished_run, tmp_path, capsys):
    other = tmp_path / "other.json"
    tiny_config(test_shortest_edge=32, num_queries=7).to_json_file(other)
    checkpoint = finished_run / "checkpoints" / "step-000001"
    options = [
        *run_options(data),
        "--config",
        str(other),
        "--output",
        str(tmp_path / "run"),
        "--resume",
        str(checkpoint),
    ]
    assert cli_main(["train", *options]) == 2
    assert capsys.readouterr().err.startswith(f"error: {checkpoint}: holds the weights of another architecture")


@pytest.mark.parametrize(
    "option",
    [
        ["--lr", "nan"],
        ["--lr", "inf"],
        ["--lr", "0"],
        ["--weight-decay", "-0.1"],
        ["--clip-grad-norm", "nan"],
        ["--decay-gamma", "inf"],
        ["--warmup-factor", "0"],
        ["--batch-size", "0"],
        ["--grad-accum", "-1"],
        ["--max-steps", "-1"],
        ["--max-steps", "1.5"],
        ["--keep-checkpoints", "-1"],
        ["--seed", "-1"],
        ["--num-frames", "0"],
        ["--min-sizes", "32", "0"],
        ["--decay-steps", "-3"],
    ],
)
def test_option_values_are_checked_by_the_command_line(data, tmp_path, capsys, option):
    with pytest.raises(SystemExit) as exit_info:
        cli_main(["train", *run_options(data), "--output", str(tmp_path / "run"), *option])
    assert exit_info.value.code == 2
    assert f"argument {option[0]}: '{option[-1]}': must be " in capsys.readouterr().err
    assert not (tmp_path / "run").exists()


def test_training_config_checks_values_for_library_users_too(data, tmp_path, capsys):
    base = {"train_data": str(data / "train"), "output_dir": str(tmp_path / "run")}
    with pytest.raises(UserInputError, match=r"^--lr nan: must be a finite number > 0$"):
        TrainingConfig(**base, lr=math.nan)
    with pytest.raises(UserInputError, match=r"^--batch-size 0: must be an integer >= 1$"):
        TrainingConfig(**base, batch_size=0)
    with pytest.raises(UserInputError, match=r"^--min-sizes 32 '64': each value must be an integer >= 1$"):
        TrainingConfig(**base, min_sizes=[32, "64"])
    cfg = TrainingConfig(**base)
    cfg.keep_checkpoints = -2  # changed after creation: train checks again
    with pytest.raises(UserInputError, match="--keep-checkpoints -2"):
        train(cfg)
    assert cli_main(["train", *run_options(data), "--output", str(tmp_path / "run"), "--crop", "30", "20"]) == 2
    assert capsys.readouterr().err == "error: --crop 30 20: MIN must not exceed MAX\n"
    assert not (tmp_path / "run").exists()


def test_a_non_finite_loss_stops_training_before_the_update(data, tmp_path, monkeypatch):
    real_forward_backward = training_loop.forward_backward
    calls = []

    def nan_at_the_second_step(model, batch, accelerator):
        loss, terms = real_forward_backward(model, batch, accelerator)
        calls.append(1)
        return (loss * math.nan if len(calls) == 2 else loss), terms

    monkeypatch.setattr(training_loop, "forward_backward", nan_at_the_second_step)
    output = tmp_path / "run"
    cfg = TrainingConfig(
        train_data=str(data / "train"),
        output_dir=str(output),
        config=str(data / "tiny.json"),
        max_steps=3,
        save_every=1,
        batch_size=2,
        min_sizes=(32,),
        num_workers=0,
        progress=False,
    )
    with pytest.raises(training_loop.TrainingDivergedError, match=r"^step 2: the loss is nan; training stopped"):
        train(cfg)
    assert [record["step"] for record in log_of(output)] == [1]
    assert [path.name for path in (output / "checkpoints").iterdir()] == ["step-000001"]
    assert not (output / "model.safetensors").exists()


# ---------------------------------------------------------------------------------------- annotation files


def _first_segmentation(content: dict) -> tuple[dict, int]:
    """The first annotation with a mask, and the frame of its first mask."""
    for annotation in content["annotations"]:
        for t, segmentation in enumerate(annotation["segmentations"]):
            if segmentation:
                return annotation, t
    raise AssertionError("no mask in the synthetic set")


def _set_counts(content: dict, counts: str) -> str:
    annotation, t = _first_segmentation(content)
    annotation["segmentations"][t]["counts"] = counts
    return f"video {annotation['video_id']}, annotation {annotation['id']}: segmentations[{t}] (frame "


def _drop(content: dict, key: str, index: int) -> str:
    del content[key][index]["id"]
    return f"{key}[{index}]"


def _set_file_name(content: dict, file_name: str) -> str:
    video = content["videos"][0]
    video["file_names"][1] = file_name
    return f"video {video['id']}: file_names[1] {file_name!r} is not a relative path inside JPEGImages/"


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda content: _drop(content, "categories", 0), "has no integer 'id' (got None)"),
        (lambda content: _drop(content, "annotations", 1), "has no integer 'id' (got None)"),
        (lambda content: _set_file_name(content, "../../etc/x.jpg"), ""),
        (lambda content: _set_file_name(content, "/etc/passwd"), ""),
        (lambda content: _set_counts(content, "not an RLE!"), "invalid compressed RLE counts 'not an RLE!'"),
        (lambda content: _set_counts(content, encode_rle(np.ones((2, 2), bool))["counts"]), "invalid"),
    ],
    ids=["category-id", "annotation-id", "dot-dot", "absolute", "rle-malformed", "rle-wrong-size"],
)
def test_bad_annotation_records_are_refused_naming_file_and_record(data, tmp_path, change, message):
    split = shutil.copytree(data / "train", tmp_path / "train")
    annotation_file = split / "instances.json"
    content = json.loads(annotation_file.read_text())
    where = change(content)
    annotation_file.write_text(json.dumps(content))
    with pytest.raises(UserInputError) as error:
        load_split(split)
    assert str(error.value).startswith(f"{annotation_file}: {where}"), error.value
    assert message in str(error.value) and "\n" not in str(error.value)


def test_malformed_annotation_json_is_refused_naming_the_file(data, tmp_path):
    split = shutil.copytree(data / "train", tmp_path / "train")
    (split / "instances.json").write_text('{"videos": [')
    with pytest.raises(UserInputError, match=f"^{re.escape(str(split / 'instances.json'))}: not valid JSON"):
        load_split(split)


# ---------------------------------------------------------------------------------------- two processes


def free_port() -> int:
    """A TCP port that nothing listens on right now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_two_processes_checkpoint_and_resume_exactly(data, tmp_path):
    """`accelerate launch --num_processes 2`: a 3-step run, and the same run resumed from its step-1 checkpoint."""
    launch = [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2"]
    launch += ["--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no"]
    arguments = ["-m", "modeling_m2f_video.train", *run_options(data), "--max-steps", "3", "--cpu"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    full, resumed = tmp_path / "full", tmp_path / "resumed"
    for output, extra in ((full, []), (resumed, ["--resume"])):
        if extra:
            shutil.copytree(full / "checkpoints" / "step-000001", resumed / "checkpoints" / "step-000001")
        port = ["--main_process_port", str(free_port())]  # not 29500: other tests may launch at the same time
        command = [*launch, *port, *arguments, "--output", str(output), *extra]
        process = subprocess.run(command, env=env, capture_output=True, text=True, timeout=600)
        assert process.returncode == 0, process.stdout[-3000:] + process.stderr[-3000:]

    assert {"rng_state_0.json", "rng_state_1.json"} <= set(os.listdir(full / "checkpoints" / "step-000001"))
    assert log_of(resumed) == log_of(full)[1:]
    final = Mask2FormerVideoForVideoInstanceSegmentation.from_pretrained(resumed).state_dict()
    for name, value in Mask2FormerVideoForVideoInstanceSegmentation.from_pretrained(full).state_dict().items():
        torch.testing.assert_close(final[name], value, rtol=0, atol=0, msg=name)
