"""detectron2 YAML configs -> `Mask2FormerVideoConfig`.

A config is either fully merged (`cfg.dump()`) or an official file with a `_BASE_` chain; bases are resolved
relative to the file that names them and merged key by key, the child winning. Keys an official file leaves out
take the value of detectron2's `get_cfg()` plus Mask2Former's `add_maskformer2_config` (the `DEFAULTS` table
below lists the ones this converter reads).

Everything that changes the computation is checked: a setting the transformers modules cannot reproduce raises
`ConfigError` instead of silently giving a different model.
"""

import ast
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml
from transformers import ResNetConfig, SwinConfig

from modeling_m2f_video.configuration import DATASET_CATEGORIES, Mask2FormerVideoConfig

from .errors import ConfigError

# Defaults of detectron2's get_cfg() + Mask2Former's add_maskformer2_config / video config, for the keys read here.
DEFAULTS: dict[str, Any] = {
    "MODEL.META_ARCHITECTURE": "GeneralizedRCNN",
    "MODEL.BACKBONE.NAME": "build_resnet_fpn_backbone",
    "MODEL.PIXEL_MEAN": [103.530, 116.280, 123.675],
    "MODEL.PIXEL_STD": [1.0, 1.0, 1.0],
    "MODEL.RESNETS.DEPTH": 50,
    "MODEL.RESNETS.OUT_FEATURES": ["res4"],
    "MODEL.RESNETS.NUM_GROUPS": 1,
    "MODEL.RESNETS.NORM": "FrozenBN",
    "MODEL.RESNETS.WIDTH_PER_GROUP": 64,
    "MODEL.RESNETS.STRIDE_IN_1X1": True,
    "MODEL.RESNETS.RES5_DILATION": 1,
    "MODEL.RESNETS.RES2_OUT_CHANNELS": 256,
    "MODEL.RESNETS.STEM_OUT_CHANNELS": 64,
    "MODEL.RESNETS.DEFORM_ON_PER_STAGE": [False, False, False, False],
    "MODEL.SWIN.PRETRAIN_IMG_SIZE": 224,
    "MODEL.SWIN.PATCH_SIZE": 4,
    "MODEL.SWIN.EMBED_DIM": 96,
    "MODEL.SWIN.DEPTHS": [2, 2, 6, 2],
    "MODEL.SWIN.NUM_HEADS": [3, 6, 12, 24],
    "MODEL.SWIN.WINDOW_SIZE": 7,
    "MODEL.SWIN.MLP_RATIO": 4.0,
    "MODEL.SWIN.QKV_BIAS": True,
    "MODEL.SWIN.QK_SCALE": None,
    "MODEL.SWIN.DROP_RATE": 0.0,
    "MODEL.SWIN.ATTN_DROP_RATE": 0.0,
    "MODEL.SWIN.DROP_PATH_RATE": 0.3,
    "MODEL.SWIN.APE": False,
    "MODEL.SWIN.PATCH_NORM": True,
    "MODEL.SWIN.OUT_FEATURES": ["res2", "res3", "res4", "res5"],
    "MODEL.SEM_SEG_HEAD.NAME": "SemSegFPNHead",
    "MODEL.SEM_SEG_HEAD.IN_FEATURES": ["p2", "p3", "p4", "p5"],
    "MODEL.SEM_SEG_HEAD.IGNORE_VALUE": 255,
    "MODEL.SEM_SEG_HEAD.NUM_CLASSES": 54,
    "MODEL.SEM_SEG_HEAD.CONVS_DIM": 128,
    "MODEL.SEM_SEG_HEAD.COMMON_STRIDE": 4,
    "MODEL.SEM_SEG_HEAD.NORM": "GN",
    "MODEL.SEM_SEG_HEAD.MASK_DIM": 256,
    "MODEL.SEM_SEG_HEAD.TRANSFORMER_ENC_LAYERS": 0,
    "MODEL.SEM_SEG_HEAD.PIXEL_DECODER_NAME": "BasePixelDecoder",
    "MODEL.SEM_SEG_HEAD.DEFORMABLE_TRANSFORMER_ENCODER_IN_FEATURES": ["res3", "res4", "res5"],
    "MODEL.MASK_FORMER.DEEP_SUPERVISION": True,
    "MODEL.MASK_FORMER.NO_OBJECT_WEIGHT": 0.1,
    "MODEL.MASK_FORMER.CLASS_WEIGHT": 1.0,
    "MODEL.MASK_FORMER.DICE_WEIGHT": 1.0,
    "MODEL.MASK_FORMER.MASK_WEIGHT": 20.0,
    "MODEL.MASK_FORMER.NHEADS": 8,
    "MODEL.MASK_FORMER.DROPOUT": 0.1,
    "MODEL.MASK_FORMER.DIM_FEEDFORWARD": 2048,
    "MODEL.MASK_FORMER.DEC_LAYERS": 6,
    "MODEL.MASK_FORMER.PRE_NORM": False,
    "MODEL.MASK_FORMER.HIDDEN_DIM": 256,
    "MODEL.MASK_FORMER.NUM_OBJECT_QUERIES": 100,
    "MODEL.MASK_FORMER.TRANSFORMER_IN_FEATURE": "res5",
    "MODEL.MASK_FORMER.ENFORCE_INPUT_PROJ": False,
    "MODEL.MASK_FORMER.SIZE_DIVISIBILITY": 32,
    "MODEL.MASK_FORMER.TRANSFORMER_DECODER_NAME": "MultiScaleMaskedTransformerDecoder",
    "MODEL.MASK_FORMER.TRAIN_NUM_POINTS": 112 * 112,
    "MODEL.MASK_FORMER.OVERSAMPLE_RATIO": 3.0,
    "MODEL.MASK_FORMER.IMPORTANCE_SAMPLE_RATIO": 0.75,
    "INPUT.FORMAT": "BGR",
    "INPUT.MIN_SIZE_TEST": 800,
    "INPUT.MAX_SIZE_TEST": 1333,
    "INPUT.SAMPLING_FRAME_NUM": 2,
}

