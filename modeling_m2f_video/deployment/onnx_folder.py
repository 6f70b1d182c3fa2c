"""The exported ONNX folder: its files, and the manifest that says which export format it is in.

An exported folder holds `model.onnx` (the head model), `config.json` (labels, `test_top_k`: what post-processing
reads), the video processor config, `README.md` (the card) and `onnx_export.json`, the manifest written by
[`write_manifest`]. The manifest records the export format version, the m2f-video, torch and opset versions, the
dtype and the input and output names with their dynamic axes. [`read_manifest`] refuses a folder that is not an
export, or one written in another format version, before ONNX Runtime is asked to load anything.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import json
import os
from pathlib import Path
from typing import Any

from ..errors import UserInputError

ONNX_FILE = "model.onnx"
MANIFEST_FILE = "onnx_export.json"
MANIFEST_KIND = "m2f-video-onnx"
# Bump when a folder written by this code could be misread by older code or the other way round: a changed
# input or output, their meaning, or the files of the folder.
FORMAT_VERSION = 1

DEFAULT_OPSET = 18  # the opset torch's exporter implements; older ones are reached by version conversion
MIN_OPSET = 16  # GridSample (the pixel decoder's deformable attention) exists from opset 16 on
EXPORT_DTYPE_NAMES = ("float32", "float16")

INPUT_NAME = "pixel_values_videos"
# What the inference core reads: class and mask logits (post-processing), and the query embeddings (the track
# matching of clip-by-clip inference).
OUTPUT_NAMES = ("class_queries_logits", "masks_queries_logits", "transformer_decoder_last_hidden_state")
# The axes of the graph; named axes are dynamic. Mask logits are at a quarter of the padded input size.
INPUT_AXES = ("batch_size", "num_frames", 3, "height", "width")
OUTPUT_AXES = {
    "class_queries_logits": ("batch_size", "num_queries", "num_labels + 1"),
    "masks_queries_logits": ("batch_size", "num_queries", "num_frames", "height / 4", "width / 4"),
    "transformer_decoder_last_hidden_state": ("batch_size", "num_queries", "hidden_dim"),
}
# What readers of the manifest use, beyond its kind and format version.
REQUIRED_KEYS = ("dtype", "min_side", "size_divisibility")
EXPORT_HINT = "make one with `m2f-video export-onnx MODEL_DIR --output DIR`"


def package_version() -> str:
    """The installed m2f-video version ("unknown" when the package is used from its source folder only)."""
    try:
        return importlib.metadata.version("m2f-video")
    except importlib.metadata.PackageNotFoundError:
        return "unknown"


def require(purpose: str, *modules: str) -> None:
    """Check that `modules` (of the optional `onnx` extra) are installed; if not, say which and how to install them."""
    missing = [name for name in modules if importlib.util.find_spec(name) is None]
    if missing:
        raise UserInputError(
            f"{purpose}: needs {', '.join(missing)}, which is not installed: pip install 'm2f-video[onnx]' "
            "(onnx, onnxruntime, onnxscript; onnxruntime-gpu instead of onnxruntime for CUDA)"
        )


def write_manifest(
    folder: Path, *, opset: int, dtype: str, torch_version: str, min_side: int, size_divisibility: int
) -> Path:
    """Write `folder/onnx_export.json` for a model exported at `opset` in `dtype`, whose input height and width
    must be multiples of `size_divisibility` and at least `min_side`; returns its path."""
    manifest = {
        "kind": MANIFEST_KIND,
        "format_version": FORMAT_VERSION,
        "m2f_video_version": package_version(),
        "torch_version": torch_version,
        "opset": opset,
        "dtype": dtype,
        "inputs": {INPUT_NAME: list(INPUT_AXES)},
        "outputs": {name: list(axes) for name, axes in OUTPUT_AXES.items()},
        "min_side": min_side,
        "size_divisibility": size_divisibility,
    }
    path = folder / MANIFEST_FILE
    path.write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
    return path


def read_manifest(folder: str | os.PathLike) -> dict[str, Any]:
    """The manifest of an exported folder, checked: a [`UserInputError`] naming the folder (or file) otherwise.

    Refused: a path that is no folder, a folder without a manifest (not an export, e.g. a PyTorch model folder),
    a manifest that is not this package's JSON, one of another export format version (the message says which
    m2f-video wrote it), and a folder without its ONNX file.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise UserInputError(f"{folder}: no such folder")
    path = folder / MANIFEST_FILE
    if not path.is_file():
        raise UserInputError(f"{folder}: not an exported ONNX folder (it has no {MANIFEST_FILE}); {EXPORT_HINT}")
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise UserInputError(f"{path}: not valid JSON: {error}") from error
    if not isinstance(manifest, dict) or manifest.get("kind") != MANIFEST_KIND:
        raise UserInputError(f"{path}: not an m2f-video ONNX export manifest; {EXPORT_HINT}")
    if manifest.get("format_version") != FORMAT_VERSION:
        raise UserInputError(
            f"{folder}: exported by m2f-video {manifest.get('m2f_video_version', 'unknown')} in ONNX export format "
            f"{manifest.get('format_version')!r}; this m2f-video ({package_version()}) reads format {FORMAT_VERSION}. "
            "Export the model again with this version: `m2f-video export-onnx MODEL_DIR --output DIR`"
        )
    missing = [key for key in REQUIRED_KEYS if key not in manifest]
    if missing:
        raise UserInputError(f"{path}: the manifest lacks {', '.join(missing)}; {EXPORT_HINT}")
    if manifest["dtype"] not in EXPORT_DTYPE_NAMES:
        raise UserInputError(
            f"{path}: dtype {manifest['dtype']!r} is not one of {', '.join(EXPORT_DTYPE_NAMES)}; {EXPORT_HINT}"
        )
    if not (folder / ONNX_FILE).is_file():
        raise UserInputError(f"{folder}: the exported folder has no {ONNX_FILE}")
    return manifest


__all__ = [
    "DEFAULT_OPSET",
    "EXPORT_DTYPE_NAMES",
    "FORMAT_VERSION",
    "MIN_OPSET",
    "INPUT_NAME",
    "MANIFEST_FILE",
    "ONNX_FILE",
    "OUTPUT_NAMES",
    "package_version",
    "read_manifest",
    "require",
    "write_manifest",
]
