"""One entry point for grid intensity: choose the provider from settings, name the region in its terms, and fall
back to the packaged annual table (saying so) when it cannot answer.

Provider choice: ``trace`` → ``csv``; ``intensity`` → ``fixed``; else ``provider`` (default ``static``, the
packaged annual table, which needs no network). The facility figures (PUE, on-site WUE) come from settings when
set, else from the cloud provider's published fleet figures for a cloud region, else 1.0 and 0 (a local
machine); off-site water comes from the region's grid.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

from wattwise.carbon.base import IntensityProvider, IntensitySeries, constant_series
from wattwise.carbon.regions import Region, RegionResolver
from wattwise.errors import ConfigError, ProviderError

if TYPE_CHECKING:
    from wattwise.config import Settings

LOCAL_PUE = 1.0
LOCAL_WUE_L_PER_KWH = 0.0


@dataclass(frozen=True, slots=True)
class Facility:
    """The data-centre figures a run's emissions and water use, with where each came from."""

    pue: float
    pue_source: str
    wue_l_per_kwh: float
    wue_source: str
    offsite_water_l_per_kwh: float
    offsite_water_source: str


class StaticProvider:
    """The packaged annual average of the region's country (or Google's per-region figure): no network."""

    name = "static"

    def __init__(self, region: Region) -> None:
        self._region = region

    def _series(self) -> IntensitySeries:
        grid = self._region.intensity
        return constant_series(self._region.code, grid.intensity_g_per_kwh, grid.source, note=grid.note)

    def latest(self, zone: str) -> IntensitySeries:
        return self._series()

    def history(self, zone: str, start: datetime, end: datetime) -> IntensitySeries:
        return self._series()

    def forecast(self, zone: str, hours: float) -> IntensitySeries:
        return self._series()


class IntensityService:
    """Answers ``latest``/``history``/``forecast`` for the configured region and provider, never silently."""

    def __init__(
        self, settings: Settings, *, resolver: RegionResolver | None = None, provider: IntensityProvider | None = None
    ) -> None:
        self.settings = settings
        self.provider_name = _provider_name(settings)
        self.postcode = _uk_postcode(settings.region)
        # A GB postcode (the UK Carbon Intensity API's regional data) is a place in Great Britain for everything
        # else: the annual figure, water, the facility.
        self.region = (resolver or RegionResolver()).resolve("GB" if self.postcode else settings.region)
        self._provider = provider

    @property
    def provider(self) -> IntensityProvider:
        if self._provider is None:
            self._provider = self._open_provider()
        return self._provider

    def _open_provider(self) -> IntensityProvider:
        from wattwise.carbon.registry import info

        return info(self.provider_name).build(self.settings, self.region)

    def zone(self) -> str:
        """The region in the provider's own terms."""
        region = self.region
        name = self.provider_name
        if name == "electricitymaps":
            zone = region.grid_zone or region.country
            if zone is None:
                raise ConfigError("Electricity Maps needs a region: set --region to a country, zone or cloud region")
            return zone
        if name == "ukgrid":
            if self.postcode:
                return f"GB-postcode:{self.postcode}"
            if region.country != "GB":
                raise ConfigError(
                    f"the UK Carbon Intensity API covers Great Britain only, not {region.code}; "
                    "use --region GB (or GB-postcode:SW1), or another provider"
                )
            return "GB"
        if name == "watttime":
            if region.latitude is None or region.longitude is None:
                raise ConfigError(
                    f"WattTime finds its region from a location, and {region.code} has none in the packaged "
                    "tables; use a cloud region (aws:us-west-1) or another provider"
                )
            from wattwise.carbon.providers import WattTimeProvider

            provider = self.provider
            assert isinstance(provider, WattTimeProvider)
            return provider.region_from_loc(region.latitude, region.longitude).region
        if name == "csv" and region.is_world:
            return ""  # a trace of one place: no region given, no check
        return region.grid_zone or region.code

    def _answer(self, ask: str, call: object) -> IntensitySeries:
        assert callable(call)
        try:
            series: IntensitySeries = call(self.zone())
        except ProviderError as exc:
            # An outage (timeout, 429, 5xx, an empty answer), offline mode or a plan that does not include this
            # endpoint falls back to the table, visibly; a wrong key, an unknown zone or a malformed answer is the
            # user's to fix and is raised, never papered over.
            if exc.retryable or exc.plan_limit or self.settings.offline:
                return self.fallback(f"{self.provider_name} could not answer {ask}: {exc}", plan_limit=exc.plan_limit)
            raise
        return series

    def latest(self) -> IntensitySeries:
        return self._answer("the latest value", self.provider.latest)

    def history(self, start: datetime, end: datetime) -> IntensitySeries:
        return self._answer("history", lambda zone: self.provider.history(zone, start, end))

    def forecast(self, hours: float) -> IntensitySeries:
        return self._answer("a forecast", lambda zone: self.provider.forecast(zone, hours))

    def fallback(self, why: str, *, plan_limit: bool = False) -> IntensitySeries:
        """The packaged annual figure, flagged as a fallback with the reason (``plan_limit``: the provider's plan
        does not include what was asked; callers use what the plan allows before this)."""
        grid = self.region.intensity
        return constant_series(
            self.region.code,
            grid.intensity_g_per_kwh,
            grid.source,
            fallback=True,
            note=f"{why}; used the packaged annual average instead",
            plan_limit=plan_limit,
        )

    def facility(self) -> Facility:
        settings, region = self.settings, self.region
        if settings.pue is not None:
            pue, pue_source = settings.pue, "set by the user"
        elif region.pue is not None:
            pue, pue_source = region.pue, region.pue_source or region.cloud_provider or ""
        else:
            pue, pue_source = LOCAL_PUE, "1.0: a local machine has no facility overhead (set pue for a data centre)"
        if settings.wue_l_per_kwh is not None:
            wue, wue_source = settings.wue_l_per_kwh, "set by the user"
        elif region.wue_l_per_kwh is not None:
            wue, wue_source = region.wue_l_per_kwh, region.wue_source or ""
        else:
            wue, wue_source = LOCAL_WUE_L_PER_KWH, "0: no evaporative cooling assumed (set wue_l_per_kwh)"
        offsite = region.offsite_water_l_per_kwh if region.offsite_water_l_per_kwh is not None else 0.0
        return Facility(
            pue=pue,
            pue_source=pue_source,
            wue_l_per_kwh=wue,
            wue_source=wue_source,
            offsite_water_l_per_kwh=offsite,
            offsite_water_source=region.offsite_water_source or "no figure for this grid",
        )

    def close(self) -> None:
        close = getattr(self._provider, "close", None)
        if callable(close):
            close()


def _uk_postcode(region: str | None) -> str | None:
    """The outward code of ``GB-postcode:SW1A 1AA`` (the form the UK provider takes), or None."""
    if region and region.upper().startswith("GB-POSTCODE:"):
        code = region.split(":", 1)[1].strip().upper().split()
        if not code:
            raise ConfigError("GB-postcode: needs a postcode, e.g. GB-postcode:SW1")
        return code[0]
    return None


def _provider_name(settings: Settings) -> str:
    if settings.trace is not None:
        if settings.provider not in (None, "csv"):
            raise ConfigError(f"--trace reads a CSV file, but provider {settings.provider!r} was also chosen")
        return "csv"
    if settings.intensity is not None:
        if settings.provider not in (None, "fixed"):
            raise ConfigError(f"--intensity fixes the value, but provider {settings.provider!r} was also chosen")
        return "fixed"
    return settings.provider or "static"
