"""An intensity series on the hourly UTC grid the scheduler works on.

:func:`to_hourly` turns any :class:`~wattwise.carbon.base.IntensitySeries` (15-minute, 30-minute, irregular,
hourly) into time-weighted hourly means, hour ``h`` covering ``[h, h + 1)``. An hour less than half covered is
missing (NaN): the planner never schedules into a gap and evaluation skips submissions that touch one.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import numpy as np

from wattwise.carbon.base import IntensitySeries
from wattwise.errors import ConfigError

HOUR_S = 3600.0
_MIN_COVER = 0.5  # an hour needs half its span covered to get a value


@dataclass(frozen=True, slots=True)
class Hourly:
    """Hourly mean intensities (g/kWh) from ``start`` (a whole UTC hour); NaN where the source has a gap."""

    start: datetime
    values: np.ndarray

    @property
    def first_hour(self) -> int:
        """Hours since the Unix epoch of the first value."""
        return int(self.start.timestamp() // HOUR_S)

    @property
    def end(self) -> datetime:
        return self.start + timedelta(hours=len(self.values))

    def index(self, moment: datetime) -> int:
        """The index of the hour holding ``moment`` (may be outside the array)."""
        return math.floor(moment.timestamp() / HOUR_S) - self.first_hour

    def hour(self, index: int) -> datetime:
        return self.start + timedelta(hours=index)

    def between(self, start: datetime, end: datetime) -> Hourly:
        """The hours from the one holding ``start`` up to (not including) the one holding ``end``."""
        lo, hi = max(self.index(start), 0), min(self.index(end), len(self.values))
        return Hourly(self.hour(lo), self.values[lo : max(hi, lo)])


def to_hourly(series: IntensitySeries) -> Hourly:
    """Time-weighted hourly means of a (non-constant) series; see the module docstring."""
    if series.constant or not series.points:
        raise ConfigError(f"{series.source or series.region}: a single annual value has no hours to shift between")
    first = math.floor(series.points[0].start.timestamp() / HOUR_S)
    last = math.ceil(series.points[-1].end.timestamp() / HOUR_S)
    n = last - first
    starts = np.array([p.start.timestamp() / HOUR_S - first for p in series.points])
    ends = starts + np.array([p.duration_s / HOUR_S for p in series.points])
    values = np.array([p.intensity_g_per_kwh for p in series.points])
    weighted, covered = np.zeros(n), np.zeros(n)
    # Each point adds to the hours it overlaps; points are at most a day long, so the loop over offsets is short.
    lo = np.floor(starts).astype(np.int64)
    span = int(np.max(np.ceil(ends) - lo)) if len(lo) else 0
    for k in range(span):
        h = lo + k
        overlap = np.clip(np.minimum(ends, h + 1) - np.maximum(starts, h), 0.0, None)
        ok = (overlap > 0) & (h < n)
        np.add.at(weighted, h[ok], overlap[ok] * values[ok])
        np.add.at(covered, h[ok], overlap[ok])
    with np.errstate(invalid="ignore", divide="ignore"):
        hourly = np.where(covered >= _MIN_COVER, weighted / np.maximum(covered, 1e-12), np.nan)
    return Hourly(datetime.fromtimestamp(first * HOUR_S, UTC), hourly)
