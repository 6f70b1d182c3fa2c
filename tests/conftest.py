"""Shared test set-up: the tiny random configuration (the package's `Mask2FormerVideoConfig.tiny`, which the quick
benchmark runs use too), the fixture folder, the benchmark scripts, and a fixed seed for every test."""

import importlib
import sys
from pathlib import Path

import pytest
import torch

from modeling_m2f_video.configuration import Mask2FormerVideoConfig

FIXTURES = Path(__file__).resolve().parent / "fixtures"
BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"
tiny_config = Mask2FormerVideoConfig.tiny

__all__ = ["BENCHMARKS", "FIXTURES", "load_benchmark_script", "tiny_config"]


def load_benchmark_script(name: str):
    """Import `benchmarks/<name>.py` as the benchmark scripts import each other (their folder on `sys.path`)."""
    if str(BENCHMARKS) not in sys.path:
        sys.path.insert(0, str(BENCHMARKS))
    return importlib.import_module(name)


@pytest.fixture(scope="module")
def one_torch_thread():
    """For test modules that run many operations on tiny tensors: one torch thread spares a thread-pool wake-up per
    operation, which dominates on a busy machine."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)
