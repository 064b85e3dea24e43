"""Intensity from a CSV file of a historical or forecast series, and a fixed value.

:class:`CsvTraceProvider` reads one file once, when it is built, with the ``csv`` module (a year of 15-minute data,
35,000 rows, takes a fraction of a second), and answers ``latest``/``history``/``forecast`` from memory.

Layouts it recognises by their header (the first line; a UTF-8 byte-order mark is ignored), and how it reads
timestamps that carry no UTC offset ("naive"):

- ``wattwise``: ``timestamp,intensity_g_per_kwh[,zone]``, ISO-8601 timestamps with an offset (``Z``, ``+01:00``).
  Naive timestamps are rejected. This is the layout to write by hand or from other tools.
- ``dacf``: ``UTC time,carbon_intensity,...`` (DACF, Maji et al. 2022). Naive = UTC: the header says so.
- ``dacf-forecast``: ``,UTC time,carbon_intensity,carbon_from_src_forecasts,...``. Naive = UTC, as above.
- ``electricitymaps``: ``Datetime (UTC),...,Zone Id,Carbon Intensity gCO₂eq/kWh (direct),Carbon Intensity
  gCO₂eq/kWh (LCA),...`` (Electricity Maps exports). Naive = UTC: the header says so.
- ``lets-wait-awhile``: ``Time,Carbon Intensity`` (Wiesner et al. 2021). Naive = UTC, *inferred* by the data's
  curator (the timestamps run through daylight-saving changes without gaps); the series note says so.

Rules (each one tested in tests/carbon/test_csvtrace.py):

- **Which column.** Electricity Maps exports carry two signals; the life-cycle (LCA) column is used unless
  ``emission_factor="direct"``. DACF forecast files: ``history``/``latest`` use ``carbon_intensity`` (the actual
  value) and ``forecast`` uses ``carbon_from_src_forecasts`` (the day-ahead forecast).
- **Units.** The value must be gCO2(eq)/kWh. A unit in the value column's header is read: ``intensity_kg_per_kwh``,
  ``intensity (lbs/MWh)``, ``gCO₂eq/kWh`` and the like (g, kg, t or lb per kWh or MWh) are converted with
  :mod:`wattwise.units`; a header naming any other unit is rejected with one line naming the column. A header with
  no unit means g/kWh, as every recognised layout documents.
- **Time zones.** Every point is stored in UTC. Naive timestamps are taken as UTC only for the layouts above whose
  source states UTC (and for lets-wait-awhile, where the note says it is inferred); in the ``wattwise`` layout
  they are rejected. An explicit offset (``+01:00``) is converted to UTC and the note says how many were.
- **Resolution** is the median step between consecutive timestamps (15 min to hourly in the shared files; anything
  from 1 minute to 1 day is accepted). A point holds until the next timestamp, so irregular files (30-minute
  steps that become 15-minute ones) keep every value.
- **Gaps.** The missing span after a point is the time from the end of its own step to the next timestamp. Up to
  2 steps it is bridged by holding the point's value; a longer one is left as a gap, so ``mean_over`` a window that
  touches it is None. The series note counts both kinds and names the first gap.
- **Duplicates.** Rows with the same timestamp and the same value collapse into one; the same timestamp with a
  different value raises :class:`~wattwise.errors.ConfigError` naming both rows. Rows out of order are sorted.
- **Bad rows.** An unparseable timestamp or value, a missing cell, or an intensity outside the plausible range every
  entry point applies (0 to 5,000 g/kWh after unit conversion, :data:`wattwise.validate.INTENSITY`: NaN, negative
  values and 1e300 among them) raises ``ConfigError("FILE:ROW: ...")``, one line, ROW being the line number in the
  file (the header is line 1).
- **Zones.** ``zone`` arguments are checked against the file's zone column where it has one (Electricity Maps
  ``Zone Id``, wattwise ``zone``); a file without one answers for any zone. ``forecast`` answers with the points
  at or after now (the clock is injectable); a file that ends before now cannot forecast and says so.

:class:`FixedProvider` answers every question with one constant value.
"""

from __future__ import annotations

import bisect
import csv
import itertools
import math
import re
import statistics
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Literal

from wattwise.carbon.base import IntensityPoint, IntensitySeries, constant_series
from wattwise.carbon.providers._series import utc
from wattwise.errors import ConfigError, ProviderError
from wattwise.units import g_per_mwh_to_g_per_kwh, kg_per_kwh_to_g_per_kwh, lbs_per_mwh_to_g_per_kwh
from wattwise.validate import INTENSITY

