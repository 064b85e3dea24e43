"""A set of power sources read together, against one host snapshot per read.

``MeterSet.read()`` returns a :class:`Reading`: the cumulative energy of every channel at one instant. The
tracker's windows, samples and totals are differences of two readings. A source that fails mid-run is dropped;
its energy up to the failure is kept and the failure is reported (never a silent zero).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
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


class MeterSet:
    """Reads every source against one host snapshot, under a lock, so any thread may call ``read``."""

    def __init__(self, host: HostReader, sources: Sequence[PowerSource]) -> None:
        self._host = host
        self._sources = list(sources)
        self._spans: list[tuple[int, int]] = []
        channels: list[Channel] = []
        for source in self._sources:
            start = len(channels)
            channels.extend(source.channels())
            self._spans.append((start, len(channels)))
        self.channels: tuple[Channel, ...] = tuple(channels)
        self._last: list[MeterReading] = [MeterReading(0.0, 0.0)] * len(channels)
        self._failed: dict[str, str] = {}
        self._lock = threading.Lock()

    @property
    def failures(self) -> dict[str, str]:
        """Source name → the error that stopped it (its channels keep their energy up to then)."""
        with self._lock:
            return dict(self._failed)

    def read(self) -> Reading:
        with self._lock:
            snapshot = self._host.snapshot()
            for source, (start, stop) in zip(self._sources, self._spans, strict=True):
                if source.name in self._failed:
                    continue
                try:
                    values = source.read(snapshot)
                except (DeviceError, OSError, ValueError) as exc:
                    self._failed[source.name] = str(exc) or type(exc).__name__
                    continue
                if len(values) != stop - start:
                    self._failed[source.name] = f"returned {len(values)} readings for {stop - start} channels"
                    continue
                self._last[start:stop] = values
            return Reading(
                t_s=snapshot.t_s,
                wall_s=time.time(),
                machine_j=tuple(r.energy_j for r in self._last),
                attributed_j=tuple(r.attributed_j for r in self._last),
                snapshot=snapshot,
            )

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
