"""Hub-ready model folders: model cards, remote-code export and upload.

1. Model cards: [`build_model_card`] returns a `huggingface_hub.ModelCard` (license, library, pipeline tag, tags,
   datasets, base model, a `model-index` with YouTube-VIS results, usage, citations and how the folder was made)
   whose metadata parses back with `ModelCard.load(...).data`. [`save_model_card`] writes it as `README.md`,
   [`save_pretrained_with_card`] saves a model, its processor and the card together.
2. Remote code: [`export_hub_folder`] copies a model folder and adds flat copies of this package's modules with
   rewritten imports, plus the `auto_map` / `custom_pipelines` entries that let transformers load the folder with
   `trust_remote_code=True` where this package is not installed. The copies are generated from the installed
   package source at export time, so they cannot drift from it.
3. Upload: [`upload_plan`] lists what would be uploaded, [`push_folder`] creates the repository (private by
   default) and uploads the folder.
"""

import ast
import importlib
import importlib.metadata
import importlib.util
import inspect
import json
import os
import re
import shutil
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from huggingface_hub import EvalResult, HfApi, ModelCard, ModelCardData
from huggingface_hub.utils import filter_repo_objects, validate_repo_id

from .configuration import Mask2FormerVideoConfig
from .configuration.presets import BACKBONES, DATASET_CATEGORIES

PACKAGE = "modeling_m2f_video"
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


class HubError(ValueError):
    """A folder cannot be exported or uploaded as asked; the message says why."""


# ----------------------------------------------------------------------------------------------------------------
# Model cards
# ----------------------------------------------------------------------------------------------------------------


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


def _remote_usage_text(model_id: str) -> str:
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


# ----------------------------------------------------------------------------------------------------------------
# Remote code
# ----------------------------------------------------------------------------------------------------------------

# Package modules exported as remote code, by the name of their flat copy. Modules they import from the package
# are exported too, under their own last name component.
REMOTE_MODULES = {
    "configuration_mask2former_video": f"{PACKAGE}.configuration.configuration_m2f_video",
    "modeling_mask2former_video": f"{PACKAGE}.modeling_m2f_video",
    "video_processing_mask2former_video": f"{PACKAGE}.processing.video_processing_m2f_video",
    "pipeline_video_instance_segmentation": f"{PACKAGE}.pipeline_video_instance_segmentation",
}
# The head model is reached through this transformers auto class, which the custom pipeline also uses.
HEAD_AUTO_CLASS = "AutoModelForInstanceSegmentation"


def remote_code_sources() -> dict[str, str]:
    """Flat file name (`name.py`) -> source, for `REMOTE_MODULES` and every package module they import.

    Each file is the installed module's source with its imports of the package rewritten to relative imports of
    the other flat files, so that transformers copies and imports them together from a model folder.
    """
    flat_names = _flat_module_names()
    sources = {}
    for module, flat in flat_names.items():
        header = (
            f"# Generated by `m2f-video export-hub` from `{module}` (m2f-video {_package_version()}).\n"
            "# A flat copy for transformers' remote code, with the package imports made relative: edit the package.\n"
        )
        sources[f"{flat}.py"] = header + _rewrite_imports(module, flat_names)
    return sources


def _package_version() -> str:
    try:
        return importlib.metadata.version("m2f-video")
    except importlib.metadata.PackageNotFoundError:
        return "unknown"


def _flat_module_names() -> dict[str, str]:
    """Package module -> flat name, for the exported modules and (transitively) the package modules they import."""
    flat_names = {module: flat for flat, module in REMOTE_MODULES.items()}
    pending = list(flat_names)
    while pending:
        for dependency in _package_dependencies(pending.pop()):
            if dependency not in flat_names:
                flat_names[dependency] = dependency.rsplit(".", 1)[1]
                pending.append(dependency)
    clashes = sorted(flat for flat in set(flat_names.values()) if list(flat_names.values()).count(flat) > 1)
    if clashes:
        raise HubError(f"Two package modules would be exported under the same file name: {clashes}")
    return flat_names


