"""What the live panel of ``wattwise run`` shows, computed from the sampler's last readings (no hardware access)."""

from __future__ import annotations

from dataclasses import dataclass

from wattwise.measure import accounting
from wattwise.measure.meters import MeterSet, Reading
from wattwise.records import Attribution, Prediction

__all__ = ["LiveStatus", "live_status"]


@dataclass(frozen=True, slots=True)
class LiveStatus:
    """Power per component over the last interval, and the run so far."""

    elapsed_s: float
    power_w: dict[str, float]  # per component kind (gpu, cpu, dram, memory, network)
    energy_j: float
    co2e_g: float
    source: str
    prediction: Prediction | None
    failures: dict[str, str]


def live_status(
    meters: MeterSet,
    origin: Reading,
    previous: Reading,
    last: Reading,
    attribution: Attribution,
    prediction: Prediction | None,
) -> LiveStatus:
    power: dict[str, float] = {}
    dt = last.t_s - previous.t_s
    now = accounting.selected(last, attribution)
    before = accounting.selected(previous, attribution)
    for i, ch in enumerate(meters.channels):
        if ch.in_total:
            watts = max(0.0, now[i] - before[i]) / dt if dt > 0 else 0.0
            power[ch.component] = power.get(ch.component, 0.0) + watts
    parts = accounting.components(meters.channels, origin, last, attribution)
    energy_j, _ = accounting.totals(parts)
    kinds = {c.source for c in parts if c.in_total}
    return LiveStatus(
        elapsed_s=last.t_s - origin.t_s,
        power_w=power,
        energy_j=energy_j,
        co2e_g=last.co2e_g - origin.co2e_g,
        source="mixed" if len(kinds) > 1 else (next(iter(kinds)) if kinds else "none"),
        prediction=prediction,
        failures=meters.failures,
    )
