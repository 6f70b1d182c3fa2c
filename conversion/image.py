"""Convert a transformers image Mask2Former (`Mask2FormerForUniversalSegmentation`) into a video model folder.

The video model has exactly the image model's parameters, so the weights are copied unchanged; only when the
label set changes (`num_labels` / `id2label`) is the class head (`class_predictor`, and the loss's
`criterion.empty_weight`) re-initialised for the new classes. This is the paper's initialisation: a COCO
instance-segmentation checkpoint, fine-tuned on YouTube-VIS.

transformers' own Swin checkpoints keep transformers' Swin behaviour (`swin_pad_small_windows=False`).
"""

import json
import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from safetensors import SafetensorError
from transformers import Mask2FormerConfig, Mask2FormerForUniversalSegmentation
from transformers.utils import CONFIG_NAME, cached_file

from modeling_m2f_video.configuration import Mask2FormerVideoConfig
from modeling_m2f_video.model_cards import save_model_card

from .errors import ConversionError
from .output import check_output_dir, save_processor, staged_output, verify_model_folder

IMAGENET_MEAN_255 = [123.675, 116.28, 103.53]
IMAGENET_STD_255 = [58.395, 57.12, 57.375]


def read_id2label(id2label: Mapping[Any, str] | str | Path) -> dict[int, str]:
    """An id2label mapping from a dict or a JSON file (`{"0": "person", ...}`), with int keys 0..N-1."""
    where = "id2label"
    if isinstance(id2label, str | Path):
        where = str(id2label)
        id2label = _read_json(Path(id2label))
    if not isinstance(id2label, Mapping) or not id2label:
        raise ConversionError(f'{where}: must map class ids to names, e.g. {{"0": "person"}}')
    try:
        labels = {int(index): str(name) for index, name in id2label.items()}
    except (TypeError, ValueError) as error:
        raise ConversionError(f"{where}: class ids must be integers: {error}") from None
    if sorted(labels) != list(range(len(labels))):
        raise ConversionError(f"{where}: class ids must be 0..{len(labels) - 1}, found {sorted(labels)}")
    return labels


def _read_json(path: Path) -> Any:
    """The content of a JSON file the user gave; `ConversionError` naming it when it is missing or not JSON."""
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConversionError(f"{path}: no such file") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise ConversionError(f"{path}: not valid JSON: {error}") from None


def new_label_set(
    image_config: Mask2FormerConfig, num_labels: int | None, id2label: Mapping[Any, str] | str | Path | None
) -> dict[int, str] | None:
    """The requested label set, or None when it is the image model's own (so the class head is kept)."""
    current = {int(index): name for index, name in image_config.id2label.items()}
    if num_labels is not None and num_labels < 1:
        raise ConversionError(f"--num-labels must be at least 1, found {num_labels}")
    if id2label is not None:
        labels = read_id2label(id2label)
        if num_labels is not None and num_labels != len(labels):
            raise ConversionError(f"--num-labels {num_labels} disagrees with id2label ({len(labels)} classes)")
    elif num_labels is not None and num_labels != len(current):
        labels = {index: f"LABEL_{index}" for index in range(num_labels)}
    else:
        return None
    return None if labels == current else labels


def image_processor_settings(model_dir_or_hub_id: str | Path, config: Mask2FormerVideoConfig) -> dict[str, Any]:
    """Mean/std and size divisor of the image model's processor (ImageNet / 32 when it has none), with the
    video test sizes of the paper (shortest side 360 for ResNet, 480 for Swin; longest side 1333)."""
    settings = {
        "shortest_edge": config.test_shortest_edge,
        "longest_edge": 1333,
        "pixel_mean": IMAGENET_MEAN_255,
        "pixel_std": IMAGENET_STD_255,
        "size_divisibility": 32,
    }
    path = cached_file(
        str(model_dir_or_hub_id),
        "preprocessor_config.json",
        _raise_exceptions_for_missing_entries=False,
        _raise_exceptions_for_connection_errors=False,
    )
    if path is None:
        return settings
    image_processor = _read_json(Path(path))
    if not isinstance(image_processor, dict):
        raise ConversionError(f"{path}: an image processor config must be a JSON object")
    scale = 255.0 if image_processor.get("do_rescale", True) else 1.0
    for key, setting in (("image_mean", "pixel_mean"), ("image_std", "pixel_std")):
        if key in image_processor:
            settings[setting] = [value * scale for value in _three_numbers(image_processor[key], f"{path}: {key}")]
    divisor = image_processor.get("size_divisor")
    if divisor:
        if not _is_number(divisor) or not float(divisor).is_integer() or divisor < 0:
            raise ConversionError(f"{path}: size_divisor must be a non-negative integer, found {divisor!r}")
        settings["size_divisibility"] = int(divisor)
    return settings