STAGE_NAMES = {"res2": "stage1", "res3": "stage2", "res4": "stage3", "res5": "stage4"}
RESNET_DEPTHS = {18: [2, 2, 2, 2], 34: [3, 4, 6, 3], 50: [3, 4, 6, 3], 101: [3, 4, 23, 3], 152: [3, 8, 36, 3]}
BATCH_NORMS = ("FrozenBN", "BN", "SyncBN", "nnSyncBN", "naiveSyncBN")


def load_yaml_config(path: str | Path) -> dict[str, Any]:
    """Read a detectron2 YAML with `yaml.safe_load`, resolving its `_BASE_` chain (relative to each file)."""
    return _load_with_bases(Path(path).expanduser().resolve(), chain=())


def _load_with_bases(path: Path, chain: tuple[Path, ...]) -> dict[str, Any]:
    if path in chain:
        raise ConfigError(f"_BASE_ cycle: {' -> '.join(str(p) for p in (*chain, path))}")
    if not path.is_file():
        where = f" (named as _BASE_ in {chain[-1]})" if chain else ""
        raise ConfigError(f"config file not found: {path}{where}")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as error:
        raise ConfigError(f"{path}: not valid YAML: {error}") from error
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: a detectron2 config must be a mapping, found {type(data).__name__}")
    base = data.pop("_BASE_", None)
    if base is None:
        return data
    base_path = Path(str(base)).expanduser()
    if not base_path.is_absolute():
        base_path = path.parent / base_path
    return _merge(_load_with_bases(base_path.resolve(), (*chain, path)), data)


def _merge(base: dict[str, Any], override: Mapping[str, Any]) -> dict[str, Any]:
    """`override` on top of `base`, recursively for nested mappings (detectron2's merge rule)."""
    merged = dict(base)
    for key, value in override.items():
        if isinstance(value, Mapping) and isinstance(merged.get(key), Mapping):
            merged[key] = _merge(merged[key], value)
        else:
            merged[key] = value
    return merged


class Detectron2Config:
    """Dotted-key access to a merged detectron2 config, falling back to `DEFAULTS`."""

    def __init__(self, data: Mapping[str, Any]):
        self.data = data

    def __getitem__(self, dotted: str) -> Any:
        node: Any = self.data
        for part in dotted.split("."):
            if not isinstance(node, Mapping) or part not in node:
                if dotted not in DEFAULTS:
                    raise ConfigError(f"the config has no {dotted} and there is no default for it")
                return DEFAULTS[dotted]
            node = node[part]
        return _literal(node)


