"""Convert an official Mask2Former (detectron2) checkpoint into a video model folder.

    convert_official_checkpoint("config.yaml", "model_final.pkl", "out/", dataset="ytvis2019", verify=True)

Steps, each failing loudly before anything is written:
0. the output folder must be absent, empty, or (with `overwrite=True`) a model folder to replace (`output`);
1. the YAML (with its `_BASE_` chain) -> `Mask2FormerVideoConfig` (`detectron2_config`);
2. the checkpoint is read without executing code (`checkpoint_io`);
3. every official name is mapped (`key_mapping`) and checked against the model's own state dict, which is built
   on the meta device (no memory): all unmapped, missing and mis-shaped keys are reported together;
4. the tensors are written tensor by tensor into a temporary folder (each official array is released once
   converted, so peak memory stays near one copy of the checkpoint), with `config.json`, the processor config
   and a model card; with `verify=True` the folder is loaded and run on a random clip;
5. only then is the temporary folder renamed into place, in one step (an existing folder is replaced whole).
"""

from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import torch
from tqdm.auto import tqdm

from modeling_m2f_video.configuration import Mask2FormerVideoConfig
from modeling_m2f_video.model_cards import OFFICIAL_WEIGHTS_LICENSE, paper_results, preset_of, save_model_card

from .checkpoint_io import load_checkpoint, write_safetensors
from .detectron2_config import load_yaml_config, processor_settings, video_config_from_detectron2
from .errors import ConfigError, KeyMappingError
from .key_mapping import CHECKED_BUFFERS, derived_tensor, map_name, rules_for, swin_relative_position_index
from .output import check_output_dir, save_processor, staged_output, verify_model_folder

TensorSpecs = dict[str, tuple[tuple[int, ...], torch.dtype]]


@dataclass(frozen=True)
class Source:
    """Where one target tensor comes from: chunk `index` of `count` equal dim-0 chunks of official `name`."""

    name: str
    index: int = 0
    count: int = 1


@dataclass
class ConversionPlan:
    """Target name -> its official source (or None for a derived entry), plus everything that does not fit."""

    sources: dict[str, Source | None] = field(default_factory=dict)
    claimed: set[str] = field(default_factory=set)  # targets some official key maps to, fitting or not
    unmapped: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    mismatched: list[str] = field(default_factory=list)
    duplicated: list[str] = field(default_factory=list)
    unexpected_targets: list[str] = field(default_factory=list)

    def raise_if_invalid(self, checkpoint: Path) -> None:
        """Raise `KeyMappingError` listing every problem, or return when there is none."""
        sections = [
            ("official keys with no mapping", self.unmapped),
            ("model keys missing from the checkpoint", self.missing),
            ("mis-shaped keys", self.mismatched),
            ("model keys filled twice", self.duplicated),
            ("mapped keys the model does not have (wrong architecture for the config?)", self.unexpected_targets),
        ]
        found = [(title, keys) for title, keys in sections if keys]
        if not found:
            return
        lines = [f"{checkpoint} does not fit the model described by the config:"]
        for title, keys in found:
            lines.append(f"  {len(keys)} {title}:")
            lines.extend(f"    {key}" for key in keys)
        raise KeyMappingError("\n".join(lines))


def _video_model_class() -> type:
    from modeling_m2f_video.modeling_m2f_video import Mask2FormerVideoForVideoInstanceSegmentation

    return Mask2FormerVideoForVideoInstanceSegmentation


def target_specs(config: Mask2FormerVideoConfig) -> TensorSpecs:
    """Name -> (shape, dtype) of every state-dict entry of the video model, in order (built on the meta device)."""
    with torch.device("meta"):
        model = _video_model_class()(config)
    return {name: (tuple(tensor.shape), tensor.dtype) for name, tensor in model.state_dict().items()}


def plan_conversion(
    source: dict[str, torch.Tensor], specs: TensorSpecs, config: Mask2FormerVideoConfig
) -> ConversionPlan:
    """Match every official tensor to the target entries it fills and collect all mismatches."""
    plan = ConversionPlan()
    backbone_type = config.backbone_config.model_type
    rules = rules_for(backbone_type)
    for name, tensor in source.items():
        if backbone_type == "swin" and CHECKED_BUFFERS.fullmatch(name):
            _check_relative_position_index(name, tensor, config, plan)
            continue
        targets = map_name(name, rules)
        if targets is None:
            plan.unmapped.append(name)
            continue
        for index, target in enumerate(targets):
            _add_source(plan, specs, target, Source(name, index, len(targets)), tensor)
    for target, (shape, dtype) in specs.items():
        if target not in plan.claimed:
            if derived_tensor(target, shape, dtype) is None:
                plan.missing.append(target)
            else:
                plan.sources[target] = None
    return plan


