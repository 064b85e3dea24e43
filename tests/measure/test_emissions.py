"""Emissions are the integral of power × intensity over the run, checked against a hand-computed integral."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from tests.fakes.power import ConstantPowerSource
from wattwise.config import Settings
from wattwise.devices.base import HostSnapshot
from wattwise.measure.tracker import Tracker
from wattwise.units import J_PER_KWH

HOUR = 3600.0
T0 = datetime(2024, 3, 1, 12, 0, tzinfo=UTC)
VALUES = [100.0, 400.0, 200.0, 800.0, 50.0, 300.0]  # one per hour from T0


class ScaledHost:
    """A host whose snapshots also drive a wall clock running 3,600× faster: one real second is one trace hour.

    The wall clock reads the time of the snapshot just taken, so energy (from monotonic time) and the instant it
    is charged at (wall time) are the same moment, exactly."""

    def __init__(self, wall_start: datetime) -> None:
        self.m0 = time.monotonic()
        self.wall_start = wall_start.timestamp()
        self.last_t = self.m0
        self.first_t: float | None = None

    def snapshot(self) -> HostSnapshot:
        self.last_t = time.monotonic()
        if self.first_t is None:
            self.first_t = self.last_t
        return HostSnapshot(t_s=self.last_t, cpu_busy_s=0, cpu_total_s=0, tree_cpu_s=0)

    def wall(self) -> float:
        return self.wall_start + (self.last_t - self.m0) * HOUR


def integral(a: float, b: float) -> float:
    """∫ I(w) dw over wall seconds [a, b] of the step series VALUES, by hand."""
    total = 0.0
    for i, value in enumerate(VALUES):
        lo = max(a, (T0 + timedelta(hours=i)).timestamp())
        hi = min(b, (T0 + timedelta(hours=i + 1)).timestamp())
        if hi > lo:
            total += (hi - lo) * value
    return total


def write_trace(path: Path) -> Path:
    rows = ["timestamp,intensity_g_per_kwh"]
    rows += [f"{(T0 + timedelta(hours=i)).isoformat().replace('+00:00', 'Z')},{v}" for i, v in enumerate(VALUES)]
    path.write_text("\n".join(rows) + "\n")
    return path


def test_emissions_follow_a_changing_series(settings: Settings, tmp_path: Path) -> None:
    power_w, pue = 7200.0, 1.25
    trace = write_trace(tmp_path / "trace.csv")
    host = ScaledHost(T0 + timedelta(minutes=30))  # the run starts half-way into the first hour
    t = Tracker(
        "ci",
        settings=settings.replace(trace=trace, pue=pue),
        sources=[ConstantPowerSource({"gpu:0": power_w})],
        host=host,
        wall_clock=host.wall,
    )
    with t:
        time.sleep(0.9)
        with t.window("middle"):
            time.sleep(0.9)
        time.sleep(0.4)
    run = t.result
    assert run is not None
    assert host.first_t is not None
    w0 = host.wall_start + (host.first_t - host.m0) * HOUR  # the wall time of the run's first reading
    w1 = w0 + run.duration_s * HOUR
    assert w1 - w0 > 2 * HOUR  # crossed at least two changes of intensity
    # energy per wall second is power / 3600 (one real second per wall hour)
    expected = power_w / HOUR * pue / J_PER_KWH * integral(w0, w1)
    assert run.co2e_g == pytest.approx(expected, rel=1e-6)
    assert run.emissions_method == "time-resolved"
    assert run.intensity_g_per_kwh == pytest.approx(integral(w0, w1) / (w1 - w0), rel=1e-6)
    flat = power_w * run.duration_s / J_PER_KWH * pue * VALUES[0]
    assert abs(run.co2e_g - flat) > 0.1 * flat  # one average would be far off
    window = next(w for w in run.windows if w.name == "middle")
    assert window.co2e_g > 0 and window.co2e_g < run.co2e_g
    assert run.intensity_source.startswith("csv:trace.csv")


def test_a_run_outside_the_trace_uses_the_annual_figure_and_says_so(settings: Settings, tmp_path: Path) -> None:
    trace = write_trace(tmp_path / "trace.csv")
    host = ScaledHost(T0 + timedelta(days=30))
    t = Tracker(
        "ci",
        settings=settings.replace(trace=trace, region="DE"),
        sources=[ConstantPowerSource({"gpu:0": 100.0})],
        host=host,
        wall_clock=host.wall,
    )
    with t:
        time.sleep(0.1)
    run = t.result
    assert run is not None
    assert run.emissions_method.startswith("annual-average")
    assert run.intensity_g_per_kwh == pytest.approx(344.14, rel=1e-3)  # Germany's packaged annual figure


def test_water_on_site_and_off_site(settings: Settings) -> None:
    t = Tracker(
        "w",
        settings=settings.replace(region="aws:eu-west-1"),
        sources=[ConstantPowerSource({"gpu:0": 3600.0})],
        host=ScaledHost(T0),
        wall_clock=time.time,
    )
    with t:
        time.sleep(0.2)
    run = t.result
    assert run is not None
    kwh = run.energy_j / J_PER_KWH
    assert run.pue == pytest.approx(1.15)  # AWS's published fleet PUE for a cloud region, unless set
    assert run.water_onsite_l == pytest.approx(kwh * 0.18)
    assert run.water_offsite_l > 0
    assert run.to_dict()["water_l"] == pytest.approx(run.water_onsite_l + run.water_offsite_l)
    assert "WUE" in run.water_source
