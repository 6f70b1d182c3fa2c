"""Checkpoints of a run, the run folder's rules, and the final `from_pretrained` folder.

A checkpoint, `OUTPUT/checkpoints/step-NNNNNN/`, holds only tensors (safetensors) and plain data (JSON), so that
resuming never unpickles anything and so never runs code found in the folder:

- `model.safetensors`: the weights;
- `optimizer.safetensors`: AdamW's per-parameter state (moments and step counts), keyed
  `state.<parameter index>.<name>`, and `optimizer.json`: its parameter groups (hyper-parameters and indices);
- `scheduler.json`: the position of the learning-rate schedule (the schedule itself is rebuilt from the config);
- `scaler.json`: the fp16 loss scaler (fp16 runs only);
- `rng_state_<process>.json`: each process's Python, numpy, torch and CUDA random states;
- `training_state.json`, written last: the format, the step, the number of processes, and the size and SHA-256 of
  every other file. It marks the checkpoint complete.

The clips need no state: clip `n` of a run is a function of `(seed, n)` (see `data.ClipSampler`), so the step
says where the data stream resumes.

A checkpoint is written into `checkpoints/.step-NNNNNN.partial/`, marked complete, and renamed into place; an
older folder of the same step is first moved aside, and deleted once the new one is in place. A kill at any
moment therefore leaves complete checkpoints and possibly a `.partial` folder (removed by the next save), never
a folder marked complete with a truncated file in it. Reading checks every file against the marker, and every
value against what this run expects.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import os
import random
import re
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import safetensors.torch
import torch
from accelerate import Accelerator
from safetensors import SafetensorError
from torch import nn

from ..configuration import Mask2FormerVideoConfig
from ..errors import UserInputError
from ..processing.video_processing_m2f_video import Mask2FormerVideoProcessor
from .config import TrainingConfig

logger = logging.getLogger(__name__)

CHECKPOINTS_DIR = "checkpoints"
LOG_FILE = "log.jsonl"
STATE_FILE = "training_state.json"
CHECKPOINT_FORMAT = "m2f-video/checkpoint/2"
MODEL_FILE = "model.safetensors"
OPTIMIZER_TENSORS_FILE = "optimizer.safetensors"
OPTIMIZER_GROUPS_FILE = "optimizer.json"
SCHEDULER_FILE = "scheduler.json"
SCALER_FILE = "scaler.json"
RNG_FILE = "rng_state_{}.json"
REQUIRED_FILES = (MODEL_FILE, OPTIMIZER_TENSORS_FILE, OPTIMIZER_GROUPS_FILE, SCHEDULER_FILE)
CHECKPOINT_NAME = re.compile(r"step-(\d{6,})")
MAX_JSON_BYTES = 64 * 2**20  # far above any checkpoint's JSON; a larger file is not one of ours

# A folder holding any of these holds a run; `--overwrite` deletes them and the run's other outputs.
RUN_MARKERS = (CHECKPOINTS_DIR, LOG_FILE, MODEL_FILE, "training_config.json")
RUN_OUTPUTS = (
    *RUN_MARKERS,
    "config.json",
    "video_preprocessor_config.json",
    "README.md",
    "eval.json",
    "results.zip",
    "m2f-video-train",  # the trackers' logs (Accelerate's project_dir / run name)
)


@dataclass(frozen=True)
class Checkpoint:
    """A checked checkpoint folder: its step, and its marker's record of the other files (size and SHA-256)."""

    path: Path
    step: int
    num_processes: int
    files: dict[str, dict[str, Any]]


# ------------------------------------------------------------------------------------------------ the run folder


def prepare_output_dir(cfg: TrainingConfig, accelerator: Accelerator) -> None:
    """Refuse to train into a folder that holds a run, unless the run is resumed or `--overwrite` replaces it.

    Without either, a second run would overwrite the first one's checkpoints and model and append to its
    `log.jsonl`. With `--overwrite`, the main process deletes the old run's outputs (only those, see
    `RUN_OUTPUTS`); other files in the folder are kept.
    """
    output_dir = Path(cfg.output_dir)
    if output_dir.exists() and not output_dir.is_dir():
        raise UserInputError(f"--output {output_dir}: is a file, not a folder")
    found = [name for name in RUN_MARKERS if (output_dir / name).exists()]
    if not found or cfg.resume:
        return
    if not cfg.overwrite:
        kind = "a finished run" if (output_dir / MODEL_FILE).exists() else f"an unfinished run ({', '.join(found)})"
        raise UserInputError(
            f"{output_dir}: already holds {kind}; pass --resume to continue it or --overwrite to replace it"
        )
    accelerator.wait_for_everyone()  # every process has looked before the main one deletes
    if accelerator.is_main_process:
        for name in RUN_OUTPUTS:
            _remove(output_dir / name)
        accelerator.print(f"--overwrite: deleted the previous run in {output_dir}")
    accelerator.wait_for_everyone()


