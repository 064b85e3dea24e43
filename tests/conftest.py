"""Every test runs with its own WATTWISE_HOME and no user config, so nothing leaks between tests or from ~."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from wattwise.config import Settings


@pytest.fixture(autouse=True)
def isolated_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    import os

    for var in list(os.environ):
        if var.startswith("WATTWISE_") or var in {
            "CUDA_VISIBLE_DEVICES",
            "ELECTRICITYMAPS_API_KEY",
            "WATTTIME_USERNAME",
            "WATTTIME_PASSWORD",
        }:
            monkeypatch.delenv(var, raising=False)
    home = tmp_path / "wattwise-home"
    monkeypatch.setenv("WATTWISE_HOME", str(home))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg-config"))
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg-data"))
    yield home


@pytest.fixture
def settings(isolated_env: Path, tmp_path: Path) -> Settings:
    """Settings for a machine with no RAPL and no GPU, storing runs under the test's own home."""
    return Settings.load({"rapl_root": str(tmp_path / "no-powercap"), "gpu": False, "interval_s": 0.05, "flush_s": 0.2})
