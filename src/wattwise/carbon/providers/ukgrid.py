"""The Carbon Intensity API of Great Britain's electricity system operator (NESO, formerly National Grid ESO).

No key. Half-hourly, average intensity in gCO2/kWh (https://carbon-intensity.github.io/api-definitions/):

- national: ``GET /intensity`` (the current half hour), ``GET /intensity/{from}/{to}`` (at most 14 days),
  ``GET /intensity/{from}/fw48h`` → ``{"data": [{"from", "to", "intensity": {"forecast", "actual", "index"}}]}``
- regional, by the outward part of a postcode: ``GET /regional/postcode/{outward}`` →
  ``{"data": [{"regionid", "dnoregion", "shortname", "postcode", "data": [{"from", "to", "intensity":
  {"forecast", "index"}, "generationmix": [...]}]}]}``; ``GET /regional/intensity/{from}/{to}/postcode/{outward}``
  and ``GET /regional/intensity/{from}/fw48h/postcode/{outward}`` → the same region object, not in a list.

Times in paths are ``YYYY-MM-DDThh:mmZ``. A point uses ``actual`` when the API has measured it, else ``forecast``
(and is flagged ``forecast=True``); regional figures have no ``actual``, so they are always flagged.

Zones: ``GB`` is Great Britain as a whole; ``GB-postcode:SW1`` (any case, a full postcode is cut to its outward
part) is the region that serves that postcode.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from wattwise.carbon.base import IntensitySeries
from wattwise.carbon.http import (
    TTL_FORECAST_S,
    TTL_HISTORY_S,
    TTL_LATEST_S,
    TTL_RECENT_S,
    HttpClient,
    JsonResponse,
)
from wattwise.carbon.providers._series import (
    ISO_MINUTE,
    SeriesBuilder,
    chunks,
    field_of,
    list_of,
    now_utc,
    number,
    time_of,
    utc,
)
from wattwise.errors import ProviderError

if TYPE_CHECKING:
    from wattwise.config import Settings

NAME = "ukgrid"
LABEL = "the UK Carbon Intensity API"
DEFAULT_BASE_URL = "https://api.carbonintensity.org.uk"
NATIONAL = "GB"
POSTCODE_PREFIX = "GB-postcode:"
_SOURCE = "UK Carbon Intensity API (NESO)"
_RANGE_MAX = timedelta(days=13)  # the API allows 14 days a request; one day spare for its half-hour rounding
_FORECAST_MAX_H = 48
_OUTWARD = re.compile(r"[A-Z]{1,2}[0-9][0-9A-Z]?")


def parse_zone(zone: str) -> str | None:
    """None for Great Britain as a whole, else the outward postcode of ``GB-postcode:<postcode>``."""
    text = zone.strip()
    if text.upper() == NATIONAL:
        return None
    if text.lower().startswith(POSTCODE_PREFIX.lower()):
        outward = text[len(POSTCODE_PREFIX) :].strip().upper().split()
        if outward and _OUTWARD.fullmatch(outward[0]):
            return outward[0]
    raise ProviderError(
        f"the UK Carbon Intensity API covers Great Britain only: use zone {NATIONAL!r} or "
        f"'{POSTCODE_PREFIX}SW1' with an outward postcode (got {zone!r})",
        provider=NAME,
    )


class UkGridProvider:
    """Half-hourly average intensity for Great Britain or one of its regions (by postcode); no credentials."""

    name = NAME

    def __init__(
        self,
        settings: Settings,
        *,
        base_url: str = DEFAULT_BASE_URL,
        client: HttpClient | None = None,
        clock: Callable[[], datetime] = now_utc,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self._client = client or HttpClient(settings, name=NAME, label=LABEL)
        self._clock = clock

    def __repr__(self) -> str:
        return f"UkGridProvider(base_url={self.base_url!r})"

    def latest(self, zone: str) -> IntensitySeries:
        """The newest half hour the API has: ``/intensity`` answers the last *complete* half hour (so it usually
        ended before now), and the note says which half hour it is."""
        outward = parse_zone(zone)
        path = "/intensity" if outward is None else f"/regional/postcode/{outward}"
        builder = self._collect(zone, outward, self._get(path, TTL_LATEST_S), path)
        series = builder.build()
        point = series.points[-1]
        now = utc(self._clock())
        which = "the current half hour" if point.start <= now < point.end else "the last complete half hour"
        label = f"latest value: {which}, {point.start:%H:%M}-{point.end:%H:%M} UTC {point.start:%Y-%m-%d}"
        note = "; ".join(n for n in (label, series.note) if n)
        return IntensitySeries(series.region, series.signal, series.source, (point,), note=note)

    def history(self, zone: str, start: datetime, end: datetime) -> IntensitySeries:
        outward = parse_zone(zone)
        start, end = utc(start), utc(end)
        if end <= start:
            raise ProviderError(f"history needs a start before its end (got {start} to {end})", provider=NAME)
        now = utc(self._clock())
        builder: SeriesBuilder | None = None
        for lo, hi in chunks(_floor_half_hour(start), min(end, now), _RANGE_MAX):
            span = f"{lo.strftime(ISO_MINUTE)}/{hi.strftime(ISO_MINUTE)}"
            path = f"/intensity/{span}" if outward is None else f"/regional/intensity/{span}/postcode/{outward}"
            ttl = TTL_HISTORY_S if hi <= now - timedelta(days=1) else TTL_RECENT_S
            builder = self._collect(zone, outward, self._get(path, ttl), path, builder=builder)
        if builder is None:
            raise ProviderError(f"no history after now (asked from {start:%Y-%m-%d %H:%M} UTC)", provider=NAME)
        return builder.build((start, end))

    def forecast(self, zone: str, hours: float) -> IntensitySeries:
        outward = parse_zone(zone)
        if not hours > 0:
            raise ProviderError(f"forecast needs a positive number of hours (got {hours})", provider=NAME)
        now = utc(self._clock())
        frm = _floor_half_hour(now).strftime(ISO_MINUTE)
        path = f"/intensity/{frm}/fw48h" if outward is None else f"/regional/intensity/{frm}/fw48h/postcode/{outward}"
        builder = self._collect(zone, outward, self._get(path, TTL_FORECAST_S), path)
        if hours > _FORECAST_MAX_H:
            builder.note(f"the UK Carbon Intensity API forecasts at most {_FORECAST_MAX_H} h ahead (asked {hours:g} h)")
        return builder.build((now, now + timedelta(hours=hours)))

    def close(self) -> None:
        self._client.close()

    # -- helpers ------------------------------------------------------------------------------------------------

    def _get(self, path: str, ttl_s: float) -> JsonResponse:
        return self._client.get_json(self.base_url + path, ttl_s=ttl_s, check=lambda data: _has_data(data, path))

    def _collect(
        self,
        zone: str,
        outward: str | None,
        response: JsonResponse,
        where: str,
        *,
        builder: SeriesBuilder | None = None,
    ) -> SeriesBuilder:
        if outward is None:
            rows = list_of(response.data, "data", label=LABEL, provider=NAME, where=where)
            source = f"{_SOURCE}, Great Britain"
        else:
            region: Any = field_of(response.data, "data", label=LABEL, provider=NAME, where=where)
            if isinstance(region, list):  # /regional/postcode answers a list of one region
                region = region[0] if region else {}
            rows = list_of(region, "data", label=LABEL, provider=NAME, where=where)
            name = region.get("shortname") or region.get("dnoregion") or f"region {region.get('regionid', '?')}"
            source = f"{_SOURCE}, {name} (postcode {outward})"
        if builder is None:
            builder = SeriesBuilder(zone, "average", source, NAME, LABEL)
            if outward is not None:
                builder.note("regional values are the API's modelled estimates (it publishes no measured ones)")
        for row in rows:
            self._add(builder, row, where)
        builder.note(response.note)
        return builder

    @staticmethod
    def _add(builder: SeriesBuilder, row: Any, where: str) -> None:
        start = time_of(
            field_of(row, "from", label=LABEL, provider=NAME, where=where), label=LABEL, provider=NAME, where=where
        )
        end = time_of(row.get("to"), label=LABEL, provider=NAME, where=where)
        duration = (end - start).total_seconds()
        duration = duration if duration > 0 else 1800.0
        intensity = row.get("intensity") if isinstance(row.get("intensity"), dict) else {}
        actual = number(intensity.get("actual"))
        if actual is not None:
            builder.add(start, duration, actual)
        else:
            builder.add(start, duration, intensity.get("forecast"), forecast=True)


def _has_data(data: Any, path: str) -> None:
    """A 200 answer with ``{}`` or ``"data": []`` is an outage on the API's side (carbon-intensity/api-definitions
    issues 18-20), not the user's mistake: retryable, so the client retries and, failing that, the caller falls back."""
    rows = data.get("data") if isinstance(data, dict) else None
    if isinstance(rows, dict):  # a regional range: one region object
        rows = rows.get("data")
    elif isinstance(rows, list) and rows and isinstance(rows[0], dict) and "regionid" in rows[0]:
        rows = rows[0].get("data")  # /regional/postcode: a list of one region
    if not rows:
        raise ProviderError(
            f"{LABEL} answered {path} with no data (an outage on its side); try again later",
            provider=NAME,
            retryable=True,
        )


def _floor_half_hour(moment: datetime) -> datetime:
    moment = utc(moment)
    return moment.replace(minute=0 if moment.minute < 30 else 30, second=0, microsecond=0)
