"""A power source and a host whose energy follows the monotonic clock exactly, so expected joules are exact."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import cast

from wattwise.devices.base import Channel, Component, HostSnapshot, MeterReading
from wattwise.errors import DeviceError
from wattwise.records import SourceKind


@dataclass
class ConstantPowerSource:
    """Each channel draws a constant power; ``share`` of it is attributed to the measured processes."""

    power_w: dict[str, float]
    name: str = "fake"
    share: float = 1.0
    source: SourceKind = "measured"
    fail_after_reads: int | None = None
    closed: int = 0
    reads: int = 0
    _t0: float | None = field(default=None, init=False)

    def channels(self) -> tuple[Channel, ...]:
        return tuple(
            Channel(
                name=n,
                component=cast(Component, n.split(":")[0]),
                source=self.source,
                method="fake",
                detail="constant power",
                low_factor=0.5 if self.source == "estimated" else 1.0,
                high_factor=2.0 if self.source == "estimated" else 1.0,
            )
            for n in self.power_w
        )

    def read(self, snapshot: HostSnapshot, final: bool = False) -> tuple[MeterReading, ...]:
        self.reads += 1
        if self.fail_after_reads is not None and self.reads > self.fail_after_reads:
            raise DeviceError(f"{self.name}: device fell off the bus")
        if self._t0 is None:
            self._t0 = snapshot.t_s
        dt = snapshot.t_s - self._t0
        return tuple(MeterReading(energy_j=p * dt, attributed_j=p * dt * self.share) for p in self.power_w.values())

    def close(self) -> None:
        self.closed += 1


class FakeHost:
    """A host whose only moving part is the clock."""

    def snapshot(self) -> HostSnapshot:
        t = time.monotonic()
        return HostSnapshot(t_s=t, cpu_busy_s=t, cpu_total_s=2 * t, tree_cpu_s=t, logical_cpus=2)