def _add_source(plan: ConversionPlan, specs: TensorSpecs, target: str, source: Source, tensor: torch.Tensor) -> None:
    """Record `source` as the origin of `target`, or the reason it cannot be (unknown, duplicate, shape, dtype)."""
    if target not in specs:
        plan.unexpected_targets.append(f"{source.name} -> {target}")
        return
    if target in plan.claimed:
        plan.duplicated.append(target)
        return
    plan.claimed.add(target)
    shape, dtype = specs[target]
    chunk_shape = _chunk_shape(tuple(tensor.shape), source.count)
    if chunk_shape != shape:
        split = f" / {source.count} along dim 0" if source.count > 1 else ""
        plan.mismatched.append(f"{source.name} {tuple(tensor.shape)}{split} -> {target} expects {shape}")
        return
    if tensor.dtype.is_floating_point != dtype.is_floating_point:
        plan.mismatched.append(f"{source.name} has dtype {tensor.dtype}, {target} expects {dtype}")
        return
    plan.sources[target] = source


def _chunk_shape(shape: tuple[int, ...], count: int) -> tuple[int, ...] | None:
    """Shape of one of `count` equal dim-0 chunks, or None when dim 0 does not split evenly."""
    if count == 1:
        return shape
    if not shape or shape[0] % count:
        return None
    return (shape[0] // count, *shape[1:])


def _check_relative_position_index(
    name: str, tensor: torch.Tensor, config: Mask2FormerVideoConfig, plan: ConversionPlan
) -> None:
    """Swin's index buffer is recomputed by transformers; it must equal what the window size implies."""
    expected = swin_relative_position_index(config.backbone_config.window_size)
    if tuple(tensor.shape) != tuple(expected.shape):
        plan.mismatched.append(f"{name} {tuple(tensor.shape)} expects {tuple(expected.shape)} (window size)")
    elif not torch.equal(tensor.to(torch.int64), expected):
        plan.mismatched.append(f"{name} differs from the index transformers computes for the window size")


def converted_tensors(
    plan: ConversionPlan, source: dict[str, torch.Tensor], specs: TensorSpecs
) -> Iterator[tuple[str, torch.Tensor]]:
    """Yield every target tensor in `specs` order, deleting each official tensor from `source` after its last
    use so that memory is released as the conversion proceeds."""
    remaining_uses = Counter(entry.name for entry in plan.sources.values() if entry is not None)
    for target, (shape, dtype) in tqdm(specs.items(), desc="converting", unit="tensor"):
        entry = plan.sources[target]
        if entry is None:
            yield target, derived_tensor(target, shape, dtype)
            continue
        tensor = source[entry.name]
        if entry.count > 1:
            tensor = tensor.chunk(entry.count, dim=0)[entry.index]
        yield target, tensor.to(dtype).contiguous()
        remaining_uses[entry.name] -= 1
        if remaining_uses[entry.name] == 0:
            del source[entry.name]


def convert_official_checkpoint(
    config_path: str | Path,
    checkpoint_path: str | Path,
    output_dir: str | Path,
    dataset: str | None = None,
    verify: bool = False,
    overwrite: bool = False,
) -> Path:
    """Convert official Mask2Former weights (`.pkl` or `.pth`) and their detectron2 YAML into a folder that
    `Mask2FormerVideoForVideoInstanceSegmentation.from_pretrained` and the video processor load.

    Args:
        config_path: detectron2 YAML, fully merged or with a `_BASE_` chain.
        checkpoint_path: model-zoo `.pkl` or a `.pth` state dict (optionally under a `"model"` key).
        output_dir: destination folder; written only when the whole conversion succeeds.
        dataset: `"ytvis2019"` or `"ytvis2021"` to name the classes; generic names otherwise.
        verify: load the result and run a random clip through it before publishing it.
        overwrite: replace an existing non-empty model folder at `output_dir` (refused otherwise).

    Returns:
        The output folder.

    Raises:
        ConversionError: (or a subclass) with a message naming every problem found.
    """
    config_path, checkpoint_path = Path(config_path), Path(checkpoint_path)
    inputs = (config_path, checkpoint_path)
    output_dir = check_output_dir(output_dir, overwrite=overwrite, inputs=inputs)
    yaml_config = load_yaml_config(config_path)
    try:
        config = video_config_from_detectron2(yaml_config, dataset)
        settings = processor_settings(yaml_config)
    except ConfigError as error:
        raise ConfigError(f"{config_path}: {error}") from None
    source = load_checkpoint(checkpoint_path)
    specs = target_specs(config)
    plan = plan_conversion(source, specs, config)
    plan.raise_if_invalid(checkpoint_path)
    with staged_output(output_dir, overwrite=overwrite, inputs=inputs) as staging:
        write_safetensors(staging / "model.safetensors", specs, converted_tensors(plan, source, specs))
        config.save_pretrained(staging)
        save_processor(staging, settings)
        preset = preset_of(config)
        save_model_card(
            staging,
            config,
            how_made=(
                f"Converted from the official Mask2Former checkpoint `{checkpoint_path.name}` (config "
                f"`{config_path.name}`) with `m2f-video convert official`; converted models reproduce the official "
                "outputs to 1e-4."
            ),
            reported_results=paper_results(preset) if preset else None,
            license=OFFICIAL_WEIGHTS_LICENSE,
        )
        if verify:
            verify_model_folder(staging)
    return output_dir