EmissionFactor = Literal["lifecycle", "direct"]
MAX_BRIDGED_STEPS = 2
_FIRST_YEAR, _LAST_YEAR = 1990, 2100  # grid intensity series: anything outside is a wrong date, not data
_MIN_STEP_S, _MAX_STEP_S = 60.0, 86_400.0
_UNIT = re.compile(
    r"(?<![a-z])(kg|g|t|lbs?)\s*(?:co(?:2|₂)(?:e|eq)?)?\s*(?:/|_per_|\s+per\s+)\s*(kwh|mwh)(?![a-z])", re.IGNORECASE
)
_BARE = re.compile(r"^\s*(?:carbon[\s_]*)?intensity\s*", re.IGNORECASE)  # a name with no unit after it
_TO_G_PER_KWH: dict[tuple[str, str], Callable[[float], float]] = {
    ("g", "kwh"): float,
    ("g", "mwh"): g_per_mwh_to_g_per_kwh,
    ("kg", "kwh"): kg_per_kwh_to_g_per_kwh,
    ("kg", "mwh"): float,  # kg/MWh is numerically g/kWh
    ("t", "mwh"): kg_per_kwh_to_g_per_kwh,  # t/MWh is numerically kg/kWh
    ("lb", "mwh"): lbs_per_mwh_to_g_per_kwh,
}


@dataclass(frozen=True, slots=True)
class _Layout:
    name: str
    time_col: int
    value_col: int
    forecast_col: int | None
    zone_col: int | None
    naive_is_utc: bool
    description: str


def _find(header: list[str], *names: str) -> int | None:
    lowered = [h.strip().lower() for h in header]
    for name in names:
        if name in lowered:
            return lowered.index(name)
    return None


def _detect(path: Path, header: list[str], emission_factor: EmissionFactor) -> _Layout:
    low = [h.strip().lower() for h in header]
    if "datetime (utc)" in low:
        tag = "(lca)" if emission_factor == "lifecycle" else "(direct)"
        value = next((i for i, h in enumerate(low) if h.startswith("carbon intensity") and h.endswith(tag)), None)
        if value is None:
            raise ConfigError(f"{path}: Electricity Maps export without a 'Carbon Intensity ... {tag}' column")
        kind = "life-cycle" if emission_factor == "lifecycle" else "direct"
        time_col, zone_col = low.index("datetime (utc)"), _find(header, "zone id")
        return _Layout("electricitymaps", time_col, value, None, zone_col, True, f"Electricity Maps export, {kind}")
    if "utc time" in low and "carbon_intensity" in low:
        fc = _find(header, "carbon_from_src_forecasts")
        name = "dacf-forecast" if fc is not None else "dacf"
        desc = "DACF actuals and day-ahead forecast, direct" if fc is not None else "DACF, direct"
        return _Layout(name, low.index("utc time"), low.index("carbon_intensity"), fc, None, True, desc)
    if low[:2] == ["time", "carbon intensity"]:
        return _Layout("lets-wait-awhile", 0, 1, None, None, True, "lets-wait-awhile layout, UTC inferred")
    value = next((i for i, h in enumerate(low) if h.startswith("intensity")), None)
    if "timestamp" in low and value is not None:
        return _Layout("wattwise", low.index("timestamp"), value, None, _find(header, "zone"), False, "wattwise")
    raise ConfigError(
        f"{path}: unrecognised header {','.join(header)[:120]!r}; expected 'timestamp,intensity_g_per_kwh' or a "
        "DACF, Electricity Maps or lets-wait-awhile export (see wattwise.carbon.csvtrace)"
    )


def _converter(path: Path, column: str) -> Callable[[float], float]:
    match = _UNIT.search(column)
    if match:
        mass = match.group(1).lower().rstrip("s") if match.group(1).lower().startswith("lb") else match.group(1).lower()
        convert = _TO_G_PER_KWH.get((mass, match.group(2).lower()))
        if convert is not None:
            return convert
    elif not _BARE.sub("", column).strip(" _"):
        return float  # no unit in the header: the layout's documented g/kWh
    raise ConfigError(f"{path}: column {column!r} is not in g/kWh and wattwise cannot convert its unit; convert it")