def _three_numbers(value: Any, where: str) -> list[float]:
    """`value` as 3 finite floats (a per-channel mean or std; one number stands for all 3 channels);
    `ConversionError` naming `where` otherwise."""
    numbers = [value] * 3 if _is_number(value) else value
    if not isinstance(numbers, list) or len(numbers) != 3 or not all(_is_number(number) for number in numbers):
        raise ConversionError(f"{where} must be 3 numbers (RGB), found {value!r}")
    return [float(number) for number in numbers]


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def load_image_config(model_dir_or_hub_id: str | Path) -> Mask2FormerConfig:
    """The config of an image Mask2Former folder or hub id; `ConversionError` naming it when there is none.

    A local path must be a folder with a `config.json` of `model_type` `"mask2former"`; anything else that is not
    an existing path is tried as a hub id.
    """
    source = str(model_dir_or_hub_id)
    path = Path(source).expanduser()
    if path.exists() and not (path / CONFIG_NAME).is_file():
        raise ConversionError(f"{source}: not a transformers model folder (no {CONFIG_NAME})")
    if not path.exists() and (path.is_absolute() or source.startswith((".", "~")) or source.count("/") > 1):
        raise ConversionError(f"{source}: no such model folder")
    try:
        config_dict, _ = Mask2FormerConfig.get_config_dict(source)
    except OSError as error:
        problem = f"cannot read its {CONFIG_NAME}" if path.exists() else "no such model folder, and no hub model"
        raise ConversionError(f"{source}: {problem}: {error}") from None
    model_type = config_dict.get("model_type")
    if model_type != Mask2FormerConfig.model_type:
        raise ConversionError(
            f"{source}: holds a {model_type!r} model, not an image Mask2Former ({Mask2FormerConfig.model_type!r})"
        )
    try:
        return Mask2FormerConfig.from_dict(config_dict)
    except (TypeError, ValueError) as error:
        raise ConversionError(f"{source}: invalid {CONFIG_NAME}: {error}") from None


def load_image_state_dict(model_dir_or_hub_id: str | Path) -> dict[str, Any]:
    """The weights of an image Mask2Former; `ConversionError` naming the source when they cannot be read."""
    try:
        return Mask2FormerForUniversalSegmentation.from_pretrained(model_dir_or_hub_id).state_dict()
    except (OSError, ValueError, SafetensorError) as error:
        raise ConversionError(f"{model_dir_or_hub_id}: cannot load the image model's weights: {error}") from None


def _video_model_class() -> type:
    from modeling_m2f_video.modeling_m2f_video import Mask2FormerVideoForVideoInstanceSegmentation

    return Mask2FormerVideoForVideoInstanceSegmentation


def convert_image_checkpoint(
    model_dir_or_hub_id: str | Path,
    output_dir: str | Path,
    num_labels: int | None = None,
    id2label: Mapping[Any, str] | str | Path | None = None,
    verify: bool = False,
    overwrite: bool = False,
) -> Path:
    """Turn a transformers image Mask2Former (folder or hub id) into a video model folder.

    Args:
        model_dir_or_hub_id: a `Mask2FormerForUniversalSegmentation` folder or hub id.
        output_dir: destination folder; written only when the whole conversion succeeds.
        num_labels: number of classes of the video model (class head re-initialised when it changes).
        id2label: class names, as a dict or a JSON file; re-initialises the class head when it differs.
        verify: load the result and run a random clip through it before publishing it.
        overwrite: replace an existing non-empty model folder at `output_dir` (refused otherwise).

    Returns:
        The output folder.

    Raises:
        ConversionError: the source, the labels or the output folder is unusable; the message names which.
    """
    inputs = [model_dir_or_hub_id] if Path(model_dir_or_hub_id).exists() else []
    output_dir = check_output_dir(output_dir, overwrite=overwrite, inputs=inputs)
    image_config = load_image_config(model_dir_or_hub_id)
    labels = new_label_set(image_config, num_labels, id2label)
    config = Mask2FormerVideoConfig.from_image_config(image_config, labels)
    video_model = _video_model_class()(config)
    image_state = load_image_state_dict(model_dir_or_hub_id)
    try:
        video_model.load_image_weights(image_state, new_class_head=labels is not None)
    except ValueError as error:
        raise ConversionError(f"image weights: {error}") from error
    del image_state
    settings = image_processor_settings(model_dir_or_hub_id, config)
    notes = ("The class head was re-initialised for the new label set.",) if labels is not None else ()
    with staged_output(output_dir, overwrite=overwrite, inputs=inputs) as staging:
        video_model.save_pretrained(staging)
        save_processor(staging, settings)
        save_model_card(
            staging,
            config,
            how_made=" ".join(
                (
                    f"Converted from the image Mask2Former `{model_dir_or_hub_id}` with `m2f-video convert image`.",
                    *notes,
                )
            ),
            base_model=None if Path(model_dir_or_hub_id).exists() else str(model_dir_or_hub_id),
        )
        if verify:
            verify_model_folder(staging)
    return output_dir