def _module_source(module: str) -> tuple[str, bool]:
    """The source text of an installed package module and whether it is a package (`__init__.py`)."""
    spec = importlib.util.find_spec(module)
    if spec is None or spec.origin is None:
        raise HubError(f"Module {module} is not installed; cannot export it as remote code.")
    return Path(spec.origin).read_text(encoding="utf-8"), spec.submodule_search_locations is not None


def _package_imports(module: str) -> list[tuple[ast.ImportFrom, str]]:
    """The `from ... import` statements of `module` that name a package module, with that module's full name."""
    source, is_package = _module_source(module)
    anchor = module if is_package else module.rpartition(".")[0]
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import) and any(_in_package(alias.name) for alias in node.names):
            raise HubError(f"{module} line {node.lineno}: `import {PACKAGE}...` cannot be made relative; use `from`.")
        if isinstance(node, ast.ImportFrom):
            target = importlib.util.resolve_name("." * node.level + (node.module or ""), anchor)
            if _in_package(target):
                found.append((node, target))
    return found


def _in_package(module: str) -> bool:
    return module == PACKAGE or module.startswith(f"{PACKAGE}.")


def _package_dependencies(module: str) -> set[str]:
    """The package modules that define what `module` imports from the package."""
    return {_defining_module(target, alias.name) for node, target in _package_imports(module) for alias in node.names}


def _defining_module(module: str, name: str) -> str:
    """The module that defines `name`, following the `from .x import name` re-exports of package `__init__`s."""
    source, is_package = _module_source(module)
    if not is_package:
        return module
    if importlib.util.find_spec(f"{module}.{name}") is not None:
        raise HubError(f"`from {module} import {name}` imports a module; import the names it defines instead.")
    for node, target in _package_imports(module):
        if any((alias.asname or alias.name) == name for alias in node.names):
            original = next(alias.name for alias in node.names if (alias.asname or alias.name) == name)
            return _defining_module(target, original)
    raise HubError(f"{name} is defined in the package file of {module}; only modules can be exported.")


def _rewrite_imports(module: str, flat_names: dict[str, str]) -> str:
    """`module`'s source with each package import replaced by relative imports of the flat modules."""
    source, _ = _module_source(module)
    lines = source.splitlines(keepends=True)
    imports = sorted(_package_imports(module), key=lambda item: item[0].lineno, reverse=True)
    for node, target in imports:
        indent = lines[node.lineno - 1][: node.col_offset]
        if indent.strip():
            raise HubError(f"{module} line {node.lineno}: put the package import on a line of its own.")
        by_flat: dict[str, list[str]] = {}
        for alias in node.names:
            flat = flat_names[_defining_module(target, alias.name)]
            by_flat.setdefault(flat, []).append(alias.name + (f" as {alias.asname}" if alias.asname else ""))
        replacement = [f"{indent}from .{flat} import {', '.join(names)}\n" for flat, names in by_flat.items()]
        lines[node.lineno - 1 : node.end_lineno] = replacement
    return "".join(lines)


def _class_ref(cls: type) -> str:
    """`flat_module.ClassName`, as `auto_map` and `custom_pipelines` name a class of the remote code."""
    return f"{_flat_module_names()[cls.__module__]}.{cls.__name__}"


def _pipeline_class() -> type:
    """The pipeline class the package defines for `PIPELINE_TASK`."""
    from transformers import Pipeline

    module = importlib.import_module(REMOTE_MODULES["pipeline_video_instance_segmentation"])
    classes = [
        obj
        for obj in vars(module).values()
        if inspect.isclass(obj) and issubclass(obj, Pipeline) and obj.__module__ == module.__name__
    ]
    if len(classes) != 1:
        raise HubError(f"Expected one Pipeline class in {module.__name__}, found {len(classes)}.")
    return classes[0]


