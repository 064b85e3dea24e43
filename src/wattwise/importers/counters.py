"""What every cluster counter shares: series read at two moments, and the energy between, with resets refused.

A :class:`CounterSpec` (DCGM's, Kepler's) turns one series of its metric into a :class:`Reading` (the figure it adds
into, its identity, its value in joules, when it was read), chooses the series a run is about, and names its
figures. :func:`increases` takes the readings at a run's start and at its end and gives the energy of each figure:
a counter that went down (the exporter, the driver or the container restarted) is refused, never turned into
negative or made-up energy; a series present at the start and gone at the end is refused too (its energy after
the last reading is unknown).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Protocol

from wattwise.errors import CounterError
from wattwise.report import numbers

if TYPE_CHECKING:
    import httpx

    from wattwise.records import ExternalFigure, Run

__all__ = ["CounterSpec", "Increase", "Reading", "checked", "increases", "scrape"]


@dataclass(frozen=True, slots=True)
class Reading:
    """One series of a counter read once. ``scope`` is the figure it adds into (``gpu 0 GPU-…``, ``pod ns/name``),
    ``key`` the series itself, ``about`` what the figure's detail says of it (a GPU model and host)."""

    scope: str
    key: str
    energy_j: float
    at: datetime
    labels: Mapping[str, str] = field(default_factory=dict)
    about: str = ""


@dataclass(frozen=True, slots=True)
class Increase:
    """The energy one figure's series gained between two readings (``started_at``/``ended_at``: when they were
    read), from ``series`` series, of which ``late`` appeared after the first reading (counted from zero)."""

    scope: str
    energy_j: float
    started_at: datetime
    ended_at: datetime
    series: int
    late: int = 0
    about: str = ""

    def figure(self, source: str, detail: str) -> ExternalFigure:
        """This increase as the record keeps it, beside wattwise's figures."""
        from wattwise.records import ExternalFigure

        return ExternalFigure(
            source=source,
            scope=self.scope,
            energy_j=self.energy_j,
            started_at=self.started_at,
            ended_at=self.ended_at,
            detail=detail,
        )


class CounterSpec(Protocol):
    """One cluster counter: its metric, how a series becomes a reading, which series a run is about."""

    @property
    def source(self) -> str:
        """The counter's name in records: ``dcgm``, ``kepler``."""
        ...

    @property
    def metric(self) -> str:
        """The metric it reads."""
        ...

    @property
    def late_from_zero(self) -> bool:
        """Whether a series that appears during the run started then (a container) and counts from zero."""
        ...

    def reading(self, labels: Mapping[str, str], value: float, at: datetime) -> Reading | None:
        """The series as a reading (its value converted to joules), or None when it is not one this spec counts."""
        ...

    def select(self, readings: Sequence[Reading], run: Run, where: str) -> list[Reading]:
        """The readings of the series ``run`` is about; CounterError when there are none (``where``: whose answer)."""
        ...

    def figure(self, increase: Increase, how: str) -> ExternalFigure:
        """The record of one figure; ``how`` says how the counter was read (from where, at which moments)."""
        ...


def checked(readings: Sequence[Reading], what: str) -> dict[str, Reading]:
    """The readings by series, each checked to hold an energy (finite, not negative); CounterError names the first
    that does not (``what``: the counter and where it was read)."""
    by_key: dict[str, Reading] = {}
    for reading in readings:
        if not math.isfinite(reading.energy_j) or reading.energy_j < 0:
            raise CounterError(
                f"{what}: {reading.scope} reads {reading.energy_j!r}, which no energy counter can hold; "
                "nothing was stored"
            )
        by_key.setdefault(reading.key, reading)  # the same series listed twice (a GPU shared by pods): read once
    return by_key


def increases(
    start: Sequence[Reading], end: Sequence[Reading], *, what: str, late_from_zero: bool = False
) -> list[Increase]:
    """Each figure's energy between the ``start`` and ``end`` readings, figures in the order of ``end``.

    ``late_from_zero``: a series seen only at the end started during the run (a container) and counts from zero;
    otherwise it is refused. ``what`` names the counter and where it was read, for the one-line errors.
    """
    before = checked(start, what)
    after = checked(end, what)
    gone = [r.scope for key, r in before.items() if key not in after]
    if gone:
        raise CounterError(
            f"{what}: {gone[0]} was read when the run started but is gone at its end (removed or restarted), so "
            "its energy cannot be known; nothing was stored"
        )
    totals: dict[str, Increase] = {}
    for key, last in after.items():
        first = before.get(key)
        if first is None and not late_from_zero:
            raise CounterError(
                f"{what}: {last.scope} appeared during the run (it was not there at its start), so its energy over "
                "the run cannot be known; nothing was stored"
            )
        begin_j = 0.0 if first is None else first.energy_j
        if last.energy_j < begin_j:
            raise CounterError(
                f"{what}: the counter of {last.scope} went down during the run (from {numbers.energy_j(begin_j)} to "
                f"{numbers.energy_j(last.energy_j)}): it was reset (the exporter, the driver or the node restarted), "
                "so the run's energy cannot be read from it; nothing was stored"
            )
        started = last.at if first is None else first.at
        sum_so_far = totals.get(last.scope)
        if sum_so_far is None:
            totals[last.scope] = Increase(
                last.scope, last.energy_j - begin_j, started, last.at, 1, int(first is None), last.about
            )
        else:
            totals[last.scope] = Increase(
                last.scope,
                sum_so_far.energy_j + last.energy_j - begin_j,
                min(sum_so_far.started_at, started),
                max(sum_so_far.ended_at, last.at),
                sum_so_far.series + 1,
                sum_so_far.late + int(first is None),
                sum_so_far.about,
            )
    return list(totals.values())


def scrape(
    url: str, spec: CounterSpec, exporter: str, *, timeout_s: float, transport: httpx.BaseTransport | None = None
) -> list[Reading]:
    """Every series of ``spec``'s metric an exporter's ``/metrics`` serves now, as readings (``exporter`` names it)."""
    from wattwise.importers.exposition import parse
    from wattwise.importers.fetch import get_text, shown_url
    from wattwise.records import utc_now

    shown = shown_url(url)
    text = get_text(url, exporter, timeout_s=timeout_s, transport=transport)
    at = utc_now()
    series = parse(text, (spec.metric,), f"{exporter} at {shown}")
    if not series:
        raise CounterError(
            f"{exporter} at {shown} serves no {spec.metric}: is that its /metrics page, and does it export this metric?"
        )
    readings = (spec.reading(s.labels, s.value, at) for s in series)
    return [r for r in readings if r is not None]
