"""Shared by the live providers: UTC timestamps, and raw points turned into one valid :class:`IntensitySeries`."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from wattwise.carbon.base import IntensityPoint, IntensitySeries, Signal
from wattwise.errors import ProviderError
from wattwise.validate import INTENSITY

ISO_MINUTE = "%Y-%m-%dT%H:%MZ"
ISO_SECOND = "%Y-%m-%dT%H:%M:%SZ"
_MAX_PERIOD_S = 31 * 86400.0  # a point that claims to hold longer than a month is not an intensity period


def utc(moment: datetime) -> datetime:
    """``moment`` in UTC; a naive datetime is taken to be UTC already (every provider documents UTC)."""
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def parse_utc(text: object) -> datetime:
    """An ISO 8601 timestamp from a provider (``Z``, an offset, or naive meaning UTC) as an aware UTC datetime."""
    if not isinstance(text, str):
        raise ValueError(f"not a timestamp: {text!r}")
    return utc(datetime.fromisoformat(text.strip()))


def number(value: object) -> float | None:
    """A finite, non-negative intensity, or None for null, missing, negative or non-numeric values."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    value = float(value)
    return value if math.isfinite(value) and value >= 0 else None


def chunks(start: datetime, end: datetime, size: timedelta) -> list[tuple[datetime, datetime]]:
    """``[start, end)`` cut into consecutive windows no longer than ``size``."""
    out: list[tuple[datetime, datetime]] = []
    while start < end:
        stop = min(end, start + size)
        out.append((start, stop))
        start = stop
    return out


def floor_hour(moment: datetime) -> datetime:
    return utc(moment).replace(minute=0, second=0, microsecond=0)


def ceil_hour(moment: datetime) -> datetime:
    floored = floor_hour(moment)
    return floored if floored == utc(moment) else floored + timedelta(hours=1)


@dataclass
class SeriesBuilder:
    """Collects a provider's points, then answers them sorted, without duplicates or overlaps, limited to a
    window, with a note for every value it had to leave out (never a zero in its place)."""

    region: str
    signal: Signal
    source: str
    provider: str  # for ProviderError.provider
    label: str  # for messages
    notes: list[str] = field(default_factory=list)
    _points: list[IntensityPoint] = field(default_factory=list)
    _missing: list[datetime] = field(default_factory=list)
    _implausible: list[datetime] = field(default_factory=list)

    def add(self, start: datetime, duration_s: float, value: object, *, forecast: bool = False) -> None:
        """One period's value; a missing one, or one outside the plausible range every entry point applies
        (:data:`wattwise.validate.INTENSITY`), is left out and counted in the note (never stored, never zero)."""
        intensity = number(value)
        if intensity is None:
            self._missing.append(start)
            return
        if not INTENSITY.contains(intensity) or not (0 < duration_s <= _MAX_PERIOD_S):
            self._implausible.append(start)
            return
        self._points.append(IntensityPoint(start, duration_s, intensity, forecast))

    def note(self, text: str) -> None:
        if text and text not in self.notes:
            self.notes.append(text)

    def build(self, window: tuple[datetime, datetime] | None = None, *, require_points: bool = True) -> IntensitySeries:
        points = sorted(self._points, key=lambda p: p.start)
        unique: list[IntensityPoint] = []
        for point in points:
            if unique and unique[-1].start == point.start:
                unique[-1] = point  # the later answer for the same period wins (a newer forecast or a correction)
                continue
            if unique and unique[-1].end > point.start:  # overlap: the earlier point ends where the next begins
                prev = unique[-1]
                unique[-1] = IntensityPoint(
                    prev.start, (point.start - prev.start).total_seconds(), prev.intensity_g_per_kwh, prev.forecast
                )
            unique.append(point)
        if window is not None:
            lo, hi = window
            unique = [p for p in unique if p.end > lo and p.start < hi]
            missing = [m for m in self._missing if lo <= m < hi]
        else:
            missing = self._missing
        notes = list(self.notes)
        if missing:
            first = min(missing).strftime(ISO_MINUTE)
            notes.append(f"{len(missing)} period(s) without a value skipped (first at {first})")
        implausible = self._implausible if window is None else [m for m in self._implausible if lo <= m < hi]
        if implausible:
            first = min(implausible).strftime(ISO_MINUTE)
            notes.append(
                f"{len(implausible)} value(s) outside {INTENSITY.describe()} or with an impossible period "
                f"skipped (first at {first})"
            )
        if require_points and not unique:
            where = "" if window is None else f" between {window[0]:%Y-%m-%d %H:%M} and {window[1]:%Y-%m-%d %H:%M} UTC"
            raise ProviderError(
                f"{self.label} returned no intensity values for {self.region}{where}: try another period or provider",
                provider=self.provider,
                retryable=False,
            )
        return IntensitySeries(
            region=self.region, signal=self.signal, source=self.source, points=tuple(unique), note="; ".join(notes)
        )


def field_of(data: Any, key: str, *, label: str, provider: str, where: str) -> Any:
    """``data[key]`` from a JSON object, or a ProviderError that names the missing field."""
    if not isinstance(data, dict) or key not in data:
        raise ProviderError(
            f"unexpected response from {label}: no {key!r} in the answer to {where}; try again later or report it",
            provider=provider,
        )
    return data[key]


def list_of(data: Any, *keys: str, label: str, provider: str, where: str) -> list[Any]:
    """The first of ``keys`` that holds a list in a JSON object, or a ProviderError."""
    if isinstance(data, dict):
        for key in keys:
            if isinstance(data.get(key), list):
                return list(data[key])
    wanted = " or ".join(repr(k) for k in keys)
    raise ProviderError(
        f"unexpected response from {label}: no list {wanted} in the answer to {where}; try again later or report it",
        provider=provider,
    )


def time_of(value: object, *, label: str, provider: str, where: str) -> datetime:
    """A provider's timestamp as UTC, or a ProviderError that quotes it."""
    try:
        return parse_utc(value)
    except ValueError:
        raise ProviderError(
            f"unexpected response from {label}: {value!r} in the answer to {where} is not an ISO 8601 time; "
            "try again later or report it",
            provider=provider,
        ) from None


def now_utc() -> datetime:
    return datetime.now(UTC)
