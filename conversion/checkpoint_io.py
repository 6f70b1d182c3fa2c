"""Reading and writing checkpoints without trusting them.

Official Mask2Former weights come as detectron2 model-zoo `.pkl` files (a pickled dict of numpy arrays) or as
PyTorch `.pth` files. Both formats are pickles, and unpickling an arbitrary file can run arbitrary code. So:

- `.pkl` files go through `safe_pickle.RestrictedUnpickler`, which resolves only the handful of globals that
  numpy arrays and ordered dicts need, each to a checked stand-in; any other global (a function such as
  `os.system`, a class with a malicious `__reduce__`) is refused *before* it can be called, and no array may
  declare more data than the file holds;
- `.pth` files go through `torch.load(weights_only=True)`, PyTorch's own restricted unpickler.

Extensions are matched case-insensitively (`MODEL_FINAL.PKL` is a `.pkl`).

`write_safetensors` writes the converted tensors one at a time (the header first, from shapes alone), so that
conversion never holds a second full copy of the weights.
"""

import json
import pickle
import re
import struct
import zipfile
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import numpy
import torch

from .errors import CheckpointError, UnsafeCheckpointError
from .safe_pickle import CORRUPT_PICKLE_ERRORS, PendingArray, load_pickle, printable

# What `torch.load` raises on a truncated or corrupt file: its zip reader raises RuntimeError, its legacy reader
# struct.error and AssertionError (it asserts the storage records of the file).
CORRUPT_TORCH_ERRORS = (*CORRUPT_PICKLE_ERRORS, RuntimeError, struct.error, AssertionError)

PICKLE_SUFFIXES = (".pkl",)
TORCH_SUFFIXES = (".pth", ".pt")


def _state_dict_from(obj: Any, path: Path) -> Mapping[str, Any]:
    """The name -> array mapping inside a loaded checkpoint: `obj["model"]` (detectron2 and most training
    scripts) or `obj` itself when it already is a flat mapping."""
    if not isinstance(obj, Mapping):
        raise CheckpointError(f"{path}: expected a dict of weights, found {type(obj).__name__}")
    state = obj.get("model", obj)
    if not isinstance(state, Mapping) or not state:
        raise CheckpointError(f"{path}: no weights found (expected a non-empty dict, or one under the 'model' key)")
    bad = [key for key, value in state.items() if not isinstance(key, str)]
    if bad:
        raise CheckpointError(f"{path}: weight names must be strings, found {bad[:5]}")
    return state


def load_pickle_checkpoint(path: Path) -> dict[str, torch.Tensor]:
    """Load a detectron2 model-zoo `.pkl` with the restricted unpickler; return its weights as tensors.

    The tensors share memory with the unpickled numpy arrays (no copy).
    """
    tensors = {}
    for name, value in _state_dict_from(load_pickle(path), path).items():
        tensors[name] = torch.from_numpy(_weight_array(value, name, path))
    return tensors


def _weight_array(value: Any, name: str, path: Path) -> numpy.ndarray:
    """The numpy array of one state-dict entry (all made by the unpickler's checked stand-ins): a rebuilt array,
    an array read from a protocol-5 buffer, or a numpy scalar as a 0-d array."""
    if isinstance(value, PendingArray):
        if value.array is None:
            raise CheckpointError(f"{path}: entry {name!r} is an array without data (truncated or corrupt?)")
        return value.array
    if isinstance(value, numpy.ndarray):
        return value
    if isinstance(value, numpy.generic):
        return numpy.asarray(value)
    raise CheckpointError(f"{path}: entry {name!r} is not a numeric array ({type(value).__name__})")


