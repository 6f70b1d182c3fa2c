"""Official (detectron2) parameter names -> video-model parameter names.

Each rule is a regular expression over the official name and a function that builds the new name(s) from the
match. Rules with several targets split the tensor into equal chunks along dim 0 (the q|k|v stacks of Swin's
`attn.qkv` and of the decoder self-attention's `in_proj`). `docs/conversion.md` shows the same tables.

A few official buffers have no counterpart because transformers recomputes them (`CHECKED_BUFFERS`: Swin's
`relative_position_index`, compared with the recomputed one instead of copied), and a few target entries have no
official source (`derived_tensor`: BatchNorm's `num_batches_tracked`, Swin's unused final `swin.layernorm`).
"""

import re
from collections.abc import Callable
from dataclasses import dataclass

import torch

BACKBONE = "model.pixel_level_module.encoder."
PIXEL_DECODER = "model.pixel_level_module.decoder."
TRANSFORMER = "model.transformer_module."
DECODER_LAYERS = TRANSFORMER + "decoder.layers."


@dataclass(frozen=True)
class Rule:
    """`pattern` (anchored) matches an official name; `targets(match)` gives the new name(s)."""

    pattern: re.Pattern
    targets: Callable[[re.Match], tuple[str, ...]]


def _rule(pattern: str, *templates: str) -> Rule:
    """A rule whose targets are `str.format` templates filled with the match's groups (as strings)."""
    compiled = re.compile(pattern)
    return Rule(compiled, lambda match: tuple(template.format(*match.groups()) for template in templates))


def _stage(match: re.Match) -> str:
    """detectron2 `res2..res5` -> transformers `stages.0..3`."""
    return str(int(match.group(1)) - 2)


def _resnet_conv(match: re.Match) -> tuple[str, ...]:
    stage, block, conv, rest = _stage(match), match.group(2), int(match.group(3)), match.group(4)
    module = "convolution" if rest == "weight" else "normalization"
    leaf = "weight" if rest == "weight" else rest.removeprefix("norm.")
    return (f"{BACKBONE}encoder.stages.{stage}.layers.{block}.layer.{conv - 1}.{module}.{leaf}",)


def _resnet_shortcut(match: re.Match) -> tuple[str, ...]:
    stage, block, rest = _stage(match), match.group(2), match.group(3)
    module = "convolution" if rest == "weight" else "normalization"
    leaf = "weight" if rest == "weight" else rest.removeprefix("norm.")
    return (f"{BACKBONE}encoder.stages.{stage}.layers.{block}.shortcut.{module}.{leaf}",)


_NORM_LEAF = r"(weight|bias|running_mean|running_var)"

RESNET_RULES = (
    _rule(r"backbone\.stem\.conv1\.weight", BACKBONE + "embedder.embedder.convolution.weight"),
    _rule(rf"backbone\.stem\.conv1\.norm\.{_NORM_LEAF}", BACKBONE + "embedder.embedder.normalization.{0}"),
    Rule(re.compile(rf"backbone\.res([2-5])\.(\d+)\.conv([1-3])\.(weight|norm\.{_NORM_LEAF})"), _resnet_conv),
    Rule(re.compile(rf"backbone\.res([2-5])\.(\d+)\.shortcut\.(weight|norm\.{_NORM_LEAF})"), _resnet_shortcut),
)

_SWIN_BLOCK = BACKBONE + "swin.encoder.layers.{0}.blocks.{1}."
_QKV = ("q_proj", "k_proj", "v_proj")

