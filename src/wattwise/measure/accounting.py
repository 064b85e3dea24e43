"""Turn two meter readings into records: per-channel energy, totals, emissions and samples.

Pure functions over :class:`~wattwise.measure.meters.Reading` pairs, shared by the tracker, its windows and the
live panel, so the CLI and the Python API compute every figure through the same code.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from wattwise.devices.base import Channel
from wattwise.measure.meters import Reading
from wattwise.records import Attribution, ComponentEnergy, Sample
from wattwise.units import emissions_g


@dataclass(frozen=True, slots=True)
class Carbon:
    """What turns energy into emissions for a run."""

    region: str
    intensity_g_per_kwh: float
    intensity_source: str
    pue: float

    def co2e_g(self, energy_j: float) -> float:
        return emissions_g(energy_j, self.pue, self.intensity_g_per_kwh)


def components(
    channels: Sequence[Channel], start: Reading, end: Reading, attribution: Attribution
) -> tuple[ComponentEnergy, ...]:
    result = []
    for i, ch in enumerate(channels):
        machine = max(0.0, end.machine_j[i] - start.machine_j[i])
        attributed = max(0.0, end.attributed_j[i] - start.attributed_j[i])
        energy = attributed if attribution == "process" else machine
        result.append(
            ComponentEnergy(
                name=ch.name,
                component=ch.component,
                energy_j=energy,
                machine_energy_j=machine,
                source=ch.source,
                method=ch.method,
                detail=ch.detail,
                in_total=ch.in_total,
                low_j=energy * ch.low_factor,
                high_j=energy * ch.high_factor,
            )
        )
    return tuple(result)


def totals(parts: Sequence[ComponentEnergy]) -> tuple[float, float]:
    """(energy_j the totals use, machine_energy_j) over the channels that count towards the total."""
    return (
        sum(c.energy_j for c in parts if c.in_total),
        sum(c.machine_energy_j for c in parts if c.in_total),
    )


def selected(reading: Reading, attribution: Attribution) -> tuple[float, ...]:
    return reading.attributed_j if attribution == "process" else reading.machine_j


def samples(
    channels: Sequence[Channel],
    origin: Reading,
    previous: Reading,
    current: Reading,
    attribution: Attribution,
) -> list[Sample]:
    """One sample per channel for the interval ``previous → current``; times relative to ``origin``."""
    dt = current.t_s - previous.t_s
    if dt <= 0:
        return []
    now = selected(current, attribution)
    before = selected(previous, attribution)
    base = selected(origin, attribution)
    t_s = current.t_s - origin.t_s
    return [
        Sample(t_s=t_s, channel=ch.name, power_w=max(0.0, now[i] - before[i]) / dt, energy_j=now[i] - base[i])
        for i, ch in enumerate(channels)
    ]
