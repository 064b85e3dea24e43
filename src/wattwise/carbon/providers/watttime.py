"""WattTime API v3: the *marginal* operating emissions rate (MOER) of a grid region, every 5 minutes.

Endpoints (https://docs.watttime.org, bearer token from ``/login``):

- ``GET /login`` with HTTP basic auth → ``{"token": "…"}``, valid 30 minutes
- ``GET /v3/forecast?region=CAISO_NORTH&signal_type=co2_moer&horizon_hours=24`` (0 gives the current "nowcast",
  at most 72) and ``GET /v3/historical?region=…&start=…&end=…&signal_type=co2_moer`` →
  ``{"data": [{"point_time", "value"}, ...], "meta": {"region", "signal_type", "units": "lbs_co2_per_mwh",
  "data_point_period_seconds": 300, "model": {"date"}, "generated_at", "warnings"}}``
- ``GET /v3/region-from-loc?latitude=…&longitude=…&signal_type=co2_moer`` → ``{"region", "region_full_name",
  "signal_type"}``

Values in lbs CO2/MWh become g/kWh through :func:`wattwise.units.lbs_per_mwh_to_g_per_kwh`. Any other unit (the
free ``/v3/signal-index`` answers a ``percentile``) is refused, never converted as if it were lbs/MWh.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
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
    Params,
)
from wattwise.carbon.providers._series import ISO_SECOND, SeriesBuilder, chunks, list_of, now_utc, number, time_of, utc
from wattwise.errors import ProviderError
from wattwise.units import lbs_per_mwh_to_g_per_kwh

if TYPE_CHECKING:
    from wattwise.config import Settings

NAME = "watttime"
LABEL = "WattTime"
AUTH_HINT = "check WATTTIME_USERNAME and WATTTIME_PASSWORD (or watttime_username/watttime_password in the config file)"
DEFAULT_BASE_URL = "https://api.watttime.org"
UNITS = "lbs_co2_per_mwh"
TOKEN_LIFETIME_S = 30 * 60.0
_TOKEN_MARGIN_S = 60.0  # renew a minute early rather than see a 401
_HISTORICAL_MAX = timedelta(days=30)  # one /v3/historical request spans at most a month
_MAX_HORIZON_H = 72


@dataclass(frozen=True, slots=True)
class WattTimeRegion:
    """The WattTime region that covers a point, as ``/v3/region-from-loc`` names it."""

    region: str
    full_name: str
    signal_type: str


class WattTimeProvider:
    """Marginal emissions from WattTime. Credentials come from ``Settings.watttime_username`` and
    ``watttime_password``; the token lives on this object (never on disk) and is renewed once on a 401."""

    name = NAME

    def __init__(
        self,
        settings: Settings,
        *,
        base_url: str = DEFAULT_BASE_URL,
        signal_type: str = "co2_moer",
        client: HttpClient | None = None,
        clock: Callable[[], datetime] = now_utc,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.signal_type = signal_type
        self._credentials = (
            (settings.watttime_username, settings.watttime_password)
            if settings.watttime_username and settings.watttime_password
            else None
        )
        self._client = client or HttpClient(settings, name=NAME, label=LABEL, auth_hint=AUTH_HINT)
        self._clock = clock
        self._token: str | None = None
        self._token_expires = 0.0

    def __repr__(self) -> str:  # never the credentials or the token
        return f"WattTimeProvider(base_url={self.base_url!r}, signal_type={self.signal_type!r})"

    def latest(self, zone: str) -> IntensitySeries:
        where = "/v3/forecast"
        response = self._get(where, {"region": zone, "horizon_hours": 0}, TTL_LATEST_S)
        series = self._series(zone, response, where)
        first = series.points[0]
        note = "the current value is WattTime's nowcast (its forecast at horizon 0)"
        return IntensitySeries(
            region=series.region,
            signal=series.signal,
            source=series.source,
            points=(first,),
            note="; ".join(n for n in (note, series.note) if n),
        )

    def history(self, zone: str, start: datetime, end: datetime) -> IntensitySeries:
        start, end = utc(start), utc(end)
        if end <= start:
            raise ProviderError(f"history needs a start before its end (got {start} to {end})", provider=NAME)
        now = utc(self._clock())
        where = "/v3/historical"
        builder: SeriesBuilder | None = None
        for lo, hi in chunks(start.replace(second=0, microsecond=0), min(end, now), _HISTORICAL_MAX):
            params = {"region": zone, "start": lo.strftime(ISO_SECOND), "end": hi.strftime(ISO_SECOND)}
            ttl = TTL_HISTORY_S if hi <= now - timedelta(days=1) else TTL_RECENT_S
            response = self._get(where, params, ttl)
            builder = self._collect(zone, response, where, builder=builder)
        if builder is None:
            raise ProviderError(
                f"WattTime has no history after now (asked from {start:%Y-%m-%d %H:%M} UTC)", provider=NAME
            )
        return builder.build((start, end))

    def forecast(self, zone: str, hours: float) -> IntensitySeries:
        if not hours > 0:
            raise ProviderError(f"forecast needs a positive number of hours (got {hours})", provider=NAME)
        horizon = min(_MAX_HORIZON_H, math.ceil(hours))
        where = "/v3/forecast"
        response = self._get(where, {"region": zone, "horizon_hours": horizon}, TTL_FORECAST_S)
        builder = self._collect(zone, response, where, forecast=True)
        if hours > _MAX_HORIZON_H:
            builder.note(f"WattTime forecasts at most {_MAX_HORIZON_H} h ahead (asked for {hours:g} h)")
        now = utc(self._clock())
        return builder.build((now, now + timedelta(hours=hours)))

    def region_from_loc(self, latitude: float, longitude: float) -> WattTimeRegion:
        """The WattTime region at a point (for the region resolver); cached for a month."""
        if not (-90 <= latitude <= 90 and -180 <= longitude <= 180):
            raise ProviderError(f"not a location: latitude {latitude}, longitude {longitude}", provider=NAME)
        where = "/v3/region-from-loc"
        params = {"latitude": f"{latitude:.4f}", "longitude": f"{longitude:.4f}"}
        data = self._get(where, params, TTL_HISTORY_S).data
        region = data.get("region") if isinstance(data, dict) else None
        if not isinstance(region, str) or not region:
            raise ProviderError(
                f"unexpected response from WattTime: no 'region' in the answer to {where}; try again later",
                provider=NAME,
            )
        return WattTimeRegion(region, str(data.get("region_full_name") or region), str(data.get("signal_type") or ""))

    def close(self) -> None:
        self._client.close()

    # -- the token ----------------------------------------------------------------------------------------------

    def _headers(self) -> dict[str, str]:
        if self._token is None or self._clock().timestamp() >= self._token_expires:
            self._login()
        return {"Authorization": f"Bearer {self._token}"}

    def _renew(self) -> Mapping[str, str]:
        self._token = None
        return self._headers()

    def _login(self) -> None:
        if self._credentials is None:
            raise ProviderError(
                "WattTime needs a username and password: set WATTTIME_USERNAME and WATTTIME_PASSWORD (or "
                "watttime_username and watttime_password in the config file)",
                provider=NAME,
            )
        issued = self._clock().timestamp()
        data = self._client.get_json(f"{self.base_url}/login", auth=self._credentials, ttl_s=0, cache=False).data
        token = data.get("token") if isinstance(data, dict) else None
        if not isinstance(token, str) or not token:
            raise ProviderError(
                "unexpected response from WattTime: /login answered no token; " + AUTH_HINT, provider=NAME
            )
        self._token = token
        self._token_expires = issued + TOKEN_LIFETIME_S - _TOKEN_MARGIN_S

    # -- data ---------------------------------------------------------------------------------------------------

    def _get(self, path: str, params: Params, ttl_s: float) -> JsonResponse:
        headers = {} if self._client.offline else self._headers()
        params = {**params, "signal_type": self.signal_type}
        try:
            return self._client.get_json(
                self.base_url + path, params=params, headers=headers, ttl_s=ttl_s, on_unauthorized=self._renew
            )
        except ProviderError as exc:
            # still 403 after a fresh token: "Invalid scope", the account's plan does not cover this region/endpoint
            if exc.status == 403:
                raise ProviderError(
                    f"WattTime refused {path} for region {params.get('region', '?')} (403: {exc.detail}): the "
                    "account's plan does not include it (free accounts have every endpoint for CAISO_NORTH only); "
                    "the login itself worked",
                    provider=NAME,
                    plan_limit=True,
                    status=403,
                    detail=exc.detail,
                ) from None
            raise

    def _series(self, zone: str, response: JsonResponse, where: str) -> IntensitySeries:
        return self._collect(zone, response, where).build()

    def _collect(
        self,
        zone: str,
        response: JsonResponse,
        where: str,
        *,
        forecast: bool = False,
        builder: SeriesBuilder | None = None,
    ) -> SeriesBuilder:
        rows = list_of(response.data, "data", label=LABEL, provider=NAME, where=where)
        meta: Any = response.data.get("meta")
        meta = meta if isinstance(meta, dict) else {}
        units = meta.get("units")
        if units != UNITS:
            raise ProviderError(
                f"unexpected response from WattTime: {where} answered values in {units!r}, not {UNITS} (signal "
                f"{meta.get('signal_type', self.signal_type)!r}); wattwise will not convert them: use signal_type "
                "co2_moer with a plan that includes it",
                provider=NAME,
            )
        period = number(meta.get("data_point_period_seconds")) or 300.0
        if builder is None:
            model = meta.get("model", {}).get("date") if isinstance(meta.get("model"), dict) else None
            version = f", model {model}" if model else ""
            source = f"WattTime v3 {meta.get('signal_type', self.signal_type)} (marginal, lbs/MWh converted{version})"
            builder = SeriesBuilder(zone, "marginal", source, NAME, LABEL)
        for row in rows:
            if not isinstance(row, dict):
                continue
            start = time_of(row.get("point_time"), label=LABEL, provider=NAME, where=where)
            value = number(row.get("value"))
            builder.add(start, period, None if value is None else lbs_per_mwh_to_g_per_kwh(value), forecast=forecast)
        for warning in meta.get("warnings") or ():
            if isinstance(warning, dict) and warning.get("message"):
                builder.note(f"WattTime: {warning['message']}")
        builder.note(response.note)
        return builder