def remote_code_config_entries() -> dict[str, Any]:
    """The `auto_map` and `custom_pipelines` entries of an exported folder's `config.json`."""
    from .modeling_m2f_video import Mask2FormerVideoForVideoInstanceSegmentation, Mask2FormerVideoModel

    return {
        "auto_map": {
            "AutoConfig": _class_ref(Mask2FormerVideoConfig),
            "AutoModel": _class_ref(Mask2FormerVideoModel),
            HEAD_AUTO_CLASS: _class_ref(Mask2FormerVideoForVideoInstanceSegmentation),
        },
        "custom_pipelines": {
            PIPELINE_TASK: {"impl": _class_ref(_pipeline_class()), "pt": [HEAD_AUTO_CLASS], "type": "video"}
        },
    }


def export_hub_folder(
    model_dir: str | os.PathLike,
    output_dir: str | os.PathLike,
    *,
    model_id: str | None = None,
    overwrite: bool = False,
) -> Path:
    """Copy a model folder to `output_dir` and make it loadable with `trust_remote_code=True` without this package.

    Adds the flat remote-code modules ([`remote_code_sources`]), the `auto_map` and `custom_pipelines` entries of
    `config.json`, the processor's `auto_map` (a processor config is created from the model config when the folder
    has none), and the remote-code usage to the model card (a card is created when there is none).

    Args:
        model_dir: a folder written by `save_pretrained` (conversion, training).
        output_dir: the folder to write; must be empty or absent unless `overwrite`.
        model_id: the Hub repository id to use in the card's usage snippets.
        overwrite: write into a non-empty `output_dir`.

    Returns:
        The output folder.
    """
    model_dir, output_dir = Path(model_dir).resolve(), Path(output_dir).resolve()
    config = _check_model_dir(model_dir)
    if output_dir == model_dir:
        raise HubError("The output folder must differ from the model folder.")
    if output_dir.exists() and any(output_dir.iterdir()) and not overwrite:
        raise HubError(f"{output_dir} is not empty (pass overwrite=True / --overwrite to write into it).")
    shutil.copytree(model_dir, output_dir, dirs_exist_ok=True, ignore=shutil.ignore_patterns("__pycache__", ".*"))
    for name, source in remote_code_sources().items():
        (output_dir / name).write_text(source, encoding="utf-8")
    _update_json(output_dir / "config.json", remote_code_config_entries())
    _write_processor_config(output_dir, config)
    _add_remote_usage_to_card(output_dir, config, model_dir, model_id or PLACEHOLDER_MODEL_ID)
    return output_dir


def _check_model_dir(model_dir: Path) -> Mask2FormerVideoConfig:
    if not (model_dir / "config.json").is_file():
        raise HubError(f"{model_dir} has no config.json; pass a folder written by save_pretrained.")
    model_type = json.loads((model_dir / "config.json").read_text(encoding="utf-8")).get("model_type")
    if model_type != Mask2FormerVideoConfig.model_type:
        raise HubError(f"{model_dir} holds a {model_type!r} model, not {Mask2FormerVideoConfig.model_type!r}.")
    return Mask2FormerVideoConfig.from_pretrained(model_dir)


def _update_json(path: Path, entries: dict[str, Any]) -> None:
    content = json.loads(path.read_text(encoding="utf-8"))
    content.update(entries)
    path.write_text(json.dumps(content, indent=2, sort_keys=True) + "\n", encoding="utf-8")


def _write_processor_config(output_dir: Path, config: Mask2FormerVideoConfig) -> None:
    """Give the processor config the remote-code `auto_map`, creating it from the model config if missing."""
    from transformers.utils import VIDEO_PROCESSOR_NAME

    from .processing.video_processing_m2f_video import Mask2FormerVideoProcessor

    path = output_dir / VIDEO_PROCESSOR_NAME
    if not path.is_file():
        Mask2FormerVideoProcessor.from_model_config(config).save_pretrained(output_dir)
    _update_json(path, {"auto_map": {"AutoVideoProcessor": _class_ref(Mask2FormerVideoProcessor)}})