def _remove(path: Path) -> None:
    """Delete a file or a folder tree, if it exists."""
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    elif path.exists() or path.is_symlink():
        path.unlink()


# ------------------------------------------------------------------------------------------------------ saving


def save_checkpoint(
    accelerator: Accelerator,
    output_dir: Path,
    step: int,
    keep: int,
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    scheduler: torch.optim.lr_scheduler.LambdaLR,
) -> Path:
    """Write the checkpoint of `step` (see the module docstring), then keep only the newest `keep` (0: all).

    Every process calls it: each writes its random states, the main process everything else, the marker last.
    """
    checkpoints = Path(output_dir) / CHECKPOINTS_DIR
    final = checkpoints / f"step-{step:06d}"
    partial = checkpoints / f".{final.name}.partial"
    if accelerator.is_main_process:
        for leftover in checkpoints.glob(".step-*.partial"):  # from a save that was killed
            shutil.rmtree(leftover)
        partial.mkdir(parents=True)
    accelerator.wait_for_everyone()
    _write_json(partial / RNG_FILE.format(accelerator.process_index), _rng_states(accelerator.device))
    if accelerator.is_main_process:
        _write_training_state(partial, accelerator, model, optimizer, scheduler)
    accelerator.wait_for_everyone()
    if accelerator.is_main_process:
        _mark_complete(partial, step, accelerator.num_processes)
        _move_into_place(partial, final)
        complete = [path for path in list_checkpoints(output_dir) if _step_of(path) <= step]
        for old in complete[:-keep] if keep > 0 else []:
            shutil.rmtree(old)
    accelerator.wait_for_everyone()
    return final


def _write_training_state(
    folder: Path,
    accelerator: Accelerator,
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    scheduler: torch.optim.lr_scheduler.LambdaLR,
) -> None:
    """The weights, optimizer, schedule and loss scaler, as safetensors and JSON."""
    weights = accelerator.unwrap_model(model).state_dict()
    safetensors.torch.save_file({name: tensor.contiguous() for name, tensor in weights.items()}, folder / MODEL_FILE)
    state = optimizer.state_dict()
    tensors = {
        f"state.{index}.{name}": value.contiguous()
        for index, values in state["state"].items()
        for name, value in values.items()
    }
    safetensors.torch.save_file(tensors, folder / OPTIMIZER_TENSORS_FILE)
    _write_json(folder / OPTIMIZER_GROUPS_FILE, {"param_groups": state["param_groups"]})
    _write_json(folder / SCHEDULER_FILE, _scheduler_state(scheduler))
    if accelerator.scaler is not None:
        _write_json(folder / SCALER_FILE, accelerator.scaler.state_dict())


def _scheduler_state(scheduler: torch.optim.lr_scheduler.LambdaLR) -> dict[str, Any]:
    """The schedule's position (plain numbers), without its factor function, which the config rebuilds."""
    return {key: value for key, value in scheduler.state_dict().items() if key != "lr_lambdas"}


def _rng_states(device: torch.device) -> dict[str, Any]:
    """This process's random states as plain numbers: Python, numpy, torch (CPU) and its CUDA device."""
    version, python_state, gauss_next = random.getstate()
    _, keys, position, has_gauss, cached_gaussian = np.random.get_state()
    return {
        "python": {"version": version, "state": list(python_state), "gauss_next": gauss_next},
        "numpy": {
            "keys": keys.tolist(),
            "pos": int(position),
            "has_gauss": int(has_gauss),
            "cached_gaussian": float(cached_gaussian),
        },
        "torch": torch.get_rng_state().tolist(),
        "cuda": torch.cuda.get_rng_state(device).tolist() if device.type == "cuda" else None,
    }


