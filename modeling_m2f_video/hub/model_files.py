"""What a model repository holds: the allow list of files that `export-hub` copies and `push` uploads.

A model folder written by training also holds what must never be published: `checkpoints/` (pickled optimizer
states, random states), `training_config.json` (local absolute paths), `log.jsonl`. So nothing is published by
default; only the top-level files named in `MODEL_FILES`, weight shards (`WEIGHT_SHARD`) and the remote-code
modules are. The weights are only ever safetensors: a pickle (`pytorch_model.bin`, `*.pkl`) can run code when
loaded and is never published. No image is published either: the model cards this package writes reference none.

Every published file must be a regular file inside the folder. A symbolic link is refused, not followed: its
target may lie anywhere (a private key, a dataset), and publishing it would copy that target out of the folder.
"""

import os
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from transformers.utils import (
    CONFIG_NAME,
    IMAGE_PROCESSOR_NAME,
    SAFE_WEIGHTS_INDEX_NAME,
    SAFE_WEIGHTS_NAME,
    VIDEO_PROCESSOR_NAME,
)

from .errors import HubError

# Top-level file name -> what it is.
MODEL_FILES = {
    CONFIG_NAME: "model config",
    SAFE_WEIGHTS_NAME: "weights",
    SAFE_WEIGHTS_INDEX_NAME: "index of sharded weights",
    VIDEO_PROCESSOR_NAME: "video processor config",
    IMAGE_PROCESSOR_NAME: "image processor config",
    "README.md": "model card",
    "eval.json": "evaluation results of a training run",
}
# The shards `save_pretrained` writes for large models, next to `SAFE_WEIGHTS_INDEX_NAME`.
WEIGHT_SHARD = re.compile(r"model-\d{5}-of-\d{5}\.safetensors")


@dataclass
class ModelFiles:
    """The files of `folder` that a model repository gets, and the top-level entries left out.

    Attributes:
        folder: the model folder.
        files: (name, size in bytes) of every published file, sorted by name.
        left_out: names of the other top-level entries (folders end with `/`), sorted; never published.
    """

    folder: Path
    files: list[tuple[str, int]] = field(default_factory=list)
    left_out: list[str] = field(default_factory=list)

    @property
    def names(self) -> list[str]:
        return [name for name, _ in self.files]

    @property
    def total_size(self) -> int:
        return sum(size for _, size in self.files)


def is_model_file(name: str, remote_code_names: Iterable[str] = ()) -> bool:
    """Whether a top-level file `name` belongs in a model repository (`remote_code_names`: the `.py` files of the
    remote code, see `remote_code.remote_code_file_names`)."""
    return name in MODEL_FILES or WEIGHT_SHARD.fullmatch(name) is not None or name in set(remote_code_names)


def select_model_files(folder: str | os.PathLike, remote_code_names: Iterable[str] = ()) -> ModelFiles:
    """The allow-listed files of `folder` (see the module docstring), each checked to be a regular file.

    Raises:
        HubError: `folder` is not a folder, or an allow-listed name is a symbolic link or not a regular file.
    """
    folder = Path(folder).expanduser()
    if not folder.is_dir():
        raise HubError(f"{folder}: not a folder")
    remote_code_names = set(remote_code_names)
    selection = ModelFiles(folder.resolve())
    for entry in sorted(folder.iterdir(), key=lambda path: path.name):
        if not is_model_file(entry.name, remote_code_names):
            selection.left_out.append(entry.name + ("/" if entry.is_dir() and not entry.is_symlink() else ""))
            continue
        check_regular_file(entry)
        selection.files.append((entry.name, entry.stat().st_size))
    return selection


def check_regular_file(path: Path) -> None:
    """`HubError` unless `path` is a regular file (a symbolic link is refused, whatever it points to)."""
    if path.is_symlink():
        raise HubError(
            f"{path}: is a symbolic link (to {os.readlink(path)}); refused: only regular files inside the folder "
            "are published, never the target of a link (copy the file into the folder instead)"
        )
    if not path.is_file():
        raise HubError(f"{path}: not a regular file")
