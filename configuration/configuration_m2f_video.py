"""Configuration of the video Mask2Former.

`Mask2FormerVideoConfig` is transformers' `Mask2FormerConfig` plus what video adds. Every image
field keeps its meaning, so an image Mask2Former config (and checkpoint) is a valid video one.
"""

from typing import Any

from transformers import Mask2FormerConfig, ResNetConfig, SwinConfig

from .presets import BACKBONES, DATASET_CATEGORIES, PRESETS

STAGES = ["stage1", "stage2", "stage3", "stage4"]
# Keys of a saved config that describe the file rather than the architecture.
_NON_ARCHITECTURE_KEYS = ("model_type", "architectures", "transformers_version", "_name_or_path")
# The decoder of `Mask2FormerVideoConfig.tiny`.
TINY_DECODER = {
    "feature_size": 32,
    "mask_feature_size": 32,
    "hidden_dim": 32,
    "encoder_layers": 1,
    "encoder_feedforward_dim": 32,
    "decoder_layers": 4,
    "num_attention_heads": 2,
    "dim_feedforward": 32,
    "num_queries": 6,
    "train_num_points": 64,
}


class Mask2FormerVideoConfig(Mask2FormerConfig):
    r"""
    Configuration of [`Mask2FormerVideoModel`] and [`Mask2FormerVideoForVideoInstanceSegmentation`].

    Args (on top of [`Mask2FormerConfig`]):
        num_frames (`int`, defaults to 2):
            Clip length used in training (the paper samples 2 frames per clip). Inference takes any length.
        test_top_k (`int`, defaults to 10):
            Number of (query, class) pairs kept per video by post-processing.
        test_shortest_edge (`int`, defaults to 360):
            Shortest frame side at test time (official `INPUT.MIN_SIZE_TEST`: 360 for ResNet, 480 for Swin).
            A processor made for this config resizes to it.
        frame_chunk_size (`int`, *optional*):
            Run the backbone and pixel decoder on at most this many frames at a time. The outputs are
            identical to the unchunked run; only the speed and peak memory of that part change. `None` (the
            default) picks, at inference (no autograd), the fastest setting for the device the model runs on,
            `modeling_m2f_video.modeling_m2f_video.DEFAULT_FRAME_CHUNK_SIZE`: one frame at a time on the CPU, all
            frames at once on a GPU; with autograd on, all frames at once.
        backbone_frozen_batch_norm (`bool`, defaults to `True`):
            Replace the BatchNorm layers of a ResNet backbone by frozen ones (fixed statistics and affine
            parameters), as detectron2's `FrozenBN` does. The state-dict keys do not change.
        swin_pad_small_windows (`bool`, defaults to `False`):
            Swin backbones only. `True` pins the official Mask2Former Swin behaviour on feature maps smaller than the
            window: pad them and keep the full window and shift. transformers 5.x' `SwinBackbone` already does this
            on its own call path (it partitions with `always_partition=True`); the flag makes every call path of the
            layers behave so, whatever the transformers version. Converted official checkpoints set it to `True`.
    """

    model_type = "mask2former_video"
    backbones_supported = ["swin", "resnet"]

    num_frames: int = 2
    test_top_k: int = 10
    test_shortest_edge: int = 360
    frame_chunk_size: int | None = None
    backbone_frozen_batch_norm: bool = True
    swin_pad_small_windows: bool = False

    def validate_architecture(self):
        super().validate_architecture()
        if self.num_frames < 1:
            raise ValueError(f"num_frames must be >= 1, got {self.num_frames}")
        if self.frame_chunk_size is not None and self.frame_chunk_size < 1:
            raise ValueError(f"frame_chunk_size must be None or >= 1, got {self.frame_chunk_size}")

    @staticmethod
    def list_presets() -> list[str]:
        """Names accepted by [`~Mask2FormerVideoConfig.from_preset`], e.g. `"swin-large-ytvis2019"`."""
        return list(PRESETS)

    @classmethod
    def from_preset(cls, name: str, **overrides: Any) -> "Mask2FormerVideoConfig":
        """The architecture of one of the paper's variants (random weights until a checkpoint is loaded).

        `name` is `<backbone>-<dataset>`: backbone in r50, r101, swin-tiny, swin-small, swin-base,
        swin-large; dataset in ytvis2019, ytvis2021. Keyword arguments override config fields.
        """
        if name not in PRESETS:
            raise ValueError(f"Unknown preset {name!r}. Available presets: {', '.join(PRESETS)}")
        backbone, dataset = name.rsplit("-", 1)
        backbone_type, backbone_kwargs, test_size, num_queries = BACKBONES[backbone]
        if backbone_type == "resnet":
            # detectron2's R50/R101: stride on the 3x3 conv (downsample_in_bottleneck=False), 64-channel stem.
            backbone_config = ResNetConfig(
                embedding_size=64,
                hidden_sizes=[256, 512, 1024, 2048],
                layer_type="bottleneck",
                downsample_in_bottleneck=False,
                out_features=STAGES,
                **backbone_kwargs,
            )
        else:
            backbone_config = SwinConfig(drop_path_rate=0.3, out_features=STAGES, **backbone_kwargs)
        categories = DATASET_CATEGORIES[dataset]
        kwargs = {
            "backbone_config": backbone_config,
            "num_queries": num_queries,
            "id2label": dict(enumerate(categories)),
            "label2id": {label: index for index, label in enumerate(categories)},
            "test_shortest_edge": test_size,
            **overrides,
        }
        return cls(**kwargs)

    @classmethod
    def tiny(cls, backbone: str = "resnet", num_labels: int = 3, **overrides: Any) -> "Mask2FormerVideoConfig":
        """A random architecture small enough to run in well under a second on a CPU, with a ResNet or a Swin
        backbone: every code path of the real models, none of their cost (smoke tests, quick benchmark runs).
        Keyword arguments override config fields."""
        if backbone == "resnet":
            backbone_config = ResNetConfig(
                embedding_size=8, hidden_sizes=[16, 16, 32, 32], depths=[1, 1, 1, 1], out_features=STAGES
            )
        elif backbone == "swin":
            backbone_config = SwinConfig(
                embed_dim=8, depths=[1, 1, 2, 1], num_heads=[1, 1, 2, 2], window_size=4, out_features=STAGES
            )
        else:
            raise ValueError(f"backbone must be 'resnet' or 'swin', got {backbone!r}")
        return cls(backbone_config=backbone_config, num_labels=num_labels, **{**TINY_DECODER, **overrides})

    @classmethod
    def from_image_config(
        cls, image_config: Mask2FormerConfig, id2label: dict[int, str] | None = None
    ) -> "Mask2FormerVideoConfig":
        """The video config of an image Mask2Former's architecture (with the label set `id2label` when given), and
        the paper's test size for its backbone (shortest side 480 for Swin, 360 for ResNet)."""
        values = {key: value for key, value in image_config.to_dict().items() if key not in _NON_ARCHITECTURE_KEYS}
        if id2label is not None:
            values["id2label"] = id2label
            values["label2id"] = {name: index for index, name in id2label.items()}
        config = cls.from_dict(values)
        config.test_shortest_edge = 480 if config.backbone_config.model_type == "swin" else 360
        return config