def load_torch_checkpoint(path: Path) -> dict[str, torch.Tensor]:
    """Load a `.pth` checkpoint with `torch.load(weights_only=True)` (memory-mapped when it is a zip file, the
    format of `torch.save` since PyTorch 1.6; legacy files cannot be mapped)."""
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True, mmap=zipfile.is_zipfile(path))
    except pickle.UnpicklingError as error:
        raise UnsafeCheckpointError(
            f"{path}: refused by torch.load(weights_only=True): {_torch_refusal_reason(str(error))}"
        ) from None
    except MemoryError:
        raise CheckpointError(f"{path}: not enough memory to load it") from None
    except CORRUPT_TORCH_ERRORS as error:
        message = printable(" ".join(str(error).split()))
        raise CheckpointError(
            f"{path}: not a readable PyTorch checkpoint: {type(error).__name__}: {message}"
        ) from None
    state = _state_dict_from(obj, path)
    bad = [name for name, value in state.items() if not isinstance(value, torch.Tensor)]
    if bad:
        raise CheckpointError(f"{path}: entries that are not tensors: {bad[:5]}")
    return dict(state)


def _torch_refusal_reason(message: str) -> str:
    """The paragraph of `torch.load`'s weights-only refusal that says what was refused, in one line."""
    paragraphs = [paragraph for paragraph in re.split(r"\n\s*\n", message) if paragraph.strip()]
    boilerplate = ("Weights only load failed", "Check the documentation")
    reason = next((paragraph for paragraph in paragraphs if not paragraph.startswith(boilerplate)), message)
    return printable(" ".join(reason.split()))


def load_checkpoint(path: str | Path) -> dict[str, torch.Tensor]:
    """Load official weights from a `.pkl` (model zoo) or `.pth`/`.pt` file, never executing code from it."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: no such checkpoint file")
    suffix = path.suffix.lower()
    if suffix in PICKLE_SUFFIXES:
        return load_pickle_checkpoint(path)
    if suffix in TORCH_SUFFIXES:
        return load_torch_checkpoint(path)
    raise CheckpointError(f"{path}: unknown checkpoint extension {path.suffix!r} (expected .pkl, .pth or .pt)")


_SAFETENSORS_DTYPES = {
    torch.float64: "F64",
    torch.float32: "F32",
    torch.float16: "F16",
    torch.bfloat16: "BF16",
    torch.int64: "I64",
    torch.int32: "I32",
    torch.int16: "I16",
    torch.int8: "I8",
    torch.uint8: "U8",
    torch.bool: "BOOL",
}


def write_safetensors(
    path: Path,
    specs: Mapping[str, tuple[tuple[int, ...], torch.dtype]],
    tensors: Iterable[tuple[str, torch.Tensor]],
) -> None:
    """Write a `.safetensors` file tensor by tensor.

    `specs` gives every tensor's shape and dtype, in file order, so the header can be written first; `tensors`
    then yields `(name, tensor)` in the same order. Only one tensor's bytes are in flight at a time.
    """
    header: dict[str, Any] = {"__metadata__": {"format": "pt"}}
    offset = 0
    for name, (shape, dtype) in specs.items():
        size = dtype.itemsize * _numel(shape)
        header[name] = {
            "dtype": _SAFETENSORS_DTYPES[dtype],
            "shape": list(shape),
            "data_offsets": [offset, offset + size],
        }
        offset += size
    header_bytes = json.dumps(header, separators=(",", ":")).encode("utf-8")
    header_bytes += b" " * (-len(header_bytes) % 8)
    expected = iter(specs.items())
    with open(path, "wb") as file:
        file.write(len(header_bytes).to_bytes(8, "little"))
        file.write(header_bytes)
        for name, tensor in tensors:
            spec_name, (shape, dtype) = next(expected)
            if name != spec_name or tuple(tensor.shape) != tuple(shape) or tensor.dtype != dtype:
                raise RuntimeError(
                    f"tensor {name} {tuple(tensor.shape)} {tensor.dtype} does not match its header entry"
                )
            file.write(_tensor_bytes(tensor))
    if next(expected, None) is not None:
        raise RuntimeError("fewer tensors were written than announced in the header")


def _numel(shape: tuple[int, ...]) -> int:
    count = 1
    for size in shape:
        count *= size
    return count


def _tensor_bytes(tensor: torch.Tensor) -> bytes | memoryview:
    """The raw little-endian bytes of a CPU tensor (a view of its storage when it is contiguous)."""
    tensor = tensor.detach().cpu().contiguous()
    if tensor.numel() == 0:
        return b""
    return memoryview(tensor.reshape(-1).view(torch.uint8).numpy())
