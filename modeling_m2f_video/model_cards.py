"""Model cards: the README.md of every model folder the project writes (conversion, training, Hub export).

[`build_model_card`] returns a `huggingface_hub.ModelCard` (license, library, pipeline tag, tags,
   datasets, base model, a `model-index` with YouTube-VIS results, usage, citations and how the folder was made)
   whose metadata parses back with `ModelCard.load(...).data`. [`save_model_card`] writes it as `README.md`,
[`save_pretrained_with_card`] saves a model, its processor and the card together. It depends only on the config
and `huggingface_hub`, so the converters and training use it without the Hub export and upload code (`hub/`).
"""

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from huggingface_hub import EvalResult, ModelCard, ModelCardData

from .configuration import Mask2FormerVideoConfig
from .configuration.presets import BACKBONES, DATASET_CATEGORIES

PIPELINE_TASK = "video-instance-segmentation"
# The Hub accepts only the pipeline tags of its task list (huggingface.js `PIPELINE_DATA`), which has no video
# instance segmentation; the closest accepted one is image segmentation, and the task itself goes into the tags.
HUB_PIPELINE_TAG = "image-segmentation"
CARD_TAGS = ("video-instance-segmentation", "mask2former", "youtube-vis")
REMOTE_CODE_TAG = "custom_code"
# What stands for the repository id in usage snippets until the folder has one.
PLACEHOLDER_MODEL_ID = "ORG/NAME"
# Where `export_hub_folder` puts the remote-code usage into a card made by `build_model_card`.
REMOTE_USAGE_MARKER = "<!-- m2f-video: remote-code usage -->"
# The official Mask2Former weights are released under CC BY-NC 4.0 (Mask2Former MODEL_ZOO.md, "License").
OFFICIAL_WEIGHTS_LICENSE = "cc-by-nc-4.0"
MODEL_ZOO_URL = "https://github.com/facebookresearch/Mask2Former/blob/main/MODEL_ZOO.md"

METRICS = ("AP", "AP50", "AP75", "AR1", "AR10")
YTVIS_DATASETS = {"ytvis2019": "YouTube-VIS 2019", "ytvis2021": "YouTube-VIS 2021"}
YTVIS_DATASET_IDS = {"ytvis2019": "youtube-vis-2019", "ytvis2021": "youtube-vis-2021"}

# Mask AP on the YouTube-VIS validation sets, as reported in Mask2Former's MODEL_ZOO.md, by preset name.
PAPER_AP = {
    "r50-ytvis2019": 46.4,
    "r101-ytvis2019": 49.2,
    "swin-tiny-ytvis2019": 51.5,
    "swin-small-ytvis2019": 54.3,
    "swin-base-ytvis2019": 59.5,
    "swin-large-ytvis2019": 60.4,
    "r50-ytvis2021": 40.6,
    "r101-ytvis2021": 42.4,
    "swin-tiny-ytvis2021": 45.9,
    "swin-small-ytvis2021": 48.6,
    "swin-base-ytvis2021": 52.0,
    "swin-large-ytvis2021": 52.6,
}

CITATIONS = """\
```bibtex
@inproceedings{cheng2022masked,
  title     = {Masked-attention Mask Transformer for Universal Image Segmentation},
  author    = {Cheng, Bowen and Misra, Ishan and Schwing, Alexander G. and Kirillov, Alexander and Girdhar, Rohit},
  booktitle = {Proceedings of the IEEE/CVF Conference on Computer Vision and Pattern Recognition (CVPR)},
  year      = {2022}
}

@article{cheng2021mask2former,
  title   = {Mask2Former for Video Instance Segmentation},
  author  = {Cheng, Bowen and Choudhuri, Anwesa and Misra, Ishan and Kirillov, Alexander and Girdhar, Rohit and
             Schwing, Alexander G.},
  journal = {arXiv preprint arXiv:2112.10764},
  year    = {2021}
}
```"""