class CsvTraceProvider:
    """An intensity series read from a CSV file; see the module docstring for layouts and rules."""

    name = "csv"

    def __init__(
        self,
        path: str | Path,
        *,
        zone: str | None = None,
        emission_factor: EmissionFactor = "lifecycle",
        now: Callable[[], datetime] | None = None,
    ) -> None:
        self.path = Path(path)
        self._now = now or (lambda: datetime.now(UTC))
        try:
            with self.path.open(encoding="utf-8-sig", newline="") as fh:
                rows = list(csv.reader(fh))
        except OSError as exc:
            raise ConfigError(f"{self.path}: cannot read the intensity trace ({exc.strerror or exc})") from exc
        except UnicodeDecodeError as exc:
            raise ConfigError(f"{self.path}: not a UTF-8 text file ({exc.reason})") from exc
        except csv.Error as exc:  # a field over the csv module's size limit, a NUL byte
            raise ConfigError(f"{self.path}: not a CSV intensity trace ({exc})") from None
        if not rows:
            raise ConfigError(f"{self.path}: empty file, expected a header and rows")
        layout = _detect(self.path, rows[0], emission_factor)
        self.layout = layout.name
        self.column = rows[0][layout.value_col].strip()
        convert = _converter(self.path, rows[0][layout.value_col])
        times, values, forecasts, zones, shifted = self._parse(rows, layout, convert)
        self.file_zone = zones.pop() if len(zones) == 1 else None
        if len(zones) > 1:
            raise ConfigError(f"{self.path}: holds several zones ({', '.join(sorted(zones))}); split it per zone")
        self.region = zone or self.file_zone or self.path.stem
        self.step_s = statistics.median(b - a for a, b in itertools.pairwise(times)) if len(times) > 1 else 0
        if len(times) > 1 and not _MIN_STEP_S <= self.step_s <= _MAX_STEP_S:
            raise ConfigError(f"{self.path}: median step of {self.step_s:.0f} s is outside 1 minute to 1 day")
        self.step_s = self.step_s or 3600.0
        self._points, gap_note = self._build(times, values, forecast=False)
        self._forecast_points = self._build(times, forecasts, forecast=True)[0] if forecasts else None
        self._starts = [p.start.timestamp() for p in self._points]
        notes = [f"step {self.step_s / 60:g} min", gap_note] if gap_note else [f"step {self.step_s / 60:g} min"]
        if shifted:
            notes.append(f"{shifted} timestamps with a UTC offset converted to UTC")
        if layout.name == "lets-wait-awhile":
            notes.append("naive timestamps taken as UTC (inferred by the data's curator, not stated by its source)")
        self.note = "; ".join(notes)
        self.source = f"csv:{self.path.name} ({layout.description})"

    def _parse(
        self, rows: list[list[str]], layout: _Layout, convert: Callable[[float], float]
    ) -> tuple[list[float], list[float], list[float], set[str], int]:
        seen: dict[float, tuple[float, float | None, int]] = {}
        zones: set[str] = set()
        shifted = 0
        for lineno, row in enumerate(rows[1:], start=2):
            if not row or not any(cell.strip() for cell in row):
                continue
            where = f"{self.path}:{lineno}"
            try:
                stamp, raw = row[layout.time_col].strip(), row[layout.value_col].strip()
                raw_fc = row[layout.forecast_col].strip() if layout.forecast_col is not None else None
            except IndexError:
                raise ConfigError(f"{where}: {len(row)} cells, fewer than the header's columns") from None
            try:
                moment = datetime.fromisoformat(stamp)
            except ValueError:
                raise ConfigError(f"{where}: timestamp {stamp!r} is not ISO-8601") from None
            if moment.tzinfo is None:
                if not layout.naive_is_utc:
                    raise ConfigError(f"{where}: timestamp {stamp!r} has no UTC offset; write it as ...Z or +00:00")
            elif moment.utcoffset() != timedelta(0):
                shifted += 1
            try:
                aware = moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)
            except OverflowError:
                aware = None
            if aware is None or not _FIRST_YEAR <= aware.year <= _LAST_YEAR:
                raise ConfigError(f"{where}: timestamp {stamp!r} is outside {_FIRST_YEAR} to {_LAST_YEAR}")
            ts = aware.timestamp()
            value = self._value(where, raw, convert)
            fc_value = self._value(where, raw_fc, convert) if raw_fc is not None else None
            if layout.zone_col is not None and len(row) > layout.zone_col and row[layout.zone_col].strip():
                zones.add(row[layout.zone_col].strip())
            if ts in seen:
                other, other_fc, other_line = seen[ts]
                if other != value or other_fc != fc_value:
                    raise ConfigError(
                        f"{where}: duplicate timestamp {stamp} with {value:g} g/kWh; line {other_line} has {other:g}"
                    )
                continue
            seen[ts] = (value, fc_value, lineno)
        if not seen:
            raise ConfigError(f"{self.path}: no data rows after the header")
        times = sorted(seen)
        values = [seen[t][0] for t in times]
        forecasts = [seen[t][1] or 0.0 for t in times] if layout.forecast_col is not None else []
        return times, values, forecasts, zones, shifted

    @staticmethod
    def _value(where: str, raw: str, convert: Callable[[float], float]) -> float:
        try:
            value = convert(float(raw))
        except ValueError:
            raise ConfigError(f"{where}: intensity {raw!r} is not a number") from None
        if not INTENSITY.contains(value):
            raise ConfigError(
                f"{where}: intensity {raw!r} is outside the plausible range, {INTENSITY.describe()} ({INTENSITY.why})"
            )
        return value

    def _build(self, times: list[float], values: list[float], *, forecast: bool) -> tuple[list[IntensityPoint], str]:
        step, points = self.step_s, []
        bridged, gaps, first_gap = 0, 0, ""
        for i, (ts, value) in enumerate(zip(times, values, strict=True)):
            duration = step
            if i + 1 < len(times):
                delta = times[i + 1] - ts
                if delta - step <= MAX_BRIDGED_STEPS * step + 1e-6:
                    bridged += delta > step * 1.5
                    duration = delta
                else:
                    gaps += 1
                    if not first_gap:
                        start = datetime.fromtimestamp(ts + step, UTC).isoformat()
                        first_gap = f"{start} to {datetime.fromtimestamp(times[i + 1], UTC).isoformat()}"
            points.append(IntensityPoint(datetime.fromtimestamp(ts, UTC), duration, value, forecast))
        parts = []
        if bridged:
            parts.append(f"{bridged} short gaps (up to {MAX_BRIDGED_STEPS} steps) bridged by holding the last value")
        if gaps:
            parts.append(f"{gaps} longer gaps left empty (first {first_gap})")
        return points, "; ".join(parts)

    # -- the IntensityProvider interface ------------------------------------------------------------------------------

    @property
    def series(self) -> IntensitySeries:
        """Every value in the file (actuals), as one series."""
        return self._series(self._points)

    @property
    def has_forecast(self) -> bool:
        """Whether the file holds a forecast column (DACF day-ahead forecasts)."""
        return self._forecast_points is not None

    @property
    def forecast_series(self) -> IntensitySeries:
        """The forecast column as one series (the actuals where the file has none)."""
        return self._series(self._forecast_points or self._points)

    def latest(self, zone: str) -> IntensitySeries:
        self.check_zone(zone)
        return self._series(self._points[-1:])

    def history(self, zone: str, start: datetime, end: datetime) -> IntensitySeries:
        self.check_zone(zone)
        start, end = utc(start), utc(end)
        first, last = self._points[0].start, self._points[-1].end
        if end <= first or start >= last:
            raise ProviderError(
                f"{self.path.name} covers {first.isoformat()} to {last.isoformat()}, nothing in "
                f"[{start.isoformat()}, {end.isoformat()})",
                provider=self.name,
            )
        lo = max(bisect.bisect_right(self._starts, start.timestamp()) - 1, 0)
        hi = bisect.bisect_left(self._starts, end.timestamp())
        return self._series(self._points[lo:hi])

    def forecast(self, zone: str, hours: float) -> IntensitySeries:
        self.check_zone(zone)
        points = self._forecast_points or self._points
        now = self._now()
        end = now + timedelta(hours=hours)
        chosen = [p for p in points if p.end > now and p.start < end]
        if not chosen:
            raise ProviderError(
                f"{self.path.name} ends at {points[-1].end.isoformat()}: it holds no values for the next {hours:g} h",
                provider=self.name,
            )
        if self._forecast_points is None:
            chosen = [IntensityPoint(p.start, p.duration_s, p.intensity_g_per_kwh, True) for p in chosen]
        return self._series(chosen)

    def _series(self, points: list[IntensityPoint]) -> IntensitySeries:
        return IntensitySeries(
            region=self.region, signal="average", source=self.source, points=tuple(points), note=self.note
        )

    def check_zone(self, zone: str) -> None:
        """A trace that names its zone must be the one asked for (bad input, not an outage)."""
        if zone and self.file_zone and zone.strip().upper() != self.file_zone.upper():
            raise ConfigError(
                f"{self.path.name} holds zone {self.file_zone}, not {zone}; pick the file for that zone or "
                "drop --region"
            )


class FixedProvider:
    """One constant intensity for every zone and time (``--provider fixed``)."""

    name = "fixed"

    def __init__(self, intensity_g_per_kwh: float) -> None:
        if not math.isfinite(intensity_g_per_kwh) or intensity_g_per_kwh < 0:
            raise ConfigError(f"fixed intensity must be a non-negative number of g/kWh, not {intensity_g_per_kwh!r}")
        self.intensity_g_per_kwh = float(intensity_g_per_kwh)
        self.source = f"fixed value {self.intensity_g_per_kwh:g} g/kWh (set by the user)"

    def _series(self, zone: str) -> IntensitySeries:
        return constant_series(zone or "fixed", self.intensity_g_per_kwh, self.source)

    def latest(self, zone: str) -> IntensitySeries:
        return self._series(zone)

    def history(self, zone: str, start: datetime, end: datetime) -> IntensitySeries:
        return self._series(zone)

    def forecast(self, zone: str, hours: float) -> IntensitySeries:
        return self._series(zone)
