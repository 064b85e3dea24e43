"""The intensity outlook a plan reads: hourly values from the submission hour onwards, and where they came from.

Built from the carbon layer (the same :class:`~wattwise.carbon.service.IntensityService` the tracker uses):

1. a provider that publishes forecasts (Electricity Maps, WattTime, the UK API) answers with its forecast;
2. a provider that cannot (a CSV trace, a forecast the plan does not include) gives its history, and a forecaster
   (:mod:`wattwise.schedule.forecast`, ``auto`` by default) forecasts from it;
3. a single annual value (the packaged table, ``--intensity``) is an outlook with nothing to shift between, and
   says so in ``warning``.

For a CSV trace, ``at`` (default: now) is the submission time: only values before it are used to forecast, and
the values after it, where the trace has them, are kept as ``actual`` to score the plan in hindsight. Without
``at`` (planning now), a trace that already holds the hours ahead is a forecast file, and its values are used.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

import numpy as np

from wattwise.carbon.registry import info
from wattwise.errors import ConfigError
from wattwise.schedule.hourly import HOUR_S, Hourly, to_hourly
from wattwise.schedule.planner import Job, horizon_h

if TYPE_CHECKING:
    from wattwise.carbon.base import IntensitySeries
    from wattwise.carbon.service import IntensityService

HISTORY_DAYS = 35  # enough for every forecaster's first fit (14-day profile + 2 weeks)
ANNUAL_WARNING = (
    "the only intensity available is the packaged annual average: every hour looks the same, so there is nothing "
    "to shift between; use a provider with forecasts (--provider electricitymaps|watttime|ukgrid) or --trace"
)


@dataclass(frozen=True, slots=True)
class Outlook:
    region: str
    start: datetime  # the submission hour (UTC)
    values: np.ndarray  # hourly g/kWh from ``start``
    source: str
    method: str  # "provider forecast", "forecaster NAME on history", "annual average"
    issued_at: datetime
    warning: str = ""
    actual: np.ndarray | None = None  # what happened, where a trace covers the hours after ``start``

    @property
    def horizon_h(self) -> int:
        return len(self.values)


def hour_floor(moment: datetime) -> datetime:
    seconds = moment.astimezone(UTC).timestamp()
    return datetime.fromtimestamp(seconds - seconds % HOUR_S, UTC)


def outlook(
    service: IntensityService,
    job: Job,
    *,
    at: datetime | None = None,
    forecaster: str = "auto",
    now: datetime | None = None,
) -> Outlook:
    """The outlook ``job`` needs for ``service``'s region from the hour holding ``at`` (a submission time to
    replay: only the past before it is used), else ``now`` (default: the clock)."""
    need_h = horizon_h(job.duration_h, job.window_h, job.semantics)
    from wattwise.carbon.csvtrace import CsvTraceProvider

    now = now or datetime.now(UTC)
    start = hour_floor(at or now)
    entry = info(service.provider_name)
    region = service.region.code
    if not entry.time_resolved:
        return _flat(region, start, need_h, service.latest(), now)
    provider = service.provider
    if isinstance(provider, CsvTraceProvider):
        label = provider.region if service.region.is_world else region
        return _from_trace(provider, label, start, job, forecaster, given_at=at is not None)
    if entry.forecasts and at is None:
        series = service.forecast(need_h + 1)
        if series.fallback or series.constant:
            return _flat(region, start, need_h, series, now)
        hourly = to_hourly(series)
        values = hourly.between(start, start + timedelta(hours=need_h)).values
        if len(values) >= need_h and not np.isnan(values).any():
            return Outlook(region, start, values[:need_h], series.source, "provider forecast", now)
    history = service.history(start - timedelta(days=HISTORY_DAYS), start)
    if history.fallback or history.constant:
        return _flat(region, start, need_h, history, now)
    return _forecast_from(to_hourly(history), region, start, job, forecaster, history.source, None)


def _flat(region: str, start: datetime, need_h: int, series: IntensitySeries, now: datetime) -> Outlook:
    """One value for every hour (the annual table, a fixed value, a provider's fallback), saying so."""
    warning = f"{series.note}; {ANNUAL_WARNING}" if series.fallback and series.note else ANNUAL_WARNING
    value = series.points[0].intensity_g_per_kwh
    return Outlook(region, start, np.full(need_h, value), series.source, "annual average", now, warning)


def _from_trace(
    provider: object, region: str, start: datetime, job: Job, forecaster: str, *, given_at: bool
) -> Outlook:
    from wattwise.carbon.csvtrace import CsvTraceProvider

    need_h = horizon_h(job.duration_h, job.window_h, job.semantics)
    assert isinstance(provider, CsvTraceProvider)
    hourly = to_hourly(provider.series)
    if start < hourly.start + timedelta(days=7) or start > hourly.end:
        raise ConfigError(
            f"{provider.path.name} covers {hourly.start:%Y-%m-%d %H:%M} to {hourly.end:%Y-%m-%d %H:%M} UTC: the "
            f"submission ({start:%Y-%m-%d %H:%M} UTC) must fall inside it, after its first 7 days"
            + ("" if given_at else ": use a trace that covers now, or `schedule plan --at` to replay it")
        )
    if provider.has_forecast:
        fc = to_hourly(provider.forecast_series).between(start, start + timedelta(hours=need_h)).values
        if len(fc) >= need_h and not np.isnan(fc).any():
            actual = hourly.between(start, start + timedelta(hours=need_h)).values
            return Outlook(
                region,
                start,
                fc[:need_h],
                provider.source,
                "the trace's own forecast column",
                start,
                actual=actual if len(actual) >= need_h else None,
            )
    past = hourly.between(hourly.start, start)
    actual = hourly.between(start, start + timedelta(hours=need_h)).values
    if not given_at and len(actual) >= need_h and not np.isnan(actual[:need_h]).any():
        # Planning now on a file that holds the hours ahead: the file is the user's forecast.
        return Outlook(region, start, actual[:need_h], provider.source, "the trace's values for the hours ahead", start)
    return _forecast_from(
        past, region, start, job, forecaster, provider.source, actual if len(actual) >= need_h else None
    )


def _forecast_from(
    past: Hourly, region: str, start: datetime, job: Job, name: str, source: str, actual: np.ndarray | None
) -> Outlook:
    from wattwise.schedule.forecast import forecast, forecaster
    from wattwise.schedule.select import choose

    need_h = horizon_h(job.duration_h, job.window_h, job.semantics)
    # The history may end before the submission hour (a provider's delay): forecast across the gap.
    lag = int((start - past.end).total_seconds() // HOUR_S)
    chosen = choose(past, job) if name == "auto" else name
    values = forecast(forecaster(chosen), past.values, past.first_hour, need_h + lag)[lag:]
    label = f"forecaster {chosen} on {len(past.values)} h of history" + (" (chosen by auto)" if name == "auto" else "")
    return Outlook(region, start, values, source, label, past.end, actual=actual)


def model_outlook(
    service: IntensityService, hours: int, model: str, *, at: datetime | None = None, now: datetime | None = None
) -> Outlook:
    """``hours`` ahead from ``model`` (a forecaster name or ``auto``) on the provider's or the trace's history,
    whatever forecasts the provider itself publishes (``intensity forecast --model``)."""
    from wattwise.carbon.csvtrace import CsvTraceProvider

    start = hour_floor(at or now or datetime.now(UTC))
    job = Job(1, max(hours - 1, 0), "start")
    provider = service.provider
    if isinstance(provider, CsvTraceProvider):
        hourly = to_hourly(provider.series)
        past = hourly.between(hourly.start, start)
        if len(past.values) < 7 * 24 or start > hourly.end:
            raise ConfigError(
                f"{provider.path.name} covers {hourly.start:%Y-%m-%d %H:%M} to {hourly.end:%Y-%m-%d %H:%M} UTC: "
                "forecast as of a time inside it, after its first 7 days (--at)"
            )
        actual = hourly.between(start, start + timedelta(hours=hours)).values
        return _forecast_from(
            past, provider.region, start, job, model, provider.source, actual if len(actual) >= hours else None
        )
    history = service.history(start - timedelta(days=HISTORY_DAYS), start)
    if history.constant:
        raise ConfigError(
            f"{service.provider_name} gives one value for {service.region.code}, no history to forecast from: "
            "use a time-resolved provider or --trace"
        )
    return _forecast_from(to_hourly(history), service.region.code, start, job, model, history.source, None)
