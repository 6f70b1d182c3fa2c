"""Reading and writing checkpoints without trusting them.

Official Mask2Former weights come as detectron2 model-zoo `.pkl` files (a pickled dict of numpy arrays) or as
PyTorch `.pth` files. Both formats are pickles, and unpickling an arbitrary file can run arbitrary code. So:

- `.pkl` files go through `RestrictedUnpickler`, which resolves only the handful of globals that numpy arrays and
  ordered dicts need; any other global (a function such as `os.system`, a class with a malicious `__reduce__`)
  is refused *before* it can be called;
- `.pth` files go through `torch.load(weights_only=True)`, PyTorch's own restricted unpickler.

`write_safetensors` writes the converted tensors one at a time (the header first, from shapes alone), so that
conversion never holds a second full copy of the weights.
"""

import collections
import json
import pickle
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import numpy
import torch

from .errors import CheckpointError, UnsafeCheckpointError

try:  # numpy >= 2 moved the C module; old pickles still name `numpy.core.multiarray`.
    from numpy._core import multiarray as _multiarray
except ImportError:  # pragma: no cover - numpy 1.x
    from numpy.core import multiarray as _multiarray

# The only globals a model-zoo pickle may reference: array reconstruction, dtypes, numpy scalars, OrderedDict.
ALLOWED_PICKLE_GLOBALS: dict[tuple[str, str], Any] = {
    ("numpy.core.multiarray", "_reconstruct"): _multiarray._reconstruct,
    ("numpy._core.multiarray", "_reconstruct"): _multiarray._reconstruct,
    ("numpy.core.multiarray", "scalar"): _multiarray.scalar,
    ("numpy._core.multiarray", "scalar"): _multiarray.scalar,
    ("numpy", "ndarray"): numpy.ndarray,
    ("numpy", "dtype"): numpy.dtype,
    ("collections", "OrderedDict"): collections.OrderedDict,
}

# Array element kinds accepted as weights: bool, signed/unsigned integers, floats.
_NUMERIC_KINDS = "biuf"


class RestrictedUnpickler(pickle.Unpickler):
    """An unpickler that resolves only `ALLOWED_PICKLE_GLOBALS` and refuses everything else.

    Every callable a pickle can invoke (REDUCE, NEWOBJ, BUILD with `__setstate__`, ...) must first be looked up
    through `find_class`, so refusing there means no code from the file ever runs.
    """

    def find_class(self, module: str, name: str) -> Any:
        allowed = ALLOWED_PICKLE_GLOBALS.get((module, name))
        if allowed is None:
            raise UnsafeCheckpointError(
                f"refused to load the global `{module}.{name}`: a weights pickle may only reference numpy arrays, "
                "dtypes, numpy scalars and collections.OrderedDict"
            )
        return allowed

    def persistent_load(self, pid: Any) -> Any:
        raise UnsafeCheckpointError(
            "refused a persistent-id reference (this looks like a torch.save file; use the .pth extension)"
        )


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
    """Load a detectron2 model-zoo `.pkl` with `RestrictedUnpickler`; return its weights as tensors.

    The tensors share memory with the unpickled numpy arrays (no copy).
    """
    try:
        with open(path, "rb") as file:
            obj = RestrictedUnpickler(file, encoding="latin1").load()
    except UnsafeCheckpointError as error:
        raise UnsafeCheckpointError(f"{path}: {error}") from None
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError, IndexError, KeyError) as error:
        raise CheckpointError(f"{path}: not a readable weights pickle (truncated or corrupt?): {error}") from error
    tensors = {}
    for name, array in _state_dict_from(obj, path).items():
        if isinstance(array, numpy.generic):
            array = numpy.asarray(array)
        if not isinstance(array, numpy.ndarray) or array.dtype.kind not in _NUMERIC_KINDS:
            kind = getattr(array, "dtype", type(array).__name__)
            raise CheckpointError(f"{path}: entry {name!r} is not a numeric array ({kind})")
        tensors[name] = torch.from_numpy(array)
    return tensors


def load_torch_checkpoint(path: Path) -> dict[str, torch.Tensor]:
    """Load a `.pth` checkpoint with `torch.load(weights_only=True)` (memory-mapped where possible)."""
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    except RuntimeError:  # legacy (non-zip) files cannot be memory-mapped
        obj = _torch_load_without_mmap(path)
    except pickle.UnpicklingError as error:
        raise UnsafeCheckpointError(f"{path}: refused by torch.load(weights_only=True): {error}") from None
    except (EOFError, ValueError) as error:
        raise CheckpointError(f"{path}: not a readable PyTorch checkpoint: {error}") from error
    state = _state_dict_from(obj, path)
    bad = [name for name, value in state.items() if not isinstance(value, torch.Tensor)]
    if bad:
        raise CheckpointError(f"{path}: entries that are not tensors: {bad[:5]}")
    return dict(state)


def _torch_load_without_mmap(path: Path) -> Any:
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as error:
        raise UnsafeCheckpointError(f"{path}: refused by torch.load(weights_only=True): {error}") from None
    except (RuntimeError, EOFError, ValueError) as error:
        raise CheckpointError(f"{path}: not a readable PyTorch checkpoint: {error}") from error


def load_checkpoint(path: str | Path) -> dict[str, torch.Tensor]:
    """Load official weights from a `.pkl` (model zoo) or `.pth`/`.pt` file, never executing code from it."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint not found: {path}")
    if path.suffix == ".pkl":
        return load_pickle_checkpoint(path)
    if path.suffix in (".pth", ".pt"):
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
