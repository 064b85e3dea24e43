"""A set of power sources read together, against one host snapshot per read.

``MeterSet.read()`` returns a :class:`Reading`: the cumulative energy of every channel at one instant. The
tracker's windows, samples and totals are differences of two readings. A reading that fails (an error, or a
number that is not finite) is skipped; a source that fails three readings in a row is dropped, its energy up to
then is kept, and the run's notes say so and when (never a silent zero). A host snapshot that cannot be taken
(``/proc`` unreadable for a moment) skips the whole reading: the next one covers the interval.
"""

from __future__ import annotations

import dataclasses
import math
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from wattwise.devices.base import Channel, HostSnapshot, MeterReading, PowerSource
from wattwise.devices.host import HostReader
from wattwise.errors import DeviceError


@dataclass(frozen=True, slots=True)
class Reading:
    """Cumulative energy per channel (same order as ``MeterSet.channels``) at one instant."""

    t_s: float  # time.monotonic()
    wall_s: float  # time.time()
    machine_j: tuple[float, ...]
    attributed_j: tuple[float, ...]
    snapshot: HostSnapshot
    co2e_g: float = 0.0  # cumulative emissions since the meter set opened (see MeterSet's ``carbon``)


@dataclass(slots=True)
class SourceErrors:
    """What went wrong with one source: how many readings failed, the first and last message, and when (monotonic
    seconds) it was dropped, if it was."""

    count: int = 0
    first: str = ""
    last: str = ""
    first_t_s: float = 0.0
    dropped_t_s: float | None = None


CarbonIntegrator = Callable[["Reading", "Reading"], float]
MAX_CONSECUTIVE_FAILURES = 3


def unique_channels(sources: Sequence[PowerSource]) -> list[Channel]:
    """Every source's channels in order; a name used twice gets ``#2``, ``#3`` (two sources must never be
    recorded under one name: the record would add them up wrongly)."""
    seen: dict[str, int] = {}
    channels: list[Channel] = []
    for source in sources:
        for channel in source.channels():
            count = seen.get(channel.name, 0) + 1
            seen[channel.name] = count
            channels.append(channel if count == 1 else dataclasses.replace(channel, name=f"{channel.name}#{count}"))
    return channels


class MeterSet:
    """Reads every source against one host snapshot, under a lock, so any thread may call ``read``.

    ``carbon(previous, current)`` returns the emissions of the interval between two readings; readings are taken
    in time order under the lock, so the cumulative ``Reading.co2e_g`` integrates power × intensity exactly
    once over every interval, whichever thread (sampler, window, epoch, stop) took the reading.
    """

    def __init__(
        self,
        host: HostReader,
        sources: Sequence[PowerSource],
        *,
        carbon: CarbonIntegrator | None = None,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        self._host = host
        self._carbon = carbon
        self._wall_clock = wall_clock
        self._previous: Reading | None = None
        self._sources = list(sources)
        self._spans: list[tuple[int, int]] = []
        start = 0
        for source in self._sources:
            n = len(source.channels())
            self._spans.append((start, start + n))
            start += n
        self.channels: tuple[Channel, ...] = tuple(unique_channels(self._sources))
        self._last: list[MeterReading] = [MeterReading(0.0, 0.0)] * len(self.channels)
        self._errors: dict[str, SourceErrors] = {}
        self._consecutive: dict[str, int] = {}
        self._host_errors = SourceErrors()
        self._lock = threading.Lock()

    def _record_failure(self, name: str, message: str, t_s: float) -> None:
        """A source that fails ``MAX_CONSECUTIVE_FAILURES`` reads in a row is dropped (its energy so far is kept);
        a transient error only skips one reading, and is counted."""
        count = self._consecutive.get(name, 0) + 1
        self._consecutive[name] = count
        errors = self._errors.setdefault(name, SourceErrors(first=message, first_t_s=t_s))
        errors.count += 1
        errors.last = message
        if count >= MAX_CONSECUTIVE_FAILURES and errors.dropped_t_s is None:
            errors.dropped_t_s = t_s

    @property
    def transient_errors(self) -> dict[str, int]:
        """Source name → how many of its readings failed (including those before it was dropped)."""
        with self._lock:
            return {name: errors.count for name, errors in self._errors.items()}

    @property
    def failures(self) -> dict[str, str]:
        """Source name → the error that stopped it (its channels keep their energy up to then)."""
        with self._lock:
            return {name: e.last for name, e in self._errors.items() if e.dropped_t_s is not None}

    def errors(self) -> dict[str, SourceErrors]:
        """Source name → what failed and when (copies), the host snapshot under ``host``."""
        with self._lock:
            found = {name: dataclasses.replace(e) for name, e in self._errors.items()}
            if self._host_errors.count:
                found["host"] = dataclasses.replace(self._host_errors)
            return found

    def read(self) -> Reading:
        with self._lock:
            return self._read_locked()

    def read_or_last(self, timeout_s: float, *, final: bool = False) -> Reading | None:
        """A fresh reading, or the last one taken if the lock cannot be had within ``timeout_s`` (the thread that
        holds it was interrupted by a signal handler that now needs a reading); None before any reading.
        ``final``: the run's last reading (see :meth:`PowerSource.read`)."""
        if not self._lock.acquire(timeout=timeout_s):
            return self._previous
        try:
            return self._read_locked(final=final)
        finally:
            self._lock.release()

    def _read_locked(self, *, final: bool = False) -> Reading:
        try:
            snapshot = self._host.snapshot()
        except (OSError, ValueError, IndexError) as exc:
            host = self._host_errors
            host.count += 1
            host.last = f"{type(exc).__name__}: {exc}"
            host.first = host.first or host.last
            if self._previous is None:
                raise DeviceError(f"cannot read the host's counters ({host.last})") from exc
            return self._previous  # the next reading covers this interval
        for source, (start, stop) in zip(self._sources, self._spans, strict=True):
            failed = self._errors.get(source.name)
            if failed is not None and failed.dropped_t_s is not None:
                continue
            try:
                values = source.read(snapshot, final) if final else source.read(snapshot)
                if len(values) != stop - start:
                    raise DeviceError(f"returned {len(values)} readings for {stop - start} channels")
                if not all(math.isfinite(v.energy_j) and math.isfinite(v.attributed_j) for v in values):
                    raise DeviceError("returned a reading that is not a finite number")
            except (DeviceError, OSError, ValueError) as exc:
                self._record_failure(source.name, str(exc) or type(exc).__name__, snapshot.t_s)
                continue
            self._consecutive.pop(source.name, None)
            self._last[start:stop] = values
        reading = Reading(
            t_s=snapshot.t_s,
            wall_s=self._wall_clock(),
            machine_j=tuple(r.energy_j for r in self._last),
            attributed_j=tuple(r.attributed_j for r in self._last),
            snapshot=snapshot,
        )
        previous = self._previous
        if previous is not None and self._carbon is not None:
            reading = dataclasses.replace(reading, co2e_g=previous.co2e_g + self._carbon(previous, reading))
        self._previous = reading
        return reading

    def notes(self) -> list[str]:
        """Notes the sources gathered while running (fallbacks they took), for the run record."""
        found: list[str] = []
        for source in self._sources:
            notes = getattr(source, "notes", None)
            if callable(notes):
                found.extend(str(n) for n in notes())
        return found

    def close(self) -> None:
        for source in self._sources:
            try:
                source.close()
            except (DeviceError, OSError):
                continue
