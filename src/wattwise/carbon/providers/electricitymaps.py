"""Electricity Maps API v3: the average (consumption-based) carbon intensity of a grid zone, hourly.

Endpoints (https://docs.electricitymaps.com, header ``auth-token``):

- ``GET /v3/carbon-intensity/latest?zone=DE`` →
  ``{"zone", "carbonIntensity", "datetime", "updatedAt", "createdAt", "emissionFactorType", "isEstimated",
  "estimationMethod"}``
- ``GET /v3/carbon-intensity/history?zone=DE`` (the last 24 hours) → ``{"zone", "history": [<as latest>, ...]}``
- ``GET /v3/carbon-intensity/past-range?zone=DE&start=…&end=…`` (older ranges, at most 10 days a request; a
  commercial plan) → ``{"zone", "data": [<as latest>, ...]}``
- ``GET /v3/carbon-intensity/forecast?zone=DE&horizonHours=24`` → ``{"zone", "forecast": [{"carbonIntensity",
  "datetime"}, ...], "updatedAt"}``

``carbonIntensity`` is in gCO2eq/kWh; ``datetime`` starts the period (one hour unless ``temporalGranularity`` says
otherwise). ``emissionFactorType`` (``lifecycle`` by default, or ``direct``) is named in the series' source. Every
request sends ``shouldUseFallbackCallerLookup=false`` (else the API may answer for the caller's IP location), and an
answer for another zone than the one asked is refused.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, Literal

from wattwise.carbon.base import IntensitySeries
from wattwise.carbon.http import (
    TTL_FORECAST_S,
    TTL_HISTORY_S,
    TTL_LATEST_S,
    TTL_RECENT_S,
    HttpClient,
    JsonResponse,
    Params,
)
from wattwise.carbon.providers._series import (
    ISO_SECOND,
    SeriesBuilder,
    ceil_hour,
    chunks,
    field_of,
    floor_hour,
    list_of,
    now_utc,
    time_of,
    utc,
)
from wattwise.errors import ProviderError

if TYPE_CHECKING:
    from wattwise.config import Settings

NAME = "electricitymaps"
LABEL = "Electricity Maps"
AUTH_HINT = "check ELECTRICITYMAPS_API_KEY (or electricitymaps_api_key in the config file) and that your plan covers it"
DEFAULT_BASE_URL = "https://api.electricitymaps.com"
EmissionFactorType = Literal["lifecycle", "direct"]
_GRANULARITY_S = {"5_minutes": 300.0, "15_minutes": 900.0, "hourly": 3600.0, "daily": 86400.0}
_RECENT = timedelta(hours=24)  # what /history covers
_PAST_RANGE_MAX = timedelta(days=10)  # the most one /past-range request may span
_HORIZONS_H = (6, 24, 48, 72)


class ElectricityMapsProvider:
    """Average carbon intensity from Electricity Maps. The API key comes from ``Settings.electricitymaps_api_key``
    (``ELECTRICITYMAPS_API_KEY``); ``base_url`` and ``client`` let tests point it at a local server."""

    name = NAME

    def __init__(
        self,
        settings: Settings,
        *,
        base_url: str = DEFAULT_BASE_URL,
        emission_factor_type: EmissionFactorType = "lifecycle",
        client: HttpClient | None = None,
        clock: Callable[[], datetime] = now_utc,
    ) -> None:
        if emission_factor_type not in ("lifecycle", "direct"):
            raise ValueError(f"emission_factor_type must be lifecycle or direct (got {emission_factor_type!r})")
        self.base_url = base_url.rstrip("/")
        self.emission_factor_type = emission_factor_type
        self._api_key = settings.electricitymaps_api_key
        self._client = client or HttpClient(settings, name=NAME, label=LABEL, auth_hint=AUTH_HINT)
        self._clock = clock

    def __repr__(self) -> str:  # never the key
        return (
            f"ElectricityMapsProvider(base_url={self.base_url!r}, emission_factor_type={self.emission_factor_type!r})"
        )

    def latest(self, zone: str) -> IntensitySeries:
        where = "/v3/carbon-intensity/latest"
        response = self._get(where, {"zone": zone}, TTL_LATEST_S)
        data = response.data
        _check_zone(data, zone, where)
        factor_type = data.get("emissionFactorType") if isinstance(data, dict) else None
        builder = SeriesBuilder(zone, "average", self._source(factor_type), NAME, LABEL)
        self._add(builder, data, where)
        builder.note(response.note)
        return builder.build()

    def history(self, zone: str, start: datetime, end: datetime) -> IntensitySeries:
        start, end = utc(start), utc(end)
        if end <= start:
            raise ProviderError(f"history needs a start before its end (got {start} to {end})", provider=NAME)
        now = utc(self._clock())
        builder = SeriesBuilder(zone, "average", self._source(), NAME, LABEL)
        if start >= now - _RECENT:
            where = "/v3/carbon-intensity/history"
            response = self._get(where, {"zone": zone}, TTL_RECENT_S)
            self._collect(builder, response, ("history", "data"), where)
        else:
            where = "/v3/carbon-intensity/past-range"
            for lo, hi in chunks(floor_hour(start), ceil_hour(min(end, now)), _PAST_RANGE_MAX):
                params = {"zone": zone, "start": lo.strftime(ISO_SECOND), "end": hi.strftime(ISO_SECOND)}
                ttl = TTL_HISTORY_S if hi <= now - timedelta(days=2) else TTL_RECENT_S
                self._collect(builder, self._get(where, params, ttl), ("data", "history"), where)
        return builder.build((start, end))

    def forecast(self, zone: str, hours: float) -> IntensitySeries:
        if not hours > 0:
            raise ProviderError(f"forecast needs a positive number of hours (got {hours})", provider=NAME)
        horizon = next((h for h in _HORIZONS_H if h >= hours), _HORIZONS_H[-1])
        where = "/v3/carbon-intensity/forecast"
        response = self._get(where, {"zone": zone, "horizonHours": horizon}, TTL_FORECAST_S)
        builder = SeriesBuilder(zone, "average", self._source(), NAME, LABEL)
        if hours > horizon:
            builder.note(f"Electricity Maps forecasts at most {horizon} h ahead (asked for {hours:g} h)")
        self._collect(builder, response, ("forecast", "data"), where, forecast=True)
        now = utc(self._clock())
        return builder.build((now, now + timedelta(hours=hours)))

    def close(self) -> None:
        self._client.close()

    # -- helpers ------------------------------------------------------------------------------------------------

    def _get(self, path: str, params: Params, ttl_s: float) -> JsonResponse:
        if not self._api_key and not self._client.offline:
            raise ProviderError(
                "Electricity Maps needs an API key: set ELECTRICITYMAPS_API_KEY or electricitymaps_api_key in the "
                "config file (free keys: api-portal.electricitymaps.com)",
                provider=NAME,
            )
        # never the caller's IP location in place of an unknown zone (the API's documented fallback)
        params = {**params, "emissionFactorType": self.emission_factor_type, "shouldUseFallbackCallerLookup": "false"}
        headers = {"auth-token": self._api_key} if self._api_key else {}
        try:
            return self._client.get_json(self.base_url + path, params=params, headers=headers, ttl_s=ttl_s)
        except ProviderError as exc:
            # 403 anywhere, or 401 on anything but /latest: the key works (or may) but its plan does not reach this
            # endpoint or zone. A free key has the latest value and 24 h of history for one zone, no forecast.
            if exc.status == 403 or (exc.status == 401 and not path.endswith("/latest")):
                endpoint = path.rsplit("/", 1)[-1]
                raise ProviderError(
                    f"Electricity Maps refused {endpoint} for zone {params.get('zone')} ({exc.status}: {exc.detail}): "
                    "the API key's plan does not include it (free keys have the latest value and 24 h of history "
                    "for one zone, no forecast)",
                    provider=NAME,
                    plan_limit=True,
                    status=exc.status,
                    detail=exc.detail,
                ) from None
            raise

    def _source(self, factor_type: object = None) -> str:
        kind = factor_type if isinstance(factor_type, str) and factor_type else self.emission_factor_type
        return f"Electricity Maps v3 carbon-intensity ({kind} emission factors)"

    def _collect(
        self,
        builder: SeriesBuilder,
        response: JsonResponse,
        keys: tuple[str, ...],
        where: str,
        *,
        forecast: bool = False,
    ) -> None:
        rows = list_of(response.data, *keys, label=LABEL, provider=NAME, where=where)
        _check_zone(response.data, builder.region, where)
        default = _GRANULARITY_S.get(str(response.data.get("temporalGranularity")), 3600.0)
        for row in rows:
            self._add(builder, row, where, forecast=forecast, default_s=default)
        factor_types = {
            r["emissionFactorType"]
            for r in rows
            if isinstance(r, dict) and isinstance(r.get("emissionFactorType"), str)
        }
        if len(factor_types) == 1:
            builder.source = self._source(factor_types.pop())
        builder.note(response.note)

    def _add(
        self, builder: SeriesBuilder, row: Any, where: str, *, forecast: bool = False, default_s: float = 3600.0
    ) -> None:
        start = time_of(
            field_of(row, "datetime", label=LABEL, provider=NAME, where=where), label=LABEL, provider=NAME, where=where
        )
        duration = _GRANULARITY_S.get(str(row.get("temporalGranularity")), default_s)
        builder.add(start, duration, row.get("carbonIntensity"), forecast=forecast)
        if row.get("isEstimated") is True:
            method = row.get("estimationMethod")
            builder.note(f"includes estimated values ({method})" if method else "includes estimated values")


def _check_zone(data: Any, zone: str, where: str) -> None:
    """An answer for another zone than the one asked is refused, never used in its place."""
    answered = data.get("zone") if isinstance(data, dict) else None
    if isinstance(answered, str) and answered.upper() != zone.upper():
        raise ProviderError(
            f"Electricity Maps answered {where} for zone {answered!r}, not {zone!r}: check the zone name "
            "(see /v3/zones)",
            provider=NAME,
        )