@dataclass(frozen=True)
class YouTubeVISResults:
    """Scores of one model on a YouTube-VIS validation set, in percent (0-100) as the paper reports them.

    Args:
        dataset: `"ytvis2019"` or `"ytvis2021"`.
        metrics: metric name (any of `METRICS`: AP, AP50, AP75, AR1, AR10) -> value.
        split: the dataset split the numbers were computed on.
    """

    dataset: str
    metrics: Mapping[str, float]
    split: str = "valid"

    def __post_init__(self) -> None:
        if self.dataset not in YTVIS_DATASETS:
            raise ValueError(f"dataset must be one of {', '.join(YTVIS_DATASETS)}, got {self.dataset!r}")
        unknown = sorted(set(self.metrics) - set(METRICS))
        if unknown or not self.metrics:
            raise ValueError(f"metrics must be a non-empty subset of {', '.join(METRICS)}; unknown: {unknown}")


def paper_results(preset: str) -> YouTubeVISResults:
    """The AP the Mask2Former model zoo reports for one of the paper's variants (`Mask2FormerVideoConfig` presets)."""
    if preset not in PAPER_AP:
        raise ValueError(f"No reported result for {preset!r}. Known: {', '.join(PAPER_AP)}")
    return YouTubeVISResults(dataset=preset.rsplit("-", 1)[1], metrics={"AP": PAPER_AP[preset]})


def preset_of(config: Mask2FormerVideoConfig) -> str | None:
    """The paper variant a config describes (e.g. `"r50-ytvis2019"`), or `None` when it is none of them.

    The backbone is matched on its type, shape and the number of queries; the data set on the label names.
    """
    labels = tuple(config.id2label[index] for index in range(config.num_labels))
    datasets = [name for name, categories in DATASET_CATEGORIES.items() if tuple(categories) == labels]
    backbones = [name for name, spec in BACKBONES.items() if _backbone_matches(config, *spec)]
    if len(datasets) != 1 or len(backbones) != 1:
        return None
    return f"{backbones[0]}-{datasets[0]}"


def _backbone_matches(
    config: Mask2FormerVideoConfig, model_type: str, kwargs: dict[str, Any], _test_size: int, num_queries: int
) -> bool:
    backbone = config.backbone_config
    if backbone.model_type != model_type or config.num_queries != num_queries:
        return False
    return all(_same_value(getattr(backbone, key, None), value) for key, value in kwargs.items())


def _same_value(left: Any, right: Any) -> bool:
    if isinstance(left, (list, tuple)) and isinstance(right, (list, tuple)):
        return list(left) == list(right)
    return left == right


def build_model_card(
    config: Mask2FormerVideoConfig,
    *,
    how_made: str,
    base_model: str | list[str] | None = None,
    datasets: list[str] | None = None,
    eval_results: YouTubeVISResults | None = None,
    reported_results: YouTubeVISResults | None = None,
    license: str = "apache-2.0",
    model_id: str = PLACEHOLDER_MODEL_ID,
    model_name: str | None = None,
) -> ModelCard:
    """The model card (README.md) of a video Mask2Former folder.

    Args:
        config: the model's config (architecture and label set are described from it).
        how_made: one or more sentences (Markdown) saying how the folder was made, e.g. which checkpoint was
            converted with which command, or how the model was trained.
        base_model: Hub id(s) of the model this one derives from, when there is one on the Hub.
        datasets: Hub dataset ids for the metadata; by default the YouTube-VIS set of the results, if any.
        eval_results: numbers measured on this folder (an evaluation run).
        reported_results: numbers reported elsewhere for these weights (the paper's model zoo, see
            [`paper_results`]); marked as reported, with their source.
        license: license id of the weights (`OFFICIAL_WEIGHTS_LICENSE` for converted official checkpoints).
        model_id: repository id used in the usage snippets.
        model_name: name of the model in the `model-index`; derived from the config by default.

    The `model-index` holds the measured numbers when there are some, otherwise the reported ones; the card's
    results table shows both.
    """
    results = eval_results or reported_results
    dataset = results.dataset if results else _dataset_of(config)
    card_data = ModelCardData(
        license=license,
        library_name="transformers",
        pipeline_tag=HUB_PIPELINE_TAG,
        tags=list(CARD_TAGS),
        datasets=datasets if datasets is not None else ([YTVIS_DATASET_IDS[dataset]] if results else None),
        base_model=base_model,
        # huggingface_hub keeps the model name inside the model-index; without results it would be a stray key.
        model_name=(model_name or _default_model_name(config, dataset)) if results else None,
        eval_results=_eval_results(results, reported=eval_results is None) if results else None,
    )
    body = _card_body(config, dataset, how_made, eval_results, reported_results, license, model_id)
    return ModelCard(f"---\n{card_data.to_yaml()}\n---\n\n{body}")


