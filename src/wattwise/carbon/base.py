"""The one shape every carbon-intensity provider returns, and the interface they implement.

An :class:`IntensitySeries` is a step function of time: each :class:`IntensityPoint` holds from ``start`` (UTC)
for ``duration_s``. Live providers (Electricity Maps, WattTime, the UK Carbon Intensity API), CSV files and fixed
values all answer with it, and the record of a run keeps which provider answered, whether it fell back to the
packaged table, and whether the signal is an *average* (attributional) or a *marginal* one.
"""

from __future__ import annotations

import bisect
import math
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Literal, Protocol, runtime_checkable

Signal = Literal["average", "marginal"]
SIGNALS: tuple[Signal, ...] = ("average", "marginal")


@dataclass(frozen=True, slots=True)
class IntensityPoint:
    """Grid carbon intensity over ``[start, start + duration_s)``."""

    start: datetime  # timezone-aware, UTC
    duration_s: float
    intensity_g_per_kwh: float
    forecast: bool = False

    @property
    def end(self) -> datetime:
        return self.start + timedelta(seconds=self.duration_s)


@dataclass(frozen=True, slots=True)
class IntensitySeries:
    """What a provider answered for one region: sorted, non-overlapping points and where they came from.

    ``source`` names the provider and dataset; ``fallback`` is true when the provider could not answer and the
    packaged annual table did; ``note`` says why (the error, the cache age, the gap that was bridged).
    """

    region: str
    signal: Signal
    source: str
    points: tuple[IntensityPoint, ...]
    fallback: bool = False
    note: str = ""
    plan_limit: bool = False  # the fallback happened because the provider's plan does not include the request
    _starts: tuple[float, ...] = field(default=(), init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        for earlier, later in zip(self.points, self.points[1:], strict=False):
            if later.start < earlier.end - timedelta(microseconds=1):
                raise ValueError(f"intensity points overlap or are unsorted at {later.start.isoformat()}")
        object.__setattr__(self, "_starts", tuple(p.start.timestamp() for p in self.points))

    @property
    def constant(self) -> bool:
        return len(self.points) == 1 and math.isinf(self.points[0].duration_s)

    def at(self, moment: datetime) -> IntensityPoint | None:
        """The point in effect at ``moment``, or None outside the series."""
        if not self.points:
            return None
        if self.constant:
            return self.points[0]
        i = bisect.bisect_right(self._starts, moment.timestamp()) - 1
        if i < 0:
            return None
        point = self.points[i]
        return point if moment < point.end else None

    def overlapping(self, start: datetime, end: datetime) -> tuple[IntensityPoint, ...]:
        """The points that apply to some part of ``[start, end]`` (none for a constant series)."""
        if self.constant or not self.points:
            return ()
        first = max(0, bisect.bisect_right(self._starts, start.timestamp()) - 1)
        last = bisect.bisect_right(self._starts, end.timestamp())
        return tuple(p for p in self.points[first:last] if p.end > start)

    def mean_over(self, start: datetime, end: datetime) -> float | None:
        """Time-weighted mean intensity over ``[start, end)``; None when the series does not cover it all."""
        if end <= start:
            point = self.at(start)
            return None if point is None else point.intensity_g_per_kwh
        if self.constant:
            return self.points[0].intensity_g_per_kwh
        t0, t1 = start.timestamp(), end.timestamp()
        i = bisect.bisect_right(self._starts, t0) - 1
        if i < 0:
            return None
        covered = weighted = 0.0
        while i < len(self.points) and self._starts[i] < t1:
            p = self.points[i]
            lo, hi = max(t0, self._starts[i]), min(t1, self._starts[i] + p.duration_s)
            if hi > lo:
                covered += hi - lo
                weighted += (hi - lo) * p.intensity_g_per_kwh
            i += 1
        if covered < (t1 - t0) * (1 - 1e-9):
            return None
        return weighted / covered


def constant_series(
    region: str,
    intensity_g_per_kwh: float,
    source: str,
    *,
    signal: Signal = "average",
    fallback: bool = False,
    note: str = "",
    plan_limit: bool = False,
) -> IntensitySeries:
    """A series that holds one value at all times (annual tables, fixed values)."""
    point = IntensityPoint(datetime(1970, 1, 1, tzinfo=UTC), math.inf, intensity_g_per_kwh)
    return IntensitySeries(
        region=region,
        signal=signal,
        source=source,
        points=(point,),
        fallback=fallback,
        note=note,
        plan_limit=plan_limit,
    )


@runtime_checkable
class IntensityProvider(Protocol):
    """A source of grid intensity. Every method answers for a region already resolved to this provider's
    zone name (see ``wattwise.carbon.regions``) and raises ``ProviderError`` when it cannot."""

    name: str

    def latest(self, zone: str) -> IntensitySeries:
        """The most recent value (one point)."""
        ...

    def history(self, zone: str, start: datetime, end: datetime) -> IntensitySeries:
        """Past values covering ``[start, end)`` as far as the provider has them."""
        ...

    def forecast(self, zone: str, hours: float) -> IntensitySeries:
        """Values from now for ``hours`` ahead, flagged ``forecast=True``."""
        ...
