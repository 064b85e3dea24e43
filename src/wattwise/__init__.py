"""wattwise: see, predict and cut the energy, carbon and water that training and serving AI models cost.

The public API is listed in ``__all__``; everything is imported on first use, so ``import wattwise`` stays fast.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

__all__ = [
    "CommandError",
    "ComponentEnergy",
    "ConfigError",
    "DeviceError",
    "ExternalFigure",
    "LiveStatus",
    "Prediction",
    "Range",
    "RankFigure",
    "Run",
    "RunNotFoundError",
    "RunObserver",
    "Sample",
    "Settings",
    "StoreError",
    "Tracker",
    "TrackerStateError",
    "UnknownRegionError",
    "WattwiseError",
    "WindowRecord",
    "Work",
    "__version__",
    "open_store",
    "report_epoch",
    "report_work",
    "track",
]

_LAZY = {
    "CommandError": "wattwise.errors",
    "ConfigError": "wattwise.errors",
    "DeviceError": "wattwise.errors",
    "RunNotFoundError": "wattwise.errors",
    "RunObserver": "wattwise.measure.observers",
    "StoreError": "wattwise.errors",
    "TrackerStateError": "wattwise.errors",
    "UnknownRegionError": "wattwise.errors",
    "WattwiseError": "wattwise.errors",
    "ComponentEnergy": "wattwise.records",
    "Prediction": "wattwise.records",
    "Range": "wattwise.records",
    "RankFigure": "wattwise.records",
    "ExternalFigure": "wattwise.records",
    "Run": "wattwise.records",
    "Sample": "wattwise.records",
    "WindowRecord": "wattwise.records",
    "Work": "wattwise.records",
    "Settings": "wattwise.config",
    "LiveStatus": "wattwise.measure.live",
    "Tracker": "wattwise.measure.tracker",
    "track": "wattwise.measure.api",
    "open_store": "wattwise.store",
    "report_epoch": "wattwise.measure.epochs",
    "report_work": "wattwise.measure.epochs",
}

if TYPE_CHECKING:
    from wattwise.config import Settings
    from wattwise.errors import (
        CommandError,
        ConfigError,
        DeviceError,
        RunNotFoundError,
        StoreError,
        TrackerStateError,
        UnknownRegionError,
        WattwiseError,
    )
    from wattwise.measure.api import track
    from wattwise.measure.epochs import report_epoch, report_work
    from wattwise.measure.live import LiveStatus
    from wattwise.measure.observers import RunObserver
    from wattwise.measure.tracker import Tracker
    from wattwise.records import (
        ComponentEnergy,
        ExternalFigure,
        Prediction,
        Range,
        RankFigure,
        Run,
        Sample,
        WindowRecord,
        Work,
    )
    from wattwise.store import open_store


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'wattwise' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)