def save_model_card(output_dir: str | os.PathLike, config: Mask2FormerVideoConfig, **card_kwargs: Any) -> Path:
    """Write `output_dir/README.md` built by [`build_model_card`] (`card_kwargs` are its keyword arguments)."""
    path = Path(output_dir) / "README.md"
    path.parent.mkdir(parents=True, exist_ok=True)
    build_model_card(config, **card_kwargs).save(path)
    return path


def save_pretrained_with_card(model: Any, processor: Any, output_dir: str | os.PathLike, **card_kwargs: Any) -> Path:
    """`save_pretrained` of the model and of the processor (if not `None`), then the model card.

    `card_kwargs` are the keyword arguments of [`build_model_card`] (`how_made` is required). Returns the folder.
    """
    output_dir = Path(output_dir)
    model.save_pretrained(output_dir)
    if processor is not None:
        processor.save_pretrained(output_dir)
    save_model_card(output_dir, model.config, **card_kwargs)
    return output_dir


def _dataset_of(config: Mask2FormerVideoConfig) -> str | None:
    """`"ytvis2019"` / `"ytvis2021"` when the config's labels are those of a YouTube-VIS set."""
    labels = tuple(config.id2label[index] for index in range(config.num_labels))
    return next((name for name, categories in DATASET_CATEGORIES.items() if tuple(categories) == labels), None)


def _backbone_text(config: Mask2FormerVideoConfig) -> str:
    backbone = config.backbone_config
    if backbone.model_type == "swin":
        return f"Swin (embed_dim {backbone.embed_dim}, depths {list(backbone.depths)}, window {backbone.window_size})"
    return f"ResNet (depths {list(backbone.depths)}, widths {list(backbone.hidden_sizes)})"


def _default_model_name(config: Mask2FormerVideoConfig, dataset: str | None) -> str:
    preset = preset_of(config)
    if preset:
        return f"mask2former-video-{preset}"
    return f"mask2former-video-{config.backbone_config.model_type}" + (f"-{dataset}" if dataset else "")


def _eval_results(results: YouTubeVISResults, reported: bool) -> list[EvalResult]:
    """One `EvalResult` per metric; reported numbers carry the model zoo as their source."""
    return [
        EvalResult(
            task_type=HUB_PIPELINE_TAG,
            task_name="Video Instance Segmentation",
            dataset_type=YTVIS_DATASET_IDS[results.dataset],
            dataset_name=YTVIS_DATASETS[results.dataset],
            dataset_split=results.split,
            metric_type=metric.lower(),
            metric_name=f"{metric} (reported)" if reported else metric,
            metric_value=float(value),
            source_name="Mask2Former model zoo (reported)" if reported else None,
            source_url=MODEL_ZOO_URL if reported else None,
        )
        for metric, value in results.metrics.items()
    ]


def _card_body(
    config: Mask2FormerVideoConfig,
    dataset: str | None,
    how_made: str,
    eval_results: YouTubeVISResults | None,
    reported_results: YouTubeVISResults | None,
    license: str,
    model_id: str,
) -> str:
    sections = [
        _intro_section(config, dataset),
        f"## How this folder was made\n\n{how_made.strip()}",
        _results_section(eval_results, reported_results),
        _usage_section(model_id),
        f"## License\n\nThe weights are distributed under `{license}`. The m2f-video code is Apache-2.0.",
        f"## Citation\n\n{CITATIONS}",
    ]
    return "\n\n".join(section for section in sections if section) + "\n"


def _intro_section(config: Mask2FormerVideoConfig, dataset: str | None) -> str:
    dataset_text = YTVIS_DATASETS.get(dataset, "a custom label set")
    return (
        "# Mask2Former for video instance segmentation\n\n"
        "Mask2Former (Cheng et al., CVPR 2022) applied to video as in *Mask2Former for Video Instance "
        "Segmentation* (Cheng et al., 2021): the masked cross-attention attends to the features of all frames at "
        "once and every query predicts one mask volume, i.e. one object tracked through the whole clip. "
        f"Ported to transformers by the `m2f-video` package; task: `{PIPELINE_TASK}`.\n\n"
        f"- backbone: {_backbone_text(config)}\n"
        f"- transformer decoder: {config.decoder_layers - 1} masked-attention layers, {config.num_queries} queries\n"
        f"- classes: {config.num_labels} ({dataset_text})\n"
        f"- test-time shortest side: {config.test_shortest_edge}, top {config.test_top_k} instances per video"
    )


