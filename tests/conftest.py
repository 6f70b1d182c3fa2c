"""Shared test set-up: the tiny random configuration (one definition, in the package's benchmarking helpers, which
the quick benchmark runs use too) and a fixed seed for every test."""

import pytest
import torch

from modeling_m2f_video.benchmarking import tiny_config

__all__ = ["tiny_config"]


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)