SWIN_RULES = (
    _rule(r"backbone\.patch_embed\.proj\.(weight|bias)", BACKBONE + "swin.embeddings.patch_embeddings.projection.{0}"),
    _rule(r"backbone\.patch_embed\.norm\.(weight|bias)", BACKBONE + "swin.embeddings.norm.{0}"),
    _rule(r"backbone\.layers\.(\d+)\.blocks\.(\d+)\.norm1\.(weight|bias)", _SWIN_BLOCK + "layernorm_before.{2}"),
    _rule(r"backbone\.layers\.(\d+)\.blocks\.(\d+)\.norm2\.(weight|bias)", _SWIN_BLOCK + "layernorm_after.{2}"),
    _rule(
        r"backbone\.layers\.(\d+)\.blocks\.(\d+)\.attn\.qkv\.(weight|bias)",
        *(_SWIN_BLOCK + f"attention.{name}.{{2}}" for name in _QKV),
    ),
    _rule(r"backbone\.layers\.(\d+)\.blocks\.(\d+)\.attn\.proj\.(weight|bias)", _SWIN_BLOCK + "attention.o_proj.{2}"),
    _rule(
        r"backbone\.layers\.(\d+)\.blocks\.(\d+)\.attn\.relative_position_bias_table",
        _SWIN_BLOCK + "attention.relative_position_bias.relative_position_bias_table",
    ),
    _rule(r"backbone\.layers\.(\d+)\.blocks\.(\d+)\.mlp\.(fc[12])\.(weight|bias)", _SWIN_BLOCK + "mlp.{2}.{3}"),
    _rule(
        r"backbone\.layers\.(\d+)\.downsample\.reduction\.weight",
        BACKBONE + "swin.encoder.layers.{0}.downsample.reduction.weight",
    ),
    _rule(
        r"backbone\.layers\.(\d+)\.downsample\.norm\.(weight|bias)",
        BACKBONE + "swin.encoder.layers.{0}.downsample.norm.{1}",
    ),
    Rule(
        re.compile(r"backbone\.norm([0-3])\.(weight|bias)"),
        lambda match: (f"{BACKBONE}hidden_states_norms.stage{int(match.group(1)) + 1}.{match.group(2)}",),
    ),
)

_OFFICIAL_PIXEL_DECODER = r"sem_seg_head\.pixel_decoder\."
_ENCODER_LAYER = PIXEL_DECODER + "encoder.layers.{0}."

PIXEL_DECODER_RULES = (
    _rule(
        _OFFICIAL_PIXEL_DECODER + r"input_proj\.(\d+)\.([01])\.(weight|bias)",
        PIXEL_DECODER + "input_projections.{0}.{1}.{2}",
    ),
    _rule(_OFFICIAL_PIXEL_DECODER + r"transformer\.level_embed", PIXEL_DECODER + "level_embed"),
    _rule(
        _OFFICIAL_PIXEL_DECODER
        + r"transformer\.encoder\.layers\.(\d+)\.self_attn\.(sampling_offsets|attention_weights|value_proj|output_proj)\.(weight|bias)",
        _ENCODER_LAYER + "self_attn.{1}.{2}",
    ),
    _rule(
        _OFFICIAL_PIXEL_DECODER + r"transformer\.encoder\.layers\.(\d+)\.norm1\.(weight|bias)",
        _ENCODER_LAYER + "self_attn_layer_norm.{1}",
    ),
    _rule(
        _OFFICIAL_PIXEL_DECODER + r"transformer\.encoder\.layers\.(\d+)\.linear1\.(weight|bias)",
        _ENCODER_LAYER + "fc1.{1}",
    ),
    _rule(
        _OFFICIAL_PIXEL_DECODER + r"transformer\.encoder\.layers\.(\d+)\.linear2\.(weight|bias)",
        _ENCODER_LAYER + "fc2.{1}",
    ),
    _rule(
        _OFFICIAL_PIXEL_DECODER + r"transformer\.encoder\.layers\.(\d+)\.norm2\.(weight|bias)",
        _ENCODER_LAYER + "final_layer_norm.{1}",
    ),
    _rule(_OFFICIAL_PIXEL_DECODER + r"mask_features\.(weight|bias)", PIXEL_DECODER + "mask_projection.{0}"),
    _rule(_OFFICIAL_PIXEL_DECODER + r"(adapter|layer)_(\d+)\.weight", PIXEL_DECODER + "{0}_{1}.0.weight"),
    _rule(_OFFICIAL_PIXEL_DECODER + r"(adapter|layer)_(\d+)\.norm\.(weight|bias)", PIXEL_DECODER + "{0}_{1}.1.{2}"),
)

_PREDICTOR = r"sem_seg_head\.predictor\."

