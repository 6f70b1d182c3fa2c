"""Shared output steps of the converters and the Hub export: an all-or-nothing output folder, the processor config,
`--verify`.

[`staged_output`] writes a folder into a temporary sibling and publishes it in one step, so that a failure at any
point leaves the output path exactly as it was: absent, empty, or the old folder complete. An existing non-empty
folder is replaced only with `overwrite=True`, and then as a whole (the old folder is moved aside, the new one
renamed in, the old one deleted), so that no stale file of an earlier run survives next to the new ones.
"""

import contextlib
import os
import secrets
import shutil
import warnings
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import torch

from modeling_m2f_video.errors import UserInputError

from .errors import ConversionError

# A folder that `overwrite` may replace must look like a model folder, so that a mistyped `--output` (a home or
# data folder) is never deleted.
MODEL_FOLDER_MARKER = "config.json"


def check_output_dir(
    output_dir: str | os.PathLike,
    *,
    overwrite: bool = False,
    inputs: Iterable[str | os.PathLike] = (),
    error: type[UserInputError] = ConversionError,
) -> Path:
    """The resolved `output_dir` if a folder may be published there; `error` naming it and the problem otherwise.

    Allowed: an absent path, an empty folder, or (with `overwrite`) a model folder that contains none of `inputs`.
    """
    output_dir = Path(output_dir).expanduser().resolve()
    if not output_dir.exists():
        ancestor = next(parent for parent in output_dir.parents if parent.exists())  # `/` at least
        if not ancestor.is_dir():
            raise error(f"{output_dir}: cannot create the output folder: {ancestor} is not a folder")
        return output_dir
    if not output_dir.is_dir():
        raise error(f"{output_dir}: exists and is not a folder")
    if not any(output_dir.iterdir()):
        return output_dir
    if not overwrite:
        raise error(f"{output_dir}: the folder is not empty (pass --overwrite to replace it)")
    if not (output_dir / MODEL_FOLDER_MARKER).is_file():
        raise error(
            f"{output_dir}: --overwrite replaces only a model folder (one with {MODEL_FOLDER_MARKER}); this folder "
            "has none and is left alone: remove it yourself or choose another output folder"
        )
    for path in inputs:
        path = Path(path).expanduser().resolve()
        if path == output_dir or output_dir in path.parents:
            raise error(f"{output_dir}: holds the input {path}, which --overwrite would delete")
    return output_dir


@contextlib.contextmanager
def staged_output(
    output_dir: str | os.PathLike,
    *,
    overwrite: bool = False,
    inputs: Iterable[str | os.PathLike] = (),
    error: type[UserInputError] = ConversionError,
) -> Iterator[Path]:
    """Yield an empty temporary folder next to `output_dir`; publish it as `output_dir` only if the block succeeds.

    On any error the temporary folder is removed and `output_dir` is left as it was. `overwrite`, `inputs` and
    `error` are those of [`check_output_dir`]; a file-system error while writing or publishing becomes `error`
    naming `output_dir`.
    """
    output_dir = check_output_dir(output_dir, overwrite=overwrite, inputs=inputs, error=error)
    staging = _sibling(output_dir, "partial")
    try:
        output_dir.parent.mkdir(parents=True, exist_ok=True)
        staging.mkdir()
    except OSError as os_error:
        raise error(f"{output_dir}: cannot create the output folder: {os_error.strerror or os_error}") from None
    try:
        yield staging
        check_output_dir(output_dir, overwrite=overwrite, inputs=inputs, error=error)  # it may have changed
        _publish(staging, output_dir)
    except OSError as os_error:
        if not _is_about(os_error, output_dir):  # e.g. an input file: the CLI names that file itself
            raise
        raise error(f"{output_dir}: cannot write the output folder: {os_error.strerror or os_error}") from None
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _sibling(output_dir: Path, purpose: str) -> Path:
    """A new hidden path next to `output_dir` (same file system, so that renaming it is one atomic step)."""
    return output_dir.parent / f".{output_dir.name}.{purpose}-{secrets.token_hex(6)}"


def _is_about(os_error: OSError, output_dir: Path) -> bool:
    """Whether `os_error` names `output_dir`, or a path in one of its hidden siblings (staging, old folder)."""
    filename = os.fsdecode(os_error.filename) if os_error.filename is not None else ""
    return filename == str(output_dir) or filename.startswith(str(output_dir.parent / f".{output_dir.name}."))


def _publish(staging: Path, output_dir: Path) -> None:
    """Rename `staging` to `output_dir`. An existing empty folder is removed first; a non-empty one (allowed by
    `check_output_dir`) is moved aside, and deleted once the new folder is in place, or moved back if the rename
    fails."""
    if output_dir.exists() and not any(output_dir.iterdir()):
        output_dir.rmdir()
    if not output_dir.exists():
        staging.rename(output_dir)
        return
    old = _sibling(output_dir, "old")
    output_dir.rename(old)
    try:
        staging.rename(output_dir)
    except OSError:
        old.rename(output_dir)
        raise
    try:
        shutil.rmtree(old)
    except OSError as os_error:
        warnings.warn(f"{old}: the replaced folder could not be deleted: {os_error}", stacklevel=3)


def save_processor(output_dir: Path, settings: dict[str, Any]) -> None:
    """Write the video processor config for the converted model.

    `settings` holds `shortest_edge`, `longest_edge`, `pixel_mean`/`pixel_std` (0..255 scale, RGB) and
    `size_divisibility`, as read from the official config (or the image processor of an image checkpoint).
    """
    from modeling_m2f_video.processing.video_processing_m2f_video import Mask2FormerVideoProcessor

    processor = Mask2FormerVideoProcessor(
        size={"shortest_edge": settings["shortest_edge"], "longest_edge": settings["longest_edge"]},
        image_mean=[value / 255.0 for value in settings["pixel_mean"]],
        image_std=[value / 255.0 for value in settings["pixel_std"]],
        size_divisibility=settings["size_divisibility"],
    )
    processor.save_pretrained(output_dir)


def verify_model_folder(model_dir: Path, num_frames: int = 2, height: int = 64, width: int = 96) -> dict[str, Any]:
    """Load a converted folder and run a random clip through it: every weight must load, the outputs must have
    the expected shapes and contain no NaN/inf. Returns a short summary; raises `ConversionError` otherwise."""
    from modeling_m2f_video.modeling_m2f_video import Mask2FormerVideoForVideoInstanceSegmentation

    model, info = Mask2FormerVideoForVideoInstanceSegmentation.from_pretrained(model_dir, output_loading_info=True)
    problems = {key: value for key, value in info.items() if value}
    if problems:
        raise ConversionError(f"verify: the converted weights do not load cleanly: {problems}")
    model.eval()
    config = model.config
    generator = torch.Generator().manual_seed(0)
    clip = torch.randn(1, num_frames, 3, height, width, generator=generator)
    with torch.no_grad():
        outputs = model(pixel_values_videos=clip)
    expected = {
        "class_queries_logits": (1, config.num_queries, config.num_labels + 1),
        "masks_queries_logits": (1, config.num_queries, num_frames, height // 4, width // 4),
    }
    for name, shape in expected.items():
        tensor = getattr(outputs, name)
        if tuple(tensor.shape) != shape:
            raise ConversionError(f"verify: {name} has shape {tuple(tensor.shape)}, expected {shape}")
        if not torch.isfinite(tensor).all():
            raise ConversionError(f"verify: {name} contains NaN or inf")
    return {name: shape for name, shape in expected.items()}
