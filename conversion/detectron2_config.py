"""detectron2 YAML configs -> `Mask2FormerVideoConfig`.

A config is either fully merged (`cfg.dump()`) or an official file with a `_BASE_` chain; bases are resolved
relative to the file that names them and merged key by key, the child winning. Keys an official file leaves out
take the value of detectron2's `get_cfg()` plus Mask2Former's `add_maskformer2_config` (the `DEFAULTS` table
below lists the ones this converter reads).

Everything that changes the computation is checked: a setting the transformers modules cannot reproduce raises
`ConfigError` instead of silently giving a different model.
"""

import ast
import math
import reprlib
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
        raise ConfigError(f"{chain[0]}: _BASE_ cycle: {' -> '.join(str(p) for p in (*chain, path))}")
    if not path.is_file():
        where = f" (named as _BASE_ in {chain[-1]})" if chain else ""
        raise ConfigError(f"{path}: config file not found{where}")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except UnicodeDecodeError as error:
        raise ConfigError(f"{path}: not a text file (not UTF-8 at byte {error.start})") from None
    except yaml.YAMLError as error:
        raise ConfigError(f"{path}: not valid YAML: {_yaml_problem(error)}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: a detectron2 config must be a mapping, found {type(data).__name__}")
    base = data.pop("_BASE_", None)
    if base is None:
        return data
    if not isinstance(base, str):
        raise ConfigError(f"{path}: _BASE_ must be a file name, found {type(base).__name__}")
    base_path = Path(base).expanduser()
    if not base_path.is_absolute():
        base_path = path.parent / base_path
    return _merge(_load_with_bases(base_path.resolve(), (*chain, path)), data)


def _yaml_problem(error: yaml.YAMLError) -> str:
    """A YAML error in one line: what is wrong and where (PyYAML's own message spans several lines)."""
    mark = getattr(error, "problem_mark", None)
    problem = getattr(error, "problem", None) or str(error)
    where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark is not None else ""
    return where + " ".join(problem.split())


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
    """Dotted-key access to a merged detectron2 config, falling back to `DEFAULTS`.

    The typed getters (`get_int`, `get_float`, `get_bool`, `get_str`, `get_list`) check the value's type as
    detectron2's own config does (yacs refuses a value whose type differs from the default), so that a value such
    as `NUM_CLASSES: abc` is a `ConfigError` naming the key, not a traceback or a silently different model.
    """

    def __init__(self, data: Mapping[str, Any]):
        self.data = data

    def __getitem__(self, dotted: str) -> Any:
        node: Any = self.data
        parts = dotted.split(".")
        for depth, part in enumerate(parts):
            if not isinstance(node, Mapping):
                parent = ".".join(parts[:depth])
                raise ConfigError(f"{parent} must be a mapping of keys, found {_shown(node)}")
            if part not in node:
                if dotted not in DEFAULTS:
                    raise ConfigError(f"the config has no {dotted} and there is no default for it")
                return DEFAULTS[dotted]
            node = node[part]
        return _literal(node)

    def get_int(self, dotted: str, minimum: int | None = None) -> int:
        """An integer (not a bool), at least `minimum` when given."""
        value = self[dotted]
        _require(_is_int(value), f"{dotted} must be an integer, found {_shown(value)}")
        _require(minimum is None or value >= minimum, f"{dotted} must be at least {minimum}, found {value}")
        return value

    def get_float(self, dotted: str) -> float:
        """A finite number (an integer is accepted, as YAML writes `1` for `1.0`)."""
        value = self[dotted]
        _require(_is_number(value) and math.isfinite(value), f"{dotted} must be a number, found {_shown(value)}")
        return float(value)

    def get_bool(self, dotted: str) -> bool:
        value = self[dotted]
        _require(isinstance(value, bool), f"{dotted} must be true or false, found {_shown(value)}")
        return value

    def get_str(self, dotted: str) -> str:
        value = self[dotted]
        _require(isinstance(value, str), f"{dotted} must be a string, found {_shown(value)}")
        return value

    def get_list(self, dotted: str, item: type) -> list[Any]:
        """A list (or a tuple written as a string, `(1, 2)`) whose items are all of type `item` (int, float, bool or
        str; ints count as floats)."""
        values = self[dotted]
        checks = {int: _is_int, float: _is_number, bool: lambda value: isinstance(value, bool)}
        check = checks.get(item, lambda value: isinstance(value, item))
        _require(
            isinstance(values, list) and all(check(value) for value in values),
            f"{dotted} must be a list of {item.__name__} values, found {_shown(values)}",
        )
        return [float(value) for value in values] if item is float else list(values)


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _shown(value: Any) -> str:
    """A config value for an error message, cut short when long."""
    return reprlib.repr(value)


