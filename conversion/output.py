"""Shared output steps of the converters: an all-or-nothing output folder, the processor config, `--verify`."""

import contextlib
import os
import secrets
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch

from .errors import ConversionError


@contextlib.contextmanager
def staged_output(output_dir: str | Path) -> Iterator[Path]:
    """Yield an empty temporary folder next to `output_dir`; move its files into `output_dir` only if the block
    succeeds. On any error nothing is written to `output_dir` and the temporary folder is removed."""
    output_dir = Path(output_dir).expanduser().resolve()
    if output_dir.exists() and not output_dir.is_dir():
        raise ConversionError(f"output path exists and is not a folder: {output_dir}")
    output_dir.parent.mkdir(parents=True, exist_ok=True)
    staging = output_dir.parent / f".{output_dir.name}.partial-{secrets.token_hex(6)}"
    staging.mkdir()
    try:
        yield staging
        _publish(staging, output_dir)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _publish(staging: Path, output_dir: Path) -> None:
    """Rename the staging folder to `output_dir`, or move its files into an existing `output_dir`."""
    if not output_dir.exists():
        staging.rename(output_dir)
        return
    for path in staging.iterdir():
        os.replace(path, output_dir / path.name)


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