def _literal(value: Any) -> Any:
    """detectron2 YAMLs write tuples as strings, e.g. `MIN_SIZE_TRAIN: (360, 480)`; read those as lists."""
    if isinstance(value, str) and value[:1] in "([" and value[-1:] in ")]":
        try:
            parsed = ast.literal_eval(value)
        except (ValueError, SyntaxError):
            return value
        return list(parsed) if isinstance(parsed, tuple | list) else parsed
    return value


def _require(condition: bool, message: str) -> None:
    if not condition:
        raise ConfigError(message)


def _out_features(cfg: Detectron2Config, key: str) -> list[str]:
    names = list(cfg[key])
    needed = ["res2", "res3", "res4", "res5"]
    _require(all(name in names for name in needed), f"{key} must contain {needed}, found {names}")
    return [STAGE_NAMES[name] for name in needed]


def resnet_backbone_config(cfg: Detectron2Config) -> tuple[ResNetConfig, bool]:
    """transformers ResNetConfig of detectron2's `build_resnet_backbone`, and whether its norm is FrozenBN."""
    depth = int(cfg["MODEL.RESNETS.DEPTH"])
    _require(depth in RESNET_DEPTHS, f"MODEL.RESNETS.DEPTH must be one of {sorted(RESNET_DEPTHS)}, found {depth}")
    bottleneck = depth >= 50
    res2_channels = int(cfg["MODEL.RESNETS.RES2_OUT_CHANNELS"])
    norm = cfg["MODEL.RESNETS.NORM"]
    _require(norm in BATCH_NORMS, f"MODEL.RESNETS.NORM {norm!r} is not supported (only batch norms: {BATCH_NORMS})")
    _require(int(cfg["MODEL.RESNETS.NUM_GROUPS"]) == 1, "MODEL.RESNETS.NUM_GROUPS must be 1 (no ResNeXt)")
    _require(int(cfg["MODEL.RESNETS.RES5_DILATION"]) == 1, "MODEL.RESNETS.RES5_DILATION must be 1")
    _require(not any(cfg["MODEL.RESNETS.DEFORM_ON_PER_STAGE"]), "deformable convolutions are not supported")
    if bottleneck:
        width = int(cfg["MODEL.RESNETS.WIDTH_PER_GROUP"])
        _require(
            width * 4 == res2_channels,
            f"MODEL.RESNETS.WIDTH_PER_GROUP ({width}) must be RES2_OUT_CHANNELS / 4 ({res2_channels / 4:g}): "
            "transformers' bottleneck reduces the channels by exactly 4",
        )
        _require(
            cfg["MODEL.RESNETS.STRIDE_IN_1X1"] is False,
            "MODEL.RESNETS.STRIDE_IN_1X1 must be False: the converted ResNet puts the stride on the 3x3 conv",
        )
    else:
        _require(res2_channels == 64, "MODEL.RESNETS.RES2_OUT_CHANNELS must be 64 for ResNet-18/34")
    config = ResNetConfig(
        embedding_size=int(cfg["MODEL.RESNETS.STEM_OUT_CHANNELS"]),
        hidden_sizes=[res2_channels * 2**stage for stage in range(4)],
        depths=RESNET_DEPTHS[depth],
        layer_type="bottleneck" if bottleneck else "basic",
        hidden_act="relu",
        downsample_in_first_stage=False,
        downsample_in_bottleneck=False,
        out_features=_out_features(cfg, "MODEL.RESNETS.OUT_FEATURES"),
    )
    return config, norm == "FrozenBN"