def _results_section(eval_results: YouTubeVISResults | None, reported_results: YouTubeVISResults | None) -> str:
    rows = []
    if eval_results:
        rows.append(_results_row("measured on this folder", eval_results))
    if reported_results:
        rows.append(_results_row(f"reported ([Mask2Former model zoo]({MODEL_ZOO_URL}))", reported_results))
    if not rows:
        return ""
    header = "| source | dataset | " + " | ".join(METRICS) + " |"
    rule = "|---" * (len(METRICS) + 2) + "|"
    return "## Results on YouTube-VIS\n\n" + "\n".join([header, rule, *rows])


def _results_row(source: str, results: YouTubeVISResults) -> str:
    values = [f"{results.metrics[metric]:.1f}" if metric in results.metrics else "-" for metric in METRICS]
    return f"| {source} | {YTVIS_DATASETS[results.dataset]} ({results.split}) | " + " | ".join(values) + " |"


def usage_snippet(model_id: str, remote_code: bool = False) -> str:
    """Python code that runs the model of `model_id` on a clip and prints the instances it finds.

    With `remote_code`, the code loads the model through transformers alone (`trust_remote_code=True`), for
    folders written by [`export_hub_folder`]; otherwise it uses this package.
    """
    if remote_code:
        imports = "from transformers import AutoModelForInstanceSegmentation, AutoVideoProcessor"
        loading = (
            "processor = AutoVideoProcessor.from_pretrained(model_id, trust_remote_code=True)\n"
            "model = AutoModelForInstanceSegmentation.from_pretrained(model_id, trust_remote_code=True).eval()"
        )
    else:
        imports = (
            "from modeling_m2f_video import Mask2FormerVideoForVideoInstanceSegmentation, Mask2FormerVideoProcessor"
        )
        loading = (
            "processor = Mask2FormerVideoProcessor.from_pretrained(model_id)\n"
            "model = Mask2FormerVideoForVideoInstanceSegmentation.from_pretrained(model_id).eval()"
        )
    return f"""\
import numpy as np
import torch
{imports}

model_id = "{model_id}"
{loading}

# A clip as (frames, height, width, 3) uint8 RGB; a list of PIL images or a video file path also works.
video = np.random.default_rng(0).integers(0, 256, size=(4, 240, 320, 3), dtype=np.uint8)
inputs = processor(video, return_tensors="pt")
with torch.no_grad():
    outputs = model(pixel_values_videos=inputs["pixel_values_videos"], pixel_mask=inputs["pixel_mask"])
instances = processor.post_process_video_instance_segmentation(
    outputs, target_sizes=inputs["original_sizes"], resized_sizes=inputs["resized_sizes"]
)[0]
for score, label, masks in zip(instances["scores"], instances["labels"], instances["masks"]):
    print(f"{{model.config.id2label[int(label)]}}: score {{score:.2f}}, masks {{tuple(masks.shape)}}")  # (T, H, W)
"""


def _usage_section(model_id: str) -> str:
    return (
        "## Usage\n\n"
        "With the `m2f-video` package installed:\n\n"
        f"```python\n{usage_snippet(model_id)}```\n\n"
        f"{REMOTE_USAGE_MARKER}"
    )


def remote_usage_text(model_id: str) -> str:
    return (
        "Without the package: this folder carries the model code (written by `m2f-video export-hub`), which "
        "transformers runs when you pass `trust_remote_code=True`:\n\n"
        f"```python\n{usage_snippet(model_id, remote_code=True)}```\n\n"
        "The pipeline works the same way:\n\n"
        "```python\n"
        "from transformers import pipeline\n\n"
        f'pipe = pipeline("{PIPELINE_TASK}", model="{model_id}", trust_remote_code=True)\n'
        "```"
    )