TRANSFORMER_DECODER_RULES = (
    _rule(
        _PREDICTOR + r"transformer_self_attention_layers\.(\d+)\.self_attn\.in_proj_(weight|bias)",
        *(DECODER_LAYERS + f"{{0}}.self_attn.{name}.{{1}}" for name in _QKV),
    ),
    _rule(
        _PREDICTOR + r"transformer_self_attention_layers\.(\d+)\.self_attn\.out_proj\.(weight|bias)",
        DECODER_LAYERS + "{0}.self_attn.out_proj.{1}",
    ),
    _rule(
        _PREDICTOR + r"transformer_self_attention_layers\.(\d+)\.norm\.(weight|bias)",
        DECODER_LAYERS + "{0}.self_attn_layer_norm.{1}",
    ),
    _rule(
        _PREDICTOR + r"transformer_cross_attention_layers\.(\d+)\.multihead_attn\.(in_proj_weight|in_proj_bias)",
        DECODER_LAYERS + "{0}.cross_attn.{1}",
    ),
    _rule(
        _PREDICTOR + r"transformer_cross_attention_layers\.(\d+)\.multihead_attn\.out_proj\.(weight|bias)",
        DECODER_LAYERS + "{0}.cross_attn.out_proj.{1}",
    ),
    _rule(
        _PREDICTOR + r"transformer_cross_attention_layers\.(\d+)\.norm\.(weight|bias)",
        DECODER_LAYERS + "{0}.cross_attn_layer_norm.{1}",
    ),
    _rule(_PREDICTOR + r"transformer_ffn_layers\.(\d+)\.linear1\.(weight|bias)", DECODER_LAYERS + "{0}.fc1.{1}"),
    _rule(_PREDICTOR + r"transformer_ffn_layers\.(\d+)\.linear2\.(weight|bias)", DECODER_LAYERS + "{0}.fc2.{1}"),
    _rule(
        _PREDICTOR + r"transformer_ffn_layers\.(\d+)\.norm\.(weight|bias)", DECODER_LAYERS + "{0}.final_layer_norm.{1}"
    ),
    _rule(_PREDICTOR + r"decoder_norm\.(weight|bias)", TRANSFORMER + "decoder.layernorm.{0}"),
    _rule(_PREDICTOR + r"query_feat\.weight", TRANSFORMER + "queries_features.weight"),
    _rule(_PREDICTOR + r"query_embed\.weight", TRANSFORMER + "queries_embedder.weight"),
    _rule(_PREDICTOR + r"level_embed\.weight", TRANSFORMER + "level_embed.weight"),
    _rule(_PREDICTOR + r"input_proj\.(\d+)\.(weight|bias)", TRANSFORMER + "input_projections.{0}.{1}"),
    _rule(_PREDICTOR + r"class_embed\.(weight|bias)", "class_predictor.{0}"),
    _rule(
        _PREDICTOR + r"mask_embed\.layers\.(\d+)\.(weight|bias)",
        TRANSFORMER + "decoder.mask_predictor.mask_embedder.{0}.0.{1}",
    ),
    _rule(r"criterion\.empty_weight", "criterion.empty_weight"),
)

# Official buffers that transformers recomputes instead of loading: checked against the recomputed value.
CHECKED_BUFFERS = re.compile(r"backbone\.layers\.(\d+)\.blocks\.(\d+)\.attn\.relative_position_index")


def rules_for(backbone_type: str) -> tuple[Rule, ...]:
    """All rules for a model whose backbone is `"resnet"` or `"swin"`."""
    backbone_rules = {"resnet": RESNET_RULES, "swin": SWIN_RULES}[backbone_type]
    return backbone_rules + PIXEL_DECODER_RULES + TRANSFORMER_DECODER_RULES


def map_name(name: str, rules: tuple[Rule, ...]) -> tuple[str, ...] | None:
    """The video-model name(s) of an official name (several = equal dim-0 chunks), or None when unmapped."""
    for rule in rules:
        match = rule.pattern.fullmatch(name)
        if match:
            return rule.targets(match)
    return None


def derived_tensor(name: str, shape: tuple[int, ...], dtype: torch.dtype) -> torch.Tensor | None:
    """The value of a target entry that has no official source, or None when it must come from the checkpoint.

    - `num_batches_tracked` of the (frozen) BatchNorms: 0, as for a freshly built BatchNorm;
    - `swin.layernorm`: transformers' SwinModel final norm, computed but not used by the backbone's feature maps
      (which go through `hidden_states_norms`); identity LayerNorm parameters.
    """
    if name.endswith(".num_batches_tracked"):
        return torch.zeros(shape, dtype=dtype)
    if name == BACKBONE + "swin.layernorm.weight":
        return torch.ones(shape, dtype=dtype)
    if name == BACKBONE + "swin.layernorm.bias":
        return torch.zeros(shape, dtype=dtype)
    return None


def swin_relative_position_index(window_size: int) -> torch.Tensor:
    """The official Swin `relative_position_index` (Wh*Ww, Wh*Ww) of a square window: flat index into the
    bias table of the offset (dy + W - 1) * (2W - 1) + (dx + W - 1) between two window positions."""
    coords = torch.stack(torch.meshgrid(torch.arange(window_size), torch.arange(window_size), indexing="ij")).flatten(
        1
    )
    offsets = coords[:, :, None] - coords[:, None, :] + (window_size - 1)
    return offsets[0] * (2 * window_size - 1) + offsets[1]
