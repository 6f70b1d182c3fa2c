"""Shared fixtures: tiny random configurations that run in well under a second on 2 CPU cores."""

from pathlib import Path

import pytest
import torch
from transformers import ResNetConfig, SwinConfig

from modeling_m2f_video import Mask2FormerVideoConfig

STAGES = ["stage1", "stage2", "stage3", "stage4"]
SHARED_FIXTURES = Path(__file__).resolve().parents[1].parent / "shared" / "fixtures"

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


def tiny_config(backbone: str = "resnet", num_labels: int = 3, **overrides) -> Mask2FormerVideoConfig:
    """A video Mask2Former small enough for unit tests, with a ResNet or a Swin backbone."""
    if backbone == "resnet":
        backbone_config = ResNetConfig(
            embedding_size=8, hidden_sizes=[16, 16, 32, 32], depths=[1, 1, 1, 1], out_features=STAGES
        )
    else:
        backbone_config = SwinConfig(
            embed_dim=8, depths=[1, 1, 2, 1], num_heads=[1, 1, 2, 2], window_size=4, out_features=STAGES
        )
    return Mask2FormerVideoConfig(
        backbone_config=backbone_config,
        num_labels=num_labels,
        **{**TINY_DECODER, **overrides},
    )


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)
