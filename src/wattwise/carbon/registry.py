"""The one list of carbon-intensity providers: their names, what each can answer, and how to build one.

The CLI's ``--provider`` choices, the config's check, the intensity service and the scheduler all read this
table; adding a provider means adding a row here (and its module), nowhere else.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from wattwise.errors import ConfigError

if TYPE_CHECKING:
    from wattwise.carbon.base import IntensityProvider
    from wattwise.carbon.regions import Region
    from wattwise.config import Settings


@dataclass(frozen=True, slots=True)
class ProviderInfo:
    """One provider. ``live``: answers over the network (history can be re-fetched after a run);
    ``time_resolved``: its values change hour by hour (a scheduler has something to shift between);
    ``forecasts``: it publishes forecasts itself (otherwise the scheduler forecasts from its history)."""

    name: str
    summary: str
    live: bool
    time_resolved: bool
    forecasts: bool
    build: Callable[[Settings, Region], IntensityProvider]


def _static(settings: Settings, region: Region) -> IntensityProvider:
    from wattwise.carbon.service import StaticProvider

    return StaticProvider(region)


def _fixed(settings: Settings, region: Region) -> IntensityProvider:
    from wattwise.carbon.csvtrace import FixedProvider

    if settings.intensity is None:
        raise ConfigError("provider fixed needs a value: --intensity G_PER_KWH or WATTWISE_INTENSITY")
    return FixedProvider(settings.intensity)


def _csv(settings: Settings, region: Region) -> IntensityProvider:
    from wattwise.carbon.csvtrace import CsvTraceProvider

    if settings.trace is None:
        raise ConfigError("provider csv needs a trace file: --trace FILE or WATTWISE_TRACE")
    zone = None if region.is_world else (region.grid_zone or region.country)
    return CsvTraceProvider(settings.trace, zone=zone)


def _live(name: str) -> Callable[[Settings, Region], IntensityProvider]:
    def build(settings: Settings, region: Region) -> IntensityProvider:
        from wattwise.carbon.providers import live_provider

        return live_provider(name, settings)

    return build


PROVIDERS: dict[str, ProviderInfo] = {
    info.name: info
    for info in (
        ProviderInfo("static", "the packaged annual average of the region (no network)", False, False, False, _static),
        ProviderInfo("fixed", "one value given with --intensity", False, False, False, _fixed),
        ProviderInfo("csv", "a CSV trace given with --trace", False, True, False, _csv),
        ProviderInfo(
            "electricitymaps",
            "Electricity Maps API (ELECTRICITYMAPS_API_KEY)",
            True,
            True,
            True,
            _live("electricitymaps"),
        ),
        ProviderInfo(
            "watttime",
            "WattTime API, marginal signal (WATTTIME_USERNAME/PASSWORD)",
            True,
            True,
            True,
            _live("watttime"),
        ),
        ProviderInfo("ukgrid", "UK Carbon Intensity API, Great Britain (no key)", True, True, True, _live("ukgrid")),
    )
}
NAMES: tuple[str, ...] = tuple(PROVIDERS)


def info(name: str) -> ProviderInfo:
    """The provider called ``name``, or one line listing the valid names."""
    try:
        return PROVIDERS[name]
    except KeyError:
        raise ConfigError(f"unknown provider {name!r}: choose one of {', '.join(NAMES)}") from None
