"""The shipped demo model and the demo (the library behind `m2f-video demo`).

`resolve_model_path("demo")` names the small model that ships with the package. [`run_demo`] segments a video drawn
by the project's synthetic generator, with a seed the demo model was not trained on, writes the same files as
`m2f-video predict` (plus the input video) and reports how well each generated object was found (its mask IoU
with the best predicted instance).
"""

from __future__ import annotations

import itertools
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .errors import UserInputError
from .processing.synthetic import SyntheticVideo, category_names, generate_video
from .processing.video_io import write_video
from .ytvis.rle import decode_rle

DEMO_MODEL_NAME = "demo"
DEMO_MODEL_DIR = Path(__file__).resolve().parent / "demo_model"


def resolve_model_path(name_or_path: str | os.PathLike) -> str:
    """The model folder (or Hub id) that `name_or_path` names; "demo" is the shipped demo model.

    A local folder is checked before anything is loaded, so that a wrong `--model` gives one clear message: a
    [`UserInputError`] when the demo model is not installed, when the path is a file, a missing folder (and not a
    Hub id either) or a folder without `config.json`. A name that is no local path but a valid Hub id is returned
    as it is, for transformers to download.
    """
    if str(name_or_path) == DEMO_MODEL_NAME:
        if not (DEMO_MODEL_DIR / "config.json").is_file():
            raise UserInputError(
                f"{DEMO_MODEL_DIR}: the demo model is not installed (no config.json). It is trained on the project's "
                "synthetic videos by the project's training command; until it is there, pass a model folder with "
                "--model DIR."
            )
        return str(DEMO_MODEL_DIR)
    path = Path(name_or_path)
    if path.is_dir():
        if not (path / "config.json").is_file():
            raise UserInputError(f"{path}: not a model folder (it has no config.json)")
        return os.fspath(path)
    if path.exists():
        raise UserInputError(f"{path}: is a file; pass the model folder (the one holding config.json)")
    if not _is_hub_id(str(name_or_path)):
        raise UserInputError(f"{path}: no such model folder")
    return str(name_or_path)


def _is_hub_id(name: str) -> bool:
    """Whether `name` is a valid Hugging Face Hub repository id (`name` or `org/name`)."""
    from huggingface_hub.errors import HFValidationError
    from huggingface_hub.utils import validate_repo_id

    try:
        validate_repo_id(name)
    except HFValidationError:
        return False
    return True


DEMO_SEED = 20240917  # not a seed of the demo model's training data


DEMO_VIDEO_NAME = "demo_video"


DEMO_MIN_OBJECTS = 3  # the default demo video shows several objects, so tracking and occlusion are visible


def demo_video(index: int | None, **video_options) -> SyntheticVideo:
    """Generated video `index`, or by default the first one with at least `DEMO_MIN_OBJECTS` objects."""
    if index is not None:
        return generate_video(index, seed=DEMO_SEED, **video_options)
    return next(
        video
        for video in (generate_video(i, seed=DEMO_SEED, **video_options) for i in itertools.count())
        if len(video.labels) >= DEMO_MIN_OBJECTS
    )


def print_ground_truth_match(video: SyntheticVideo, results: list[dict], names: list[str]) -> None:
    """For each generated object, the predicted instance that covers it best and their mask IoU."""
    predictions = [_decode_track(record, video.masks.shape[1:]) for record in results]
    print(f"ground truth: {len(video.labels)} objects")
    for index, (mask, label) in enumerate(zip(video.masks, video.labels)):
        ious = [volume_iou(mask, predicted) for predicted in predictions]
        best = int(np.argmax(ious)) if ious else None
        found = (
            f"best instance: {names[results[best]['category_id'] - 1]} (score {results[best]['score']:.2f}), "
            f"mask IoU {ious[best]:.2f}"
            if best is not None
            else "no instance predicted"
        )
        print(f"  object {index} ({names[label]}): {found}")


def volume_iou(first: np.ndarray, second: np.ndarray) -> float:
    """IoU of two (T, H, W) bool mask volumes (0 when both are empty)."""
    union = np.logical_or(first, second).sum()
    return float(np.logical_and(first, second).sum() / union) if union else 0.0


def _decode_track(record: dict, shape: tuple[int, int, int]) -> np.ndarray:
    """A result record's (T, H, W) bool masks (empty where the segmentation is null)."""
    masks = np.zeros(shape, dtype=bool)
    for frame, rle in enumerate(record["segmentations"]):
        if rle is not None:
            masks[frame] = decode_rle(rle)
    return masks


@dataclass
class DemoRun:
    """What the demo made: the input video file, the batch-prediction summary, the generated video (with its ground
    truth) and the class names."""

    input_path: Path
    summary: dict
    video: SyntheticVideo
    class_names: list[str]


def run_demo(
    output: str | os.PathLike,
    video_index: int | None = None,
    num_frames: int = 24,
    height: int = 96,
    width: int = 128,
    threshold: float = 0.5,
    device: str | None = None,
    progress: bool = True,
) -> DemoRun:
    """Generate a demo video, segment it with the demo model and write everything into `output`.

    The demo's files have fixed names, so running it again replaces them; `output` may not be a file.
    """
    from transformers import AutoConfig

    from .batch_prediction import predict_videos

    output = Path(output)
    if output.exists() and not output.is_dir():
        raise UserInputError(f"{output}: is a file, not a folder")
    model_path = resolve_model_path(DEMO_MODEL_NAME)
    num_classes = AutoConfig.from_pretrained(model_path).num_labels
    video = demo_video(video_index, num_frames=num_frames, height=height, width=width, num_classes=num_classes)
    output.mkdir(parents=True, exist_ok=True)
    input_path = write_video(output / f"{DEMO_VIDEO_NAME}.mp4", video.frames)
    summary = predict_videos(
        [video.frames],
        model=model_path,
        output=output,
        names=[DEMO_VIDEO_NAME],
        threshold=threshold,
        overlay_threshold=threshold,
        device=device,
        progress=progress,
        overwrite=True,  # the folder holds the input video just written (and maybe an earlier demo's files)
    )
    return DemoRun(input_path, summary, video, category_names(num_classes))