def _mark_complete(folder: Path, step: int, num_processes: int) -> None:
    """Flush every file to disk, then write the marker with their sizes and hashes, and flush it too."""
    files = {}
    for path in sorted(folder.iterdir()):
        _fsync(path)
        files[path.name] = {"bytes": path.stat().st_size, "sha256": _sha256(path)}
    marker = {"format": CHECKPOINT_FORMAT, "step": step, "num_processes": num_processes, "files": files}
    _write_json(folder / STATE_FILE, marker)
    _fsync(folder / STATE_FILE)
    _fsync(folder)


def _move_into_place(partial: Path, final: Path) -> None:
    """Rename the complete `partial` folder to `final`; an older `final` is moved aside first, deleted after."""
    replaced = final.with_name(f".{final.name}.replaced")
    if replaced.exists():
        shutil.rmtree(replaced)
    if final.exists():
        final.rename(replaced)
    partial.rename(final)
    _fsync(final.parent)
    if replaced.exists():
        shutil.rmtree(replaced)


# ----------------------------------------------------------------------------------------------------- finding


def list_checkpoints(output_dir: str | os.PathLike) -> list[Path]:
    """The checkpoints of a run that are marked complete, oldest first (their files are checked when loaded)."""
    folder = Path(output_dir) / CHECKPOINTS_DIR
    found = [path for path in _step_folders(folder) if (path / STATE_FILE).is_file()]
    return sorted(found, key=_step_of)


def _step_folders(folder: Path) -> list[Path]:
    """The `step-NNNNNN` folders in `folder`, complete or not."""
    if not folder.is_dir():
        return []
    return [path for path in folder.iterdir() if CHECKPOINT_NAME.fullmatch(path.name) and path.is_dir()]


def _step_of(path: Path) -> int:
    return int(CHECKPOINT_NAME.fullmatch(path.name).group(1))


def resume_checkpoint(cfg: TrainingConfig, output_dir: Path, accelerator: Accelerator) -> Checkpoint:
    """The checkpoint `--resume` names: the given folder, or else the newest complete one of the run.

    A given folder must be complete and intact (else a UserInputError names the file). When picking the newest,
    incomplete or damaged checkpoints are skipped with a warning saying why. Says which one it resumes from.
    """
    if not isinstance(cfg.resume, bool):
        checkpoint = verify_checkpoint(Path(cfg.resume))
    else:
        checkpoint = _newest_intact(Path(output_dir) / CHECKPOINTS_DIR, accelerator)
    accelerator.print(f"resuming from {checkpoint.path} (step {checkpoint.step})")
    return checkpoint


def _newest_intact(folder: Path, accelerator: Accelerator) -> Checkpoint:
    """The newest checkpoint in `folder` that passes `verify_checkpoint`; the others are skipped with a warning."""
    refused = []
    for path in sorted(_step_folders(folder), key=_step_of, reverse=True):
        try:
            return verify_checkpoint(path)
        except UserInputError as error:
            refused.append(error)
            if accelerator.is_main_process:
                logger.warning("skipping checkpoint %s: %s", path, error)
    newest = f"; the newest is refused: {refused[0]}" if refused else ""
    raise UserInputError(f"--resume: no checkpoint to resume from in {folder}{newest}")


def verify_checkpoint(path: Path) -> Checkpoint:
    """Check a checkpoint folder: marker present and of this format, every file it lists present and intact.

    Raises:
        UserInputError: naming the folder or the file (not a checkpoint, interrupted save, truncated or changed
            file, a checkpoint of an earlier version).
    """
    marker = path / STATE_FILE
    if not path.is_dir():
        raise UserInputError(f"--resume {path}: no such checkpoint folder")
    if not marker.is_file():
        raise UserInputError(f"{path}: not a complete checkpoint (no {STATE_FILE}: its save did not finish)")
    state = _read_json(marker)
    if not isinstance(state, dict) or state.get("format") != CHECKPOINT_FORMAT:
        if isinstance(state, dict) and "format" not in state and "step" in state:
            raise UserInputError(
                f"{path}: a checkpoint of an earlier m2f-video (Accelerate's save_state), whose files are pickles "
                "that resuming no longer reads; start the run again"
            )
        raise UserInputError(f"{marker}: not a checkpoint marker of format {CHECKPOINT_FORMAT}")
    checkpoint = _checkpoint_from_marker(path, state)
    for name, record in checkpoint.files.items():
        file = path / name
        if not file.is_file() or file.is_symlink():
            raise UserInputError(f"{file}: missing (or not a regular file)")
        if file.stat().st_size != record["bytes"]:
            raise UserInputError(
                f"{file}: truncated or changed ({file.stat().st_size} bytes, {record['bytes']} saved)"
            )
        if _sha256(file) != record["sha256"]:
            raise UserInputError(f"{file}: corrupt (its SHA-256 differs from the one saved in {STATE_FILE})")
    return checkpoint


