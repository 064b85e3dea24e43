"""Live carbon-intensity providers, each an :class:`~wattwise.carbon.base.IntensityProvider` over one HTTP client.

=================  ==========================  ========  =========================================================
provider           zone names                  signal    resolution, credentials
=================  ==========================  ========  =========================================================
electricitymaps    Electricity Maps zones      average   hourly; ``ELECTRICITYMAPS_API_KEY``
                   (``DE``, ``US-CAL-CISO``)
watttime           WattTime regions            marginal  5 minutes; ``WATTTIME_USERNAME`` / ``WATTTIME_PASSWORD``
                   (``CAISO_NORTH``)
ukgrid             ``GB``, ``GB-postcode:SW1``  average   30 minutes; no key
=================  ==========================  ========  =========================================================

None of them imports httpx until it first goes to the network.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from wattwise.carbon.providers import electricitymaps, ukgrid, watttime
from wattwise.carbon.providers.electricitymaps import ElectricityMapsProvider
from wattwise.carbon.providers.ukgrid import UkGridProvider
from wattwise.carbon.providers.watttime import WattTimeProvider, WattTimeRegion
from wattwise.carbon.registry import PROVIDERS
from wattwise.errors import ConfigError

if TYPE_CHECKING:
    from wattwise.carbon.base import IntensityProvider
    from wattwise.carbon.http import HttpClient
    from wattwise.config import Settings

__all__ = [
    "LIVE_PROVIDERS",
    "ElectricityMapsProvider",
    "UkGridProvider",
    "WattTimeProvider",
    "WattTimeRegion",
    "live_provider",
]

LIVE_PROVIDERS = tuple(name for name, entry in PROVIDERS.items() if entry.live)


def live_provider(
    name: str, settings: Settings, *, base_url: str | None = None, client: HttpClient | None = None
) -> IntensityProvider:
    """The live provider called ``name`` (see the table above), built from ``settings``."""
    if name == "electricitymaps":
        return ElectricityMapsProvider(settings, base_url=base_url or electricitymaps.DEFAULT_BASE_URL, client=client)
    if name == "watttime":
        return WattTimeProvider(settings, base_url=base_url or watttime.DEFAULT_BASE_URL, client=client)
    if name == "ukgrid":
        return UkGridProvider(settings, base_url=base_url or ukgrid.DEFAULT_BASE_URL, client=client)
    raise ConfigError(f"unknown live provider {name!r}; choose one of {', '.join(LIVE_PROVIDERS)}")