def swin_backbone_config(cfg: Detectron2Config) -> SwinConfig:
    """transformers SwinConfig of Mask2Former's `D2SwinTransformer`."""
    _require(cfg["MODEL.SWIN.QK_SCALE"] is None, "MODEL.SWIN.QK_SCALE must be null (scale = head_dim ** -0.5)")
    _require(cfg["MODEL.SWIN.PATCH_NORM"] is True, "MODEL.SWIN.PATCH_NORM must be True")
    _require(
        cfg["MODEL.SWIN.APE"] is False,
        "MODEL.SWIN.APE=True is not supported: transformers' Swin backbone does not resize absolute position "
        "embeddings to the input the way the official backbone does",
    )
    depths = [int(depth) for depth in cfg["MODEL.SWIN.DEPTHS"]]
    heads = [int(head) for head in cfg["MODEL.SWIN.NUM_HEADS"]]
    _require(len(depths) == 4 and len(heads) == 4, "MODEL.SWIN.DEPTHS and NUM_HEADS must have 4 stages")
    return SwinConfig(
        image_size=int(cfg["MODEL.SWIN.PRETRAIN_IMG_SIZE"]),
        patch_size=int(cfg["MODEL.SWIN.PATCH_SIZE"]),
        embed_dim=int(cfg["MODEL.SWIN.EMBED_DIM"]),
        depths=depths,
        num_heads=heads,
        window_size=int(cfg["MODEL.SWIN.WINDOW_SIZE"]),
        mlp_ratio=float(cfg["MODEL.SWIN.MLP_RATIO"]),
        qkv_bias=bool(cfg["MODEL.SWIN.QKV_BIAS"]),
        hidden_dropout_prob=float(cfg["MODEL.SWIN.DROP_RATE"]),
        attention_probs_dropout_prob=float(cfg["MODEL.SWIN.ATTN_DROP_RATE"]),
        drop_path_rate=float(cfg["MODEL.SWIN.DROP_PATH_RATE"]),
        use_absolute_embeddings=False,
        hidden_act="gelu",
        layer_norm_eps=1e-5,
        out_features=_out_features(cfg, "MODEL.SWIN.OUT_FEATURES"),
    )


def _check_head(cfg: Detectron2Config) -> None:
    """The head must be the MSDeformAttn pixel decoder + multi-scale masked decoder that transformers implements."""
    expected = {
        "MODEL.SEM_SEG_HEAD.NAME": ("MaskFormerHead",),
        "MODEL.SEM_SEG_HEAD.PIXEL_DECODER_NAME": ("MSDeformAttnPixelDecoder",),
        "MODEL.SEM_SEG_HEAD.NORM": ("GN",),
        "MODEL.MASK_FORMER.TRANSFORMER_DECODER_NAME": (
            "VideoMultiScaleMaskedTransformerDecoder",
            "MultiScaleMaskedTransformerDecoder",
        ),
        "MODEL.MASK_FORMER.TRANSFORMER_IN_FEATURE": ("multi_scale_pixel_decoder",),
    }
    for key, allowed in expected.items():
        _require(cfg[key] in allowed, f"{key} must be one of {list(allowed)}, found {cfg[key]!r}")
    in_features = list(cfg["MODEL.SEM_SEG_HEAD.IN_FEATURES"])
    _require(
        in_features == ["res2", "res3", "res4", "res5"], f"SEM_SEG_HEAD.IN_FEATURES must be res2..res5: {in_features}"
    )
    encoder_features = list(cfg["MODEL.SEM_SEG_HEAD.DEFORMABLE_TRANSFORMER_ENCODER_IN_FEATURES"])
    _require(
        encoder_features == ["res3", "res4", "res5"],
        f"DEFORMABLE_TRANSFORMER_ENCODER_IN_FEATURES must be res3..res5, found {encoder_features}",
    )
    _require(
        cfg["INPUT.FORMAT"] == "RGB",
        f"INPUT.FORMAT must be RGB (the processor feeds RGB), found {cfg['INPUT.FORMAT']!r}",
    )


def dataset_labels(dataset: str | None, num_classes: int) -> dict[int, str]:
    """id2label of a YouTube-VIS dataset, or generic names when no dataset is given."""
    if dataset is None:
        return {index: f"LABEL_{index}" for index in range(num_classes)}
    if dataset not in DATASET_CATEGORIES:
        raise ConfigError(f"unknown dataset {dataset!r}; choose one of {sorted(DATASET_CATEGORIES)}")
    categories = DATASET_CATEGORIES[dataset]
    _require(
        len(categories) == num_classes,
        f"{dataset} has {len(categories)} categories but the config has NUM_CLASSES={num_classes}",
    )
    return dict(enumerate(categories))