def _checkpoint_from_marker(path: Path, state: dict) -> Checkpoint:
    """The marker's content, checked: a step, a process count and only files of a checkpoint, each with its hash."""
    marker = path / STATE_FILE
    step, num_processes, files = state.get("step"), state.get("num_processes"), state.get("files")
    if not (_is_int(step) and step >= 0 and _is_int(num_processes) and 1 <= num_processes <= 2**16):
        raise UserInputError(f"{marker}: 'step' and 'num_processes' must be non-negative integers")
    if not isinstance(files, dict):
        raise UserInputError(f"{marker}: 'files' must map file names to their size and hash")
    known = {*REQUIRED_FILES, SCALER_FILE, *(RNG_FILE.format(rank) for rank in range(num_processes))}
    for name, record in files.items():
        if name not in known:
            raise UserInputError(f"{marker}: lists {name!r}, which is not a checkpoint file")
        if not (isinstance(record, dict) and _is_int(record.get("bytes")) and isinstance(record.get("sha256"), str)):
            raise UserInputError(f"{marker}: the entry of {name} needs 'bytes' and 'sha256'")
    missing = [name for name in (*REQUIRED_FILES, RNG_FILE.format(0)) if name not in files]
    if missing:
        raise UserInputError(f"{marker}: does not list {', '.join(missing)}")
    return Checkpoint(path=path, step=step, num_processes=num_processes, files=files)


# ----------------------------------------------------------------------------------------------------- loading


def load_checkpoint(
    checkpoint: Checkpoint,
    accelerator: Accelerator,
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    scheduler: torch.optim.lr_scheduler.LambdaLR,
) -> int:
    """Restore weights, optimizer, schedule, loss scaler and this process's random states; returns the step.

    Each file is read once, checked against the marker's hash, and parsed as safetensors or JSON; its content
    must fit this run (same parameters and shapes, same parameter groups, same kinds of values).

    Raises:
        UserInputError: naming the checkpoint or the file, e.g. for a checkpoint of another architecture.
    """
    _load_model(checkpoint, accelerator.unwrap_model(model))
    _load_optimizer(checkpoint, optimizer)
    _load_scheduler(checkpoint, scheduler)
    if accelerator.scaler is not None and SCALER_FILE in checkpoint.files:
        state = _read_verified_json(checkpoint, SCALER_FILE)
        accelerator.scaler.load_state_dict(
            _like(state, accelerator.scaler.state_dict(), str(checkpoint.path / SCALER_FILE))
        )
    if checkpoint.num_processes != accelerator.num_processes and accelerator.is_main_process:
        logger.warning(
            "%s was written by %d process(es), this run has %d: the random draws of the loss differ from the "
            "uninterrupted run's from here on",
            checkpoint.path,
            checkpoint.num_processes,
            accelerator.num_processes,
        )
    rng_file = RNG_FILE.format(accelerator.process_index)
    if rng_file in checkpoint.files:
        _set_rng_states(_read_verified_json(checkpoint, rng_file), accelerator.device, checkpoint.path / rng_file)
    return checkpoint.step


def _load_model(checkpoint: Checkpoint, model: nn.Module) -> None:
    """Load the weights after checking that they are exactly this model's: same names, shapes and dtypes."""
    weights = _read_verified_tensors(checkpoint, MODEL_FILE)
    expected = model.state_dict()
    missing = sorted(set(expected) - set(weights))
    unexpected = sorted(set(weights) - set(expected))
    different = [
        name
        for name in sorted(set(weights) & set(expected))
        if weights[name].shape != expected[name].shape or weights[name].dtype != expected[name].dtype
    ]
    if missing or unexpected or different:
        example = (missing or unexpected or different)[0]
        raise UserInputError(
            f"{checkpoint.path}: holds the weights of another architecture ({len(missing)} missing, "
            f"{len(unexpected)} unexpected, {len(different)} of another shape, e.g. {example}); resume with the "
            "model options (--config/--init) and training data the run started with"
        )
    model.load_state_dict(weights)


