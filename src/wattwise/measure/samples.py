"""Which samples of the power time series are kept: full resolution at first, coarser as a run grows long.

The totals, windows and epochs never depend on this: they are differences of counter readings. The time series
(``wattwise runs show --samples``, reports' power plots) is kept at a resolution that depends on how long the run
has been going, so a week-long run stores tens of thousands of rows per channel, not millions:

================================  ======================================
elapsed time of the sample        one sample per channel every
================================  ======================================
the first hour                    sampling interval (``interval_s``)
from 1 h to 24 h                  10 s (or the interval, if longer)
after 24 h                        60 s (or the interval, if longer)
================================  ======================================

A kept sample covers its whole bucket: its power is the mean over the bucket (energy difference ÷ time) and its
``energy_j`` the cumulative energy at the bucket's end, so the energy under the coarse series is exactly the
energy under the fine one. At one channel, 1 s sampling: 3,600 + 8,280 rows the first day, 1,440 a day after.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from wattwise.devices.base import Channel
from wattwise.measure import accounting
from wattwise.measure.meters import Reading
from wattwise.records import Attribution, Sample

__all__ = ["TIERS", "SampleThinner", "resolution_s"]

# (from this elapsed time on, keep one sample per this many seconds)
TIERS: tuple[tuple[float, float], ...] = ((0.0, 0.0), (3600.0, 10.0), (86_400.0, 60.0))


def resolution_s(elapsed_s: float, interval_s: float) -> float:
    """The bucket width for a sample ending ``elapsed_s`` after the run started."""
    width = 0.0
    for start, step in TIERS:
        if elapsed_s >= start:
            width = step
    return max(interval_s, width)


class SampleThinner:
    """Turns the sampler's readings into the samples to keep (see the module docstring)."""

    def __init__(
        self,
        channels: Sequence[Channel],
        origin: Reading,
        attribution: Attribution,
        interval_s: float,
        resolution: Callable[[float, float], float] = resolution_s,
    ) -> None:
        self._channels = tuple(channels)
        self._origin = origin
        self._attribution = attribution
        self._interval_s = interval_s
        self._resolution = resolution
        self._bucket_start = origin
        self._pending: Reading | None = None

    def add(self, reading: Reading) -> list[Sample]:
        """The samples to keep now that ``reading`` was taken (none while its bucket is still filling)."""
        elapsed = reading.t_s - self._origin.t_s
        width = self._resolution(elapsed, self._interval_s)
        # a reading within 5 % of the bucket's end closes it (the sampler's interval jitters)
        if reading.t_s - self._bucket_start.t_s >= width * 0.95:
            return self._emit(reading)
        self._pending = reading
        return []

    def flush(self, reading: Reading | None = None) -> list[Sample]:
        """The partial bucket, up to ``reading`` (the final one) or the last reading seen."""
        last = reading if reading is not None else self._pending
        if last is None or last.t_s <= self._bucket_start.t_s:
            return []
        return self._emit(last)

    def _emit(self, reading: Reading) -> list[Sample]:
        samples = accounting.samples(self._channels, self._origin, self._bucket_start, reading, self._attribution)
        self._bucket_start = reading
        self._pending = None
        return samples