def _literal(value: Any) -> Any:
    """detectron2 YAMLs write tuples as strings, e.g. `MIN_SIZE_TRAIN: (360, 480)`; read those as lists."""
    if isinstance(value, str) and value[:1] in "([" and value[-1:] in ")]":
        try:
            parsed = ast.literal_eval(value)
        except (ValueError, SyntaxError, MemoryError, RecursionError):
            return value
        return list(parsed) if isinstance(parsed, tuple | list) else parsed
    return value


def _require(condition: bool, message: str) -> None:
    if not condition:
        raise ConfigError(message)


def _out_features(cfg: Detectron2Config, key: str) -> list[str]:
    names = cfg.get_list(key, str)
    needed = ["res2", "res3", "res4", "res5"]
    _require(all(name in names for name in needed), f"{key} must contain {needed}, found {names}")
    return [STAGE_NAMES[name] for name in needed]


def resnet_backbone_config(cfg: Detectron2Config) -> tuple[ResNetConfig, bool]:
    """transformers ResNetConfig of detectron2's `build_resnet_backbone`, and whether its norm is FrozenBN."""
    depth = cfg.get_int("MODEL.RESNETS.DEPTH")
    _require(depth in RESNET_DEPTHS, f"MODEL.RESNETS.DEPTH must be one of {sorted(RESNET_DEPTHS)}, found {depth}")
    bottleneck = depth >= 50
    res2_channels = cfg.get_int("MODEL.RESNETS.RES2_OUT_CHANNELS", minimum=1)
    norm = cfg.get_str("MODEL.RESNETS.NORM")
    _require(norm in BATCH_NORMS, f"MODEL.RESNETS.NORM {norm!r} is not supported (only batch norms: {BATCH_NORMS})")
    _require(cfg.get_int("MODEL.RESNETS.NUM_GROUPS") == 1, "MODEL.RESNETS.NUM_GROUPS must be 1 (no ResNeXt)")
    _require(cfg.get_int("MODEL.RESNETS.RES5_DILATION") == 1, "MODEL.RESNETS.RES5_DILATION must be 1")
    deformable = cfg.get_list("MODEL.RESNETS.DEFORM_ON_PER_STAGE", bool)
    _require(not any(deformable), "deformable convolutions are not supported")
    if bottleneck:
        width = cfg.get_int("MODEL.RESNETS.WIDTH_PER_GROUP")
        _require(
            width * 4 == res2_channels,
            f"MODEL.RESNETS.WIDTH_PER_GROUP ({width}) must be RES2_OUT_CHANNELS / 4 ({res2_channels / 4:g}): "
            "transformers' bottleneck reduces the channels by exactly 4",
        )
        _require(
            cfg.get_bool("MODEL.RESNETS.STRIDE_IN_1X1") is False,
            "MODEL.RESNETS.STRIDE_IN_1X1 must be False: the converted ResNet puts the stride on the 3x3 conv",
        )
    else:
        _require(res2_channels == 64, "MODEL.RESNETS.RES2_OUT_CHANNELS must be 64 for ResNet-18/34")
    config = ResNetConfig(
        embedding_size=cfg.get_int("MODEL.RESNETS.STEM_OUT_CHANNELS", minimum=1),
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
    _require(cfg.get_bool("MODEL.SWIN.PATCH_NORM") is True, "MODEL.SWIN.PATCH_NORM must be True")
    _require(
        cfg.get_bool("MODEL.SWIN.APE") is False,
        "MODEL.SWIN.APE=True is not supported: transformers' Swin backbone does not resize absolute position "
        "embeddings to the input the way the official backbone does",
    )
    depths = cfg.get_list("MODEL.SWIN.DEPTHS", int)
    heads = cfg.get_list("MODEL.SWIN.NUM_HEADS", int)
    _require(len(depths) == 4 and len(heads) == 4, "MODEL.SWIN.DEPTHS and NUM_HEADS must have 4 stages")
    _require(min(depths) >= 1 and min(heads) >= 1, "MODEL.SWIN.DEPTHS and NUM_HEADS must be at least 1")
    embed_dim = cfg.get_int("MODEL.SWIN.EMBED_DIM", minimum=1)
    for stage, count in enumerate(heads):
        _require(
            (embed_dim * 2**stage) % count == 0,
            f"MODEL.SWIN.NUM_HEADS[{stage}] ({count}) must divide the stage width EMBED_DIM * {2**stage}",
        )
    return SwinConfig(
        image_size=cfg.get_int("MODEL.SWIN.PRETRAIN_IMG_SIZE", minimum=1),
        patch_size=cfg.get_int("MODEL.SWIN.PATCH_SIZE", minimum=1),
        embed_dim=embed_dim,
        depths=depths,
        num_heads=heads,
        window_size=cfg.get_int("MODEL.SWIN.WINDOW_SIZE", minimum=1),
        mlp_ratio=cfg.get_float("MODEL.SWIN.MLP_RATIO"),
        qkv_bias=cfg.get_bool("MODEL.SWIN.QKV_BIAS"),
        hidden_dropout_prob=cfg.get_float("MODEL.SWIN.DROP_RATE"),
        attention_probs_dropout_prob=cfg.get_float("MODEL.SWIN.ATTN_DROP_RATE"),
        drop_path_rate=cfg.get_float("MODEL.SWIN.DROP_PATH_RATE"),
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
        value = cfg.get_str(key)
        _require(value in allowed, f"{key} must be one of {list(allowed)}, found {value!r}")
    in_features = cfg.get_list("MODEL.SEM_SEG_HEAD.IN_FEATURES", str)
    _require(
        in_features == ["res2", "res3", "res4", "res5"], f"SEM_SEG_HEAD.IN_FEATURES must be res2..res5: {in_features}"
    )
    encoder_features = cfg.get_list("MODEL.SEM_SEG_HEAD.DEFORMABLE_TRANSFORMER_ENCODER_IN_FEATURES", str)
    _require(
        encoder_features == ["res3", "res4", "res5"],
        f"DEFORMABLE_TRANSFORMER_ENCODER_IN_FEATURES must be res3..res5, found {encoder_features}",
    )
    input_format = cfg.get_str("INPUT.FORMAT")
    _require(input_format == "RGB", f"INPUT.FORMAT must be RGB (the processor feeds RGB), found {input_format!r}")
    hidden_dim = cfg.get_int("MODEL.MASK_FORMER.HIDDEN_DIM", minimum=1)
    heads = cfg.get_int("MODEL.MASK_FORMER.NHEADS", minimum=1)
    _require(hidden_dim % heads == 0, f"MODEL.MASK_FORMER.NHEADS ({heads}) must divide HIDDEN_DIM ({hidden_dim})")


def dataset_labels(dataset: str | None, num_classes: int) -> dict[int, str]:
    """id2label of a YouTube-VIS dataset, or generic names when no dataset is given."""
    if dataset is None:
        return {index: f"LABEL_{index}" for index in range(num_classes)}
    if dataset not in DATASET_CATEGORIES:
        raise ConfigError(f"unknown dataset {dataset!r}; choose one of {sorted(DATASET_CATEGORIES)}")
    categories = DATASET_CATEGORIES[dataset]
    _require(
        len(categories) == num_classes,
        f"MODEL.SEM_SEG_HEAD.NUM_CLASSES is {num_classes}, but {dataset} has {len(categories)} categories",
    )
    return dict(enumerate(categories))


def video_config_from_detectron2(data: Mapping[str, Any], dataset: str | None = None) -> Mask2FormerVideoConfig:
    """The `Mask2FormerVideoConfig` of a merged detectron2 config (see `load_yaml_config`)."""
    cfg = Detectron2Config(data)
    _check_head(cfg)
    backbone_name = cfg.get_str("MODEL.BACKBONE.NAME")
    frozen_batch_norm = True
    if backbone_name == "build_resnet_backbone":
        backbone_config, frozen_batch_norm = resnet_backbone_config(cfg)
    elif backbone_name == "D2SwinTransformer":
        backbone_config = swin_backbone_config(cfg)
    else:
        raise ConfigError(
            f"MODEL.BACKBONE.NAME {backbone_name!r} is not supported (build_resnet_backbone, D2SwinTransformer)"
        )
    id2label = dataset_labels(dataset, cfg.get_int("MODEL.SEM_SEG_HEAD.NUM_CLASSES", minimum=1))
    return Mask2FormerVideoConfig(
        backbone_config=backbone_config,
        feature_size=cfg.get_int("MODEL.SEM_SEG_HEAD.CONVS_DIM", minimum=1),
        mask_feature_size=cfg.get_int("MODEL.SEM_SEG_HEAD.MASK_DIM", minimum=1),
        hidden_dim=cfg.get_int("MODEL.MASK_FORMER.HIDDEN_DIM", minimum=1),
        encoder_feedforward_dim=1024,  # hard-coded in the official MSDeformAttnPixelDecoder
        encoder_layers=cfg.get_int("MODEL.SEM_SEG_HEAD.TRANSFORMER_ENC_LAYERS", minimum=0),
        decoder_layers=cfg.get_int("MODEL.MASK_FORMER.DEC_LAYERS", minimum=1),
        num_attention_heads=cfg.get_int("MODEL.MASK_FORMER.NHEADS", minimum=1),
        dim_feedforward=cfg.get_int("MODEL.MASK_FORMER.DIM_FEEDFORWARD", minimum=1),
        dropout=cfg.get_float("MODEL.MASK_FORMER.DROPOUT"),
        pre_norm=cfg.get_bool("MODEL.MASK_FORMER.PRE_NORM"),
        enforce_input_projection=cfg.get_bool("MODEL.MASK_FORMER.ENFORCE_INPUT_PROJ"),
        common_stride=cfg.get_int("MODEL.SEM_SEG_HEAD.COMMON_STRIDE", minimum=1),
        ignore_value=cfg.get_int("MODEL.SEM_SEG_HEAD.IGNORE_VALUE"),
        num_queries=cfg.get_int("MODEL.MASK_FORMER.NUM_OBJECT_QUERIES", minimum=1),
        no_object_weight=cfg.get_float("MODEL.MASK_FORMER.NO_OBJECT_WEIGHT"),
        class_weight=cfg.get_float("MODEL.MASK_FORMER.CLASS_WEIGHT"),
        mask_weight=cfg.get_float("MODEL.MASK_FORMER.MASK_WEIGHT"),
        dice_weight=cfg.get_float("MODEL.MASK_FORMER.DICE_WEIGHT"),
        train_num_points=cfg.get_int("MODEL.MASK_FORMER.TRAIN_NUM_POINTS", minimum=1),
        oversample_ratio=cfg.get_float("MODEL.MASK_FORMER.OVERSAMPLE_RATIO"),
        importance_sample_ratio=cfg.get_float("MODEL.MASK_FORMER.IMPORTANCE_SAMPLE_RATIO"),
        use_auxiliary_loss=cfg.get_bool("MODEL.MASK_FORMER.DEEP_SUPERVISION"),
        feature_strides=[4, 8, 16, 32],
        id2label=id2label,
        label2id={label: index for index, label in id2label.items()},
        num_frames=cfg.get_int("INPUT.SAMPLING_FRAME_NUM", minimum=1),
        test_shortest_edge=cfg.get_int("INPUT.MIN_SIZE_TEST", minimum=1),
        backbone_frozen_batch_norm=frozen_batch_norm,
        swin_pad_small_windows=backbone_name == "D2SwinTransformer",
    )


def processor_settings(data: Mapping[str, Any]) -> dict[str, Any]:
    """Test-time preprocessing of a detectron2 config: shortest/longest side, mean/std (0..255), divisibility."""
    cfg = Detectron2Config(data)
    pixel_mean = cfg.get_list("MODEL.PIXEL_MEAN", float)
    pixel_std = cfg.get_list("MODEL.PIXEL_STD", float)
    _require(len(pixel_mean) == 3, f"MODEL.PIXEL_MEAN must have 3 values (RGB), found {len(pixel_mean)}")
    _require(len(pixel_std) == 3 and min(pixel_std) > 0, f"MODEL.PIXEL_STD must be 3 positive values: {pixel_std}")
    return {
        "shortest_edge": cfg.get_int("INPUT.MIN_SIZE_TEST", minimum=1),
        "longest_edge": cfg.get_int("INPUT.MAX_SIZE_TEST", minimum=1),
        "pixel_mean": pixel_mean,
        "pixel_std": pixel_std,
        "size_divisibility": cfg.get_int("MODEL.MASK_FORMER.SIZE_DIVISIBILITY", minimum=0),
    }