def _load_optimizer(checkpoint: Checkpoint, optimizer: torch.optim.Optimizer) -> None:
    """Load AdamW's state after checking it against this optimizer's parameter groups and parameter shapes."""
    current = optimizer.state_dict()["param_groups"]
    saved = _read_verified_json(checkpoint, OPTIMIZER_GROUPS_FILE)
    saved_groups = saved.get("param_groups") if isinstance(saved, dict) else None
    if not isinstance(saved_groups, list) or len(saved_groups) != len(current):
        raise UserInputError(
            f"{checkpoint.path / OPTIMIZER_GROUPS_FILE}: not this run's {len(current)} parameter groups "
            "(a checkpoint of another architecture?)"
        )
    groups = _like(saved_groups, current, str(checkpoint.path / OPTIMIZER_GROUPS_FILE))
    if [group["params"] for group in groups] != [group["params"] for group in current]:
        raise UserInputError(f"{checkpoint.path / OPTIMIZER_GROUPS_FILE}: its parameter groups are not this run's")
    parameters = [param for group in optimizer.param_groups for param in group["params"]]
    state: dict[int, dict[str, torch.Tensor]] = {}
    for key, tensor in _read_verified_tensors(checkpoint, OPTIMIZER_TENSORS_FILE).items():
        index, name = _optimizer_key(key, len(parameters), checkpoint)
        expected_shape = () if name == "step" else tuple(parameters[index].shape)
        if tuple(tensor.shape) != expected_shape or not tensor.is_floating_point():
            raise UserInputError(
                f"{checkpoint.path / OPTIMIZER_TENSORS_FILE}: {key} has shape {list(tensor.shape)} and dtype "
                f"{tensor.dtype}, expected a float tensor of shape {list(expected_shape)}"
            )
        state.setdefault(index, {})[name] = tensor
    optimizer.load_state_dict({"state": state, "param_groups": groups})


def _optimizer_key(key: str, num_parameters: int, checkpoint: Checkpoint) -> tuple[int, str]:
    """`state.<index>.<name>` as (index, name), the index that of one of this optimizer's parameters."""
    match = re.fullmatch(r"state\.(\d+)\.([A-Za-z_]+)", key)
    if match is None or int(match.group(1)) >= num_parameters:
        raise UserInputError(f"{checkpoint.path / OPTIMIZER_TENSORS_FILE}: unexpected tensor {key!r}")
    return int(match.group(1)), match.group(2)


def _load_scheduler(checkpoint: Checkpoint, scheduler: torch.optim.lr_scheduler.LambdaLR) -> None:
    """Restore the schedule's position; it must be at the checkpoint's step (one schedule step per update)."""
    path = checkpoint.path / SCHEDULER_FILE
    state = _like(_read_verified_json(checkpoint, SCHEDULER_FILE), _scheduler_state(scheduler), str(path))
    if state["last_epoch"] != checkpoint.step:
        raise UserInputError(
            f"{path}: the schedule is at step {state['last_epoch']}, the checkpoint at step {checkpoint.step}"
        )
    scheduler.load_state_dict({**state, "lr_lambdas": [None] * len(scheduler.lr_lambdas)})


def _set_rng_states(state: Any, device: torch.device, path: Path) -> None:
    """Restore this process's random states from `_rng_states`' plain numbers, each checked for kind and range."""
    current = _rng_states(device)
    if not (
        isinstance(state, dict)
        and set(state) == set(current)
        and all(isinstance(state[key], dict) and set(state[key]) == set(current[key]) for key in ("python", "numpy"))
    ):
        raise UserInputError(f"{path}: not a random-state file (expected the keys of {sorted(current)})")
    python, numpy_state = state["python"], state["numpy"]
    python_state = _uints(python["state"], len(current["python"]["state"]), 2**32 - 1, path, "python.state")
    gauss_next = python["gauss_next"]
    if python["version"] != current["python"]["version"] or python_state[-1] > 624:
        raise UserInputError(f"{path}: python: not a state of this Python's random generator")
    if gauss_next is not None and not _is_number(gauss_next):
        raise UserInputError(f"{path}: python.gauss_next must be a number or null")
    numpy_keys = _uints(numpy_state["keys"], len(current["numpy"]["keys"]), 2**32 - 1, path, "numpy.keys")
    position, has_gauss, cached_gaussian = (numpy_state[key] for key in ("pos", "has_gauss", "cached_gaussian"))
    if not (_is_int(position) and 0 <= position <= 624 and has_gauss in (0, 1) and _is_number(cached_gaussian)):
        raise UserInputError(f"{path}: numpy: 'pos', 'has_gauss' or 'cached_gaussian' out of range")
    torch_state = _uints(state["torch"], len(current["torch"]), 255, path, "torch")
    cuda_state = None
    if current["cuda"] is not None and state["cuda"] is not None:
        cuda_state = _uints(state["cuda"], len(current["cuda"]), 255, path, "cuda")

    try:
        random.setstate((python["version"], tuple(python_state), gauss_next))
        np.random.set_state(("MT19937", np.array(numpy_keys, np.uint32), position, has_gauss, float(cached_gaussian)))
        torch.set_rng_state(torch.tensor(torch_state, dtype=torch.uint8))
        if cuda_state is not None:
            torch.cuda.set_rng_state(torch.tensor(cuda_state, dtype=torch.uint8), device)
    except (ValueError, RuntimeError) as error:  # the generators' own checks (torch's "Invalid mt19937 state")
        raise UserInputError(f"{path}: not a valid random state ({error})") from error


