"""Convert a transformers image Mask2Former (`Mask2FormerForUniversalSegmentation`) into a video model folder.

The video model has exactly the image model's parameters, so the weights are copied unchanged; only when the
label set changes (`num_labels` / `id2label`) is the class head (`class_predictor`, and the loss's
`criterion.empty_weight`) re-initialised for the new classes. This is the paper's initialisation: a COCO
instance-segmentation checkpoint, fine-tuned on YouTube-VIS.

transformers' own Swin checkpoints keep transformers' Swin behaviour (`swin_pad_small_windows=False`).
"""

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from transformers import Mask2FormerConfig, Mask2FormerForUniversalSegmentation
from transformers.utils import cached_file

from modeling_m2f_video.configuration import Mask2FormerVideoConfig
from modeling_m2f_video.model_cards import save_model_card

from .errors import ConversionError
from .output import save_processor, staged_output, verify_model_folder

IMAGENET_MEAN_255 = [123.675, 116.28, 103.53]
IMAGENET_STD_255 = [58.395, 57.12, 57.375]


def read_id2label(id2label: Mapping[Any, str] | str | Path) -> dict[int, str]:
    """An id2label mapping from a dict or a JSON file (`{"0": "person", ...}`), with int keys 0..N-1."""
    if isinstance(id2label, str | Path):
        try:
            id2label = json.loads(Path(id2label).read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError) as error:
            raise ConversionError(f"cannot read id2label file {id2label}: {error}") from error
    if not isinstance(id2label, Mapping):
        raise ConversionError("id2label must map class ids to names")
    try:
        labels = {int(index): str(name) for index, name in id2label.items()}
    except ValueError as error:
        raise ConversionError(f"id2label keys must be integers: {error}") from error
    if sorted(labels) != list(range(len(labels))):
        raise ConversionError(f"id2label keys must be 0..{len(labels) - 1}, found {sorted(labels)}")
    return labels


def new_label_set(
    image_config: Mask2FormerConfig, num_labels: int | None, id2label: Mapping[Any, str] | str | Path | None
) -> dict[int, str] | None:
    """The requested label set, or None when it is the image model's own (so the class head is kept)."""
    current = {int(index): name for index, name in image_config.id2label.items()}
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
        str(model_dir_or_hub_id), "preprocessor_config.json", _raise_exceptions_for_missing_entries=False
    )
    if path is None:
        return settings
    image_processor = json.loads(Path(path).read_text(encoding="utf-8"))
    scale = 255.0 if image_processor.get("do_rescale", True) else 1.0
    if "image_mean" in image_processor:
        settings["pixel_mean"] = [value * scale for value in image_processor["image_mean"]]
    if "image_std" in image_processor:
        settings["pixel_std"] = [value * scale for value in image_processor["image_std"]]
    if image_processor.get("size_divisor"):
        settings["size_divisibility"] = int(image_processor["size_divisor"])
    return settings


def _video_model_class() -> type:
    from modeling_m2f_video.modeling_m2f_video import Mask2FormerVideoForVideoInstanceSegmentation

    return Mask2FormerVideoForVideoInstanceSegmentation


def convert_image_checkpoint(
    model_dir_or_hub_id: str | Path,
    output_dir: str | Path,
    num_labels: int | None = None,
    id2label: Mapping[Any, str] | str | Path | None = None,
    verify: bool = False,
) -> Path:
    """Turn a transformers image Mask2Former (folder or hub id) into a video model folder.

    Args:
        model_dir_or_hub_id: a `Mask2FormerForUniversalSegmentation` folder or hub id.
        output_dir: destination folder; written only when the whole conversion succeeds.
        num_labels: number of classes of the video model (class head re-initialised when it changes).
        id2label: class names, as a dict or a JSON file; re-initialises the class head when it differs.
        verify: load the result and run a random clip through it before publishing it.

    Returns:
        The output folder.
    """
    image_config = Mask2FormerConfig.from_pretrained(model_dir_or_hub_id)
    labels = new_label_set(image_config, num_labels, id2label)
    config = Mask2FormerVideoConfig.from_image_config(image_config, labels)
    video_model = _video_model_class()(config)
    image_state = Mask2FormerForUniversalSegmentation.from_pretrained(model_dir_or_hub_id).state_dict()
    try:
        video_model.load_image_weights(image_state, new_class_head=labels is not None)
    except ValueError as error:
        raise ConversionError(f"image weights: {error}") from error
    del image_state
    settings = image_processor_settings(model_dir_or_hub_id, config)
    notes = ("The class head was re-initialised for the new label set.",) if labels is not None else ()
    with staged_output(output_dir) as staging:
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
    return Path(output_dir).expanduser().resolve()
