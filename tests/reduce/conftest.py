"""Tiny models and fast benchmark settings for the reduce tests; skipped where the reduce extra is not installed."""

from __future__ import annotations

import importlib.util
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    import torch
    from torch import nn

    from wattwise.reduce.base import Context
    from wattwise.reduce.bench import BenchSettings

collect_ignore_glob = [] if importlib.util.find_spec("torch") and importlib.util.find_spec("torchao") else ["test_*"]

IN, HIDDEN, MID, OUT = 16, 32, 24, 4


def make_mlp(seed: int = 0) -> nn.Sequential:
    import torch
    from torch import nn

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return nn.Sequential(
            nn.Linear(IN, HIDDEN), nn.ReLU(), nn.Linear(HIDDEN, MID), nn.GELU(), nn.Linear(MID, OUT)
        ).eval()


def make_inputs(batch: int = 8, seed: int = 1) -> torch.Tensor:
    import torch

    return torch.randn(batch, IN, generator=torch.Generator().manual_seed(seed))


@pytest.fixture
def mlp() -> nn.Sequential:
    return make_mlp()


@pytest.fixture
def inputs() -> torch.Tensor:
    return make_inputs()


@pytest.fixture
def calibration() -> Callable[[], Iterator[tuple[Any, ...]]]:
    def batches() -> Iterator[tuple[Any, ...]]:
        for seed in range(4):
            yield (make_inputs(16, seed=100 + seed),)

    return batches


@pytest.fixture
def ctx(inputs: torch.Tensor, calibration: Callable[[], Iterator[tuple[Any, ...]]]) -> Context:
    from wattwise.reduce.base import Context

    return Context(example_inputs=(inputs,), calibration=calibration)


@pytest.fixture
def quick() -> BenchSettings:
    from wattwise.reduce.bench import BenchSettings

    return BenchSettings(warmup=1, repeats=3, batches=2, min_time_s=0.05)