def video_config_from_detectron2(data: Mapping[str, Any], dataset: str | None = None) -> Mask2FormerVideoConfig:
    """The `Mask2FormerVideoConfig` of a merged detectron2 config (see `load_yaml_config`)."""
    cfg = Detectron2Config(data)
    _check_head(cfg)
    backbone_name = cfg["MODEL.BACKBONE.NAME"]
    frozen_batch_norm = True
    if backbone_name == "build_resnet_backbone":
        backbone_config, frozen_batch_norm = resnet_backbone_config(cfg)
    elif backbone_name == "D2SwinTransformer":
        backbone_config = swin_backbone_config(cfg)
    else:
        raise ConfigError(
            f"MODEL.BACKBONE.NAME {backbone_name!r} is not supported (build_resnet_backbone, D2SwinTransformer)"
        )
    id2label = dataset_labels(dataset, int(cfg["MODEL.SEM_SEG_HEAD.NUM_CLASSES"]))
    return Mask2FormerVideoConfig(
        backbone_config=backbone_config,
        feature_size=int(cfg["MODEL.SEM_SEG_HEAD.CONVS_DIM"]),
        mask_feature_size=int(cfg["MODEL.SEM_SEG_HEAD.MASK_DIM"]),
        hidden_dim=int(cfg["MODEL.MASK_FORMER.HIDDEN_DIM"]),
        encoder_feedforward_dim=1024,  # hard-coded in the official MSDeformAttnPixelDecoder
        encoder_layers=int(cfg["MODEL.SEM_SEG_HEAD.TRANSFORMER_ENC_LAYERS"]),
        decoder_layers=int(cfg["MODEL.MASK_FORMER.DEC_LAYERS"]),
        num_attention_heads=int(cfg["MODEL.MASK_FORMER.NHEADS"]),
        dim_feedforward=int(cfg["MODEL.MASK_FORMER.DIM_FEEDFORWARD"]),
        dropout=float(cfg["MODEL.MASK_FORMER.DROPOUT"]),
        pre_norm=bool(cfg["MODEL.MASK_FORMER.PRE_NORM"]),
        enforce_input_projection=bool(cfg["MODEL.MASK_FORMER.ENFORCE_INPUT_PROJ"]),
        common_stride=int(cfg["MODEL.SEM_SEG_HEAD.COMMON_STRIDE"]),
        ignore_value=int(cfg["MODEL.SEM_SEG_HEAD.IGNORE_VALUE"]),
        num_queries=int(cfg["MODEL.MASK_FORMER.NUM_OBJECT_QUERIES"]),
        no_object_weight=float(cfg["MODEL.MASK_FORMER.NO_OBJECT_WEIGHT"]),
        class_weight=float(cfg["MODEL.MASK_FORMER.CLASS_WEIGHT"]),
        mask_weight=float(cfg["MODEL.MASK_FORMER.MASK_WEIGHT"]),
        dice_weight=float(cfg["MODEL.MASK_FORMER.DICE_WEIGHT"]),
        train_num_points=int(cfg["MODEL.MASK_FORMER.TRAIN_NUM_POINTS"]),
        oversample_ratio=float(cfg["MODEL.MASK_FORMER.OVERSAMPLE_RATIO"]),
        importance_sample_ratio=float(cfg["MODEL.MASK_FORMER.IMPORTANCE_SAMPLE_RATIO"]),
        use_auxiliary_loss=bool(cfg["MODEL.MASK_FORMER.DEEP_SUPERVISION"]),
        feature_strides=[4, 8, 16, 32],
        id2label=id2label,
        label2id={label: index for index, label in id2label.items()},
        num_frames=int(cfg["INPUT.SAMPLING_FRAME_NUM"]),
        test_shortest_edge=int(cfg["INPUT.MIN_SIZE_TEST"]),
        backbone_frozen_batch_norm=frozen_batch_norm,
        swin_pad_small_windows=backbone_name == "D2SwinTransformer",
    )


def processor_settings(data: Mapping[str, Any]) -> dict[str, Any]:
    """Test-time preprocessing of a detectron2 config: shortest/longest side, mean/std (0..255), divisibility."""
    cfg = Detectron2Config(data)
    return {
        "shortest_edge": int(cfg["INPUT.MIN_SIZE_TEST"]),
        "longest_edge": int(cfg["INPUT.MAX_SIZE_TEST"]),
        "pixel_mean": [float(value) for value in cfg["MODEL.PIXEL_MEAN"]],
        "pixel_std": [float(value) for value in cfg["MODEL.PIXEL_STD"]],
        "size_divisibility": int(cfg["MODEL.MASK_FORMER.SIZE_DIVISIBILITY"]),
    }
