"""Synthetic intensity traces for the scheduler's tests: a daily cycle, a weekly one and persistent weather-like
departures (an AR(1) process), written in wattwise's own CSV layout. Tests never read ../shared."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest


def synthetic(hours: int, seed: int = 0, *, mean: float = 300.0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = np.arange(hours)
    daily = 60.0 * np.sin(2 * np.pi * (t % 24) / 24)
    weekly = 20.0 * (((t // 24) % 7) >= 5)
    weather = np.zeros(hours)
    for i in range(1, hours):
        weather[i] = 0.95 * weather[i - 1] + rng.normal(0, 12.0)
    return np.clip(mean + daily - weekly + weather, 5.0, None)


def write_trace(path: Path, values: np.ndarray, start: datetime) -> Path:
    lines = ["timestamp,intensity_g_per_kwh"]
    for i, v in enumerate(values):
        lines.append(f"{(start + timedelta(hours=i)).isoformat().replace('+00:00', 'Z')},{v:.3f}")
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.fixture(scope="session")
def year_trace(tmp_path_factory: pytest.TempPathFactory) -> Path:
    start = datetime(2021, 12, 1, tzinfo=UTC)
    values = synthetic(24 * (365 + 45), seed=1)
    return write_trace(tmp_path_factory.mktemp("traces") / "synthetic.csv", values, start)