def _uints(values: Any, length: int, maximum: int, path: Path, what: str) -> list[int]:
    """`values` if it is a list of `length` integers in [0, maximum]."""
    if not (
        isinstance(values, list)
        and len(values) == length
        and all(_is_int(value) and 0 <= value <= maximum for value in values)
    ):
        raise UserInputError(f"{path}: {what} must be {length} integers from 0 to {maximum}")
    return values


# ---------------------------------------------------------------------------------------------- reading files


def _read_verified(checkpoint: Checkpoint, name: str) -> bytes:
    """The bytes of a checkpoint file, read once and checked against the marker's size and hash."""
    path = checkpoint.path / name
    record = checkpoint.files.get(name)
    if record is None:
        raise UserInputError(f"{checkpoint.path / STATE_FILE}: does not list {name}")
    data = path.read_bytes()
    if len(data) != record["bytes"] or hashlib.sha256(data).hexdigest() != record["sha256"]:
        raise UserInputError(f"{path}: changed since the checkpoint was verified (size or SHA-256 differs)")
    return data


def _read_verified_tensors(checkpoint: Checkpoint, name: str) -> dict[str, torch.Tensor]:
    """A verified safetensors file's tensors (safetensors holds only tensors: parsing it runs no code)."""
    try:
        return safetensors.torch.load(_read_verified(checkpoint, name))
    except (SafetensorError, ValueError, TypeError, OverflowError, RuntimeError) as error:
        raise UserInputError(f"{checkpoint.path / name}: not a valid safetensors file ({error})") from error


def _read_verified_json(checkpoint: Checkpoint, name: str) -> Any:
    """A verified JSON file's content (larger than `MAX_JSON_BYTES`: not one of a checkpoint's)."""
    if checkpoint.files[name]["bytes"] > MAX_JSON_BYTES:
        raise UserInputError(f"{checkpoint.path / name}: too large for a checkpoint's JSON file")
    return _parse_json(_read_verified(checkpoint, name), checkpoint.path / name)


def _read_json(path: Path) -> Any:
    """A small JSON file's content (larger than `MAX_JSON_BYTES`: not one of a checkpoint's)."""
    if path.stat().st_size > MAX_JSON_BYTES:
        raise UserInputError(f"{path}: too large for a checkpoint's JSON file")
    return _parse_json(path.read_bytes(), path)


def _parse_json(data: bytes, path: Path) -> Any:
    """Strict JSON (no NaN or Infinity), errors naming the file."""
    try:
        return json.loads(data, parse_constant=_refuse_constant)
    except (ValueError, RecursionError) as error:  # JSONDecodeError and UnicodeDecodeError are ValueErrors
        raise UserInputError(f"{path}: not valid JSON ({error})") from error


def _refuse_constant(name: str) -> None:
    raise ValueError(f"{name} is not a finite number")