def _add_remote_usage_to_card(
    output_dir: Path, config: Mask2FormerVideoConfig, model_dir: Path, model_id: str
) -> None:
    """Put the remote-code usage into the card (at its marker, or at the end) and tag it `custom_code`."""
    path = output_dir / "README.md"
    if path.is_file():
        card = ModelCard.load(path)
    else:
        card = build_model_card(config, how_made=f"Exported from the model folder `{model_dir.name}`.")
    text = card.text.replace(PLACEHOLDER_MODEL_ID, model_id)
    remote_usage = _remote_usage_text(model_id)
    if REMOTE_USAGE_MARKER in text:
        text = text.replace(REMOTE_USAGE_MARKER, remote_usage)
    elif remote_usage not in text:
        text = text.rstrip("\n") + "\n\n## Usage without m2f-video\n\n" + remote_usage + "\n"
    card.text = text
    card.data.tags = list(dict.fromkeys([*(card.data.tags or []), REMOTE_CODE_TAG]))
    card.save(path)


# ----------------------------------------------------------------------------------------------------------------
# Upload
# ----------------------------------------------------------------------------------------------------------------

UPLOAD_IGNORE_PATTERNS = ["*__pycache__*", "*.pyc", ".git/*", ".cache/*", ".*"]
REPO_ID_PATTERN = re.compile(r"[^/]+/[^/]+")


def check_repo_id(repo_id: str) -> str:
    """`repo_id` if it is a valid `ORG/NAME` Hub repository id; `ValueError` otherwise."""
    if not REPO_ID_PATTERN.fullmatch(repo_id):
        raise ValueError(f"repository id must be ORG/NAME, got {repo_id!r}")
    validate_repo_id(repo_id)
    return repo_id


def upload_plan(folder: str | os.PathLike) -> list[tuple[str, int]]:
    """(path relative to `folder`, size in bytes) of every file [`push_folder`] uploads, sorted by path."""
    folder = Path(folder)
    if not folder.is_dir():
        raise HubError(f"{folder} is not a folder.")
    paths = sorted(path.relative_to(folder).as_posix() for path in folder.rglob("*") if path.is_file())
    selected = list(filter_repo_objects(paths, ignore_patterns=UPLOAD_IGNORE_PATTERNS))
    if not selected:
        raise HubError(f"{folder} has no files to upload.")
    return [(path, (folder / path).stat().st_size) for path in selected]


def folder_warnings(folder: str | os.PathLike) -> list[str]:
    """What a model repository made from `folder` would lack (model card, remote code)."""
    folder = Path(folder)
    warnings = []
    if not (folder / "README.md").is_file():
        warnings.append("no README.md: the repository will have no model card")
    config_path = folder / "config.json"
    if not config_path.is_file():
        warnings.append("no config.json: transformers cannot load this folder")
    elif "auto_map" not in json.loads(config_path.read_text(encoding="utf-8")):
        warnings.append("no auto_map in config.json: it loads only where m2f-video is installed (see export-hub)")
    return warnings


def push_folder(
    folder: str | os.PathLike,
    repo_id: str,
    *,
    private: bool = True,
    token: str | None = None,
    commit_message: str = "Upload Mask2Former video model",
) -> str:
    """Create the model repository `repo_id` if needed (private by default) and upload `folder` into it.

    An existing repository keeps its visibility. Returns the URL of the commit.
    """
    check_repo_id(repo_id)
    upload_plan(folder)  # fails early on a missing or empty folder
    api = HfApi(token=token)
    api.create_repo(repo_id, repo_type="model", private=private, exist_ok=True)
    commit = api.upload_folder(
        folder_path=str(folder),
        repo_id=repo_id,
        repo_type="model",
        ignore_patterns=UPLOAD_IGNORE_PATTERNS,
        commit_message=commit_message,
    )
    return str(commit)