def _like(value: Any, reference: Any, where: str) -> Any:
    """`value`, read from JSON, if it has the structure of `reference` (this run's state); tuples where it has them.

    Same keys, same list lengths, and the same kind of every leaf (an integer where the reference has one, a
    number where it has a float, a bool, a string, or null), so that loading it cannot misconfigure the objects.
    """
    if isinstance(reference, dict):
        return _like_dict(value, reference, where)
    if isinstance(reference, list | tuple):
        if not isinstance(value, list) or len(value) != len(reference):
            raise UserInputError(f"{where}: expected a list of {len(reference)} values, got {_kind(value)}")
        items = [_like(item, expected, f"{where}[{i}]") for i, (item, expected) in enumerate(zip(value, reference))]
        return tuple(items) if isinstance(reference, tuple) else items
    if isinstance(reference, bool) or reference is None or isinstance(reference, str):
        accepted = type(value) is type(reference)
    elif isinstance(reference, int):
        accepted = _is_int(value)
    else:
        accepted = _is_number(value)
    if not accepted:
        raise UserInputError(f"{where}: expected {_kind(reference)}, got {_kind(value)}")
    return float(value) if isinstance(reference, float) else value


def _like_dict(value: Any, reference: dict, where: str) -> dict:
    if not isinstance(value, dict) or set(value) != set(reference):
        raise UserInputError(f"{where}: expected an object with the keys {sorted(reference)}")
    return {key: _like(value[key], expected, f"{where}.{key}") for key, expected in reference.items()}


def _kind(value: Any) -> str:
    return "null" if value is None else type(value).__name__


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


# ------------------------------------------------------------------------------------------------ writing files


def _write_json(path: Path, value: Any) -> None:
    path.write_text(json.dumps(value, allow_nan=False), encoding="utf-8")


def _fsync(path: Path) -> None:
    """Flush a file's (or a folder's entries') writes to disk, so that the marker never outlives what it marks."""
    descriptor = os.open(path, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as file:
        for chunk in iter(lambda: file.read(2**20), b""):
            digest.update(chunk)
    return digest.hexdigest()


# -------------------------------------------------------------------------------------------- the final folder


def _save_final(
    cfg: TrainingConfig,
    accelerator: Accelerator,
    model: nn.Module,
    processor: Mask2FormerVideoProcessor,
    metrics: dict[str, float] | None,
) -> None:
    """Writes the `from_pretrained` folder (config, weights, processor, model card) and `eval.json` to `output_dir`."""
    accelerator.wait_for_everyone()
    if not accelerator.is_main_process:
        return
    output_dir = Path(cfg.output_dir)
    unwrapped = accelerator.unwrap_model(model)
    unwrapped.save_pretrained(output_dir, safe_serialization=True)
    processor.save_pretrained(output_dir)
    (output_dir / "training_config.json").write_text(json.dumps(dataclasses.asdict(cfg), indent=2, default=str))
    if metrics is not None:
        (output_dir / "eval.json").write_text(json.dumps(metrics, indent=2))
    write_training_card(output_dir, unwrapped.config, cfg, metrics)


def write_training_card(
    output_dir: Path, config: Mask2FormerVideoConfig, cfg: TrainingConfig, metrics: dict[str, float] | None
) -> Path:
    """The model card (the project's shared builder, `hub.save_model_card`): how the model was trained and scored."""
    from ..model_cards import save_model_card

    return save_model_card(output_dir, config, how_made=training_description(cfg, metrics))


def training_description(cfg: TrainingConfig, metrics: dict[str, float] | None) -> str:
    """Markdown saying how a run was made: start point, data, recipe, and the evaluation numbers if any."""
    max_steps, decay_steps = cfg.resolved_steps()
    lines = [
        "Trained with `m2f-video train` (the m2f-video training module, built on Accelerate).",
        "",
        f"- started from: {cfg.init or cfg.config or 'the r50-ytvis2019 architecture with random weights'}",
        f"- training data: `{cfg.train_data}`",
        f"- recipe: AdamW, lr {cfg.lr} (backbone x{cfg.backbone_multiplier}), weight decay {cfg.weight_decay}, "
        f"{max_steps} steps of {cfg.batch_size} clips of {cfg.num_frames} frames, lr x{cfg.decay_gamma} at "
        f"{list(decay_steps)}, shortest side {list(cfg.min_sizes)}, gradient clipping {cfg.clip_grad_norm}, "
        f"seed {cfg.seed}",
    ]
    if metrics:
        lines += ["", f"YouTube-VIS metric on `{cfg.eval_data}`:", ""]
        lines += ["| " + " | ".join(metrics) + " |", "|" + "---|" * len(metrics)]
        lines += ["| " + " | ".join(f"{value:.4f}" for value in metrics.values()) + " |"]
    return "\n".join(lines)
