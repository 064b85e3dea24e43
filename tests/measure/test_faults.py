"""Sources and providers that fail in the middle of a run, and a run that lasts a (simulated) day."""

from __future__ import annotations

import threading
import time
import tracemalloc
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.carbon.providers.replay import ReplayServer, Reply
from tests.fakes.power import ConstantPowerSource, FakeHost
from tests.fakes.sysfs import make_powercap
from wattwise.carbon.http import HttpClient
from wattwise.carbon.providers import ElectricityMapsProvider, electricitymaps
from wattwise.carbon.service import IntensityService
from wattwise.config import Settings
from wattwise.devices.base import HostSnapshot
from wattwise.devices.rapl import RaplSource
from wattwise.measure.emissions import CarbonPlan
from wattwise.measure.samples import resolution_s
from wattwise.measure.tracker import Tracker
from wattwise.store import open_store


class SimulatedHost:
    """A host whose clock moves ``step_s`` per snapshot (hours of a run replayed in seconds); ``fail_at`` makes the
    snapshots with those numbers raise, as an unreadable /proc would."""

    def __init__(self, step_s: float = 1.0, fail_at: frozenset[int] = frozenset()) -> None:
        self.t = 1000.0
        self.step_s = step_s
        self.count = 0
        self.fail_at = fail_at

    def snapshot(self) -> HostSnapshot:
        self.count += 1
        if self.count in self.fail_at:
            raise OSError(5, "Input/output error", "/proc/stat")
        self.t += self.step_s
        return HostSnapshot(t_s=self.t, cpu_busy_s=self.t, cpu_total_s=2 * self.t, tree_cpu_s=self.t, logical_cpus=2)


class SimulatedPower:
    """A constant-power channel on the simulated clock (its energy follows the host's time, not the wall's)."""

    name = "sim"

    def __init__(self, power_w: float) -> None:
        self.power_w = power_w
        self._t0: float | None = None

    def channels(self) -> tuple:  # type: ignore[type-arg]
        from wattwise.devices.base import Channel

        return (Channel("gpu:0", "gpu", "measured", "sim"),)

    def read(self, snapshot: HostSnapshot, final: bool = False) -> tuple:  # type: ignore[type-arg]
        from wattwise.devices.base import MeterReading

        if self._t0 is None:
            self._t0 = snapshot.t_s
        energy = self.power_w * (snapshot.t_s - self._t0)
        return (MeterReading(energy, energy),)

    def close(self) -> None:
        pass


def test_a_gpu_lost_mid_run_keeps_its_energy_and_the_others_go_on(settings: Settings) -> None:
    gpu = ConstantPowerSource({"gpu:0": 100.0}, name="nvml", fail_after_reads=4)
    cpu = ConstantPowerSource({"cpu": 10.0}, name="cpu-model")
    with Tracker("x", settings=settings, sources=[gpu, cpu], host=FakeHost()) as t:
        time.sleep(0.6)
    run = t.result
    assert run is not None and run.status == "complete"
    parts = {c.name: c for c in run.components}
    assert 0 < parts["gpu:0"].energy_j < 100.0 * 0.4  # up to the loss, after ~3 readings
    assert parts["cpu"].energy_j == pytest.approx(10.0 * run.duration_s, rel=0.05)  # unaffected
    note = next(n for n in run.notes if n.startswith("nvml stopped reporting at +"))
    assert "device fell off the bus" in note and "energy up to then is kept" in note


def test_a_rapl_counter_that_vanishes_mid_run_is_noted_with_its_time(settings: Settings, tmp_path: Path) -> None:
    zones = make_powercap(tmp_path / "powercap", sockets=1, core=False)
    rapl = RaplSource.open(tmp_path / "powercap")
    stop = threading.Event()

    def burn() -> None:  # the package counter moves 1 J per 10 ms until it vanishes
        while not stop.wait(0.01):
            for key in ("cpu:package-0", "dram:package-0"):
                if zones[key].energy_file.exists():
                    zones[key].add_energy(1_000_000)

    feeder = threading.Thread(target=burn, daemon=True)
    feeder.start()
    with Tracker("x", settings=settings, sources=[rapl], host=FakeHost()) as t:
        time.sleep(0.3)
        zones["dram:package-0"].vanish()
        deadline = time.monotonic() + 10  # until the sampler has failed enough reads in a row to drop it
        while "rapl" not in t.live_status().failures and time.monotonic() < deadline:
            time.sleep(0.05)
    stop.set()
    run = t.result
    assert run is not None and run.status == "complete"
    package = next(c for c in run.components if c.name == "cpu:package-0")
    assert package.energy_j > 0
    note = next(n for n in run.notes if n.startswith("rapl stopped reporting at +"))
    assert "cannot read" in note and "energy_uj" in note


def test_a_gap_longer_than_the_wrap_time_is_noted(tmp_path: Path) -> None:
    zones = make_powercap(tmp_path / "powercap", sockets=1, core=False, dram=False)
    (zones["cpu:package-0"].path / "constraint_0_power_limit_uw").write_text("250000000\n")  # 250 W
    rapl = RaplSource.open(tmp_path / "powercap")
    wrap_s = rapl.zones[0].wrap_s
    assert wrap_s == pytest.approx(262_143.32885 / 250)
    first = HostSnapshot(t_s=0.0, cpu_busy_s=0, cpu_total_s=0, tree_cpu_s=0)
    rapl.read(first)
    rapl.read(HostSnapshot(t_s=1.0, cpu_busy_s=1, cpu_total_s=1, tree_cpu_s=1))
    assert not [n for n in rapl.notes() if "wrap" in n]
    rapl.read(HostSnapshot(t_s=1.0 + wrap_s + 5, cpu_busy_s=2, cpu_total_s=2, tree_cpu_s=2))
    wraps = [n for n in rapl.notes() if "wrap" in n]
    assert len(wraps) == 1 and "a second wrap in that interval would not be seen" in wraps[0]


def test_a_host_snapshot_that_fails_skips_a_reading_not_the_run(settings: Settings) -> None:
    host = SimulatedHost(step_s=0.1, fail_at=frozenset({3, 4}))
    with Tracker("x", settings=settings, sources=[SimulatedPower(50.0)], host=host) as t:
        time.sleep(0.5)
    run = t.result
    assert run is not None and run.status == "complete"
    assert run.energy_j == pytest.approx(50.0 * run.duration_s, rel=1e-9)  # the next reading covered the gap
    assert any("reading(s) of the host's counters failed and were skipped" in n for n in run.notes)


def test_a_provider_answering_garbage_mid_run_keeps_the_values_it_had(
    replay: Callable[[str], ReplayServer], settings: Settings
) -> None:
    server = replay("electricitymaps")
    server.script("/v3/carbon-intensity/latest", Reply(file="latest.json"), Reply(text="<html>oops</html>"))
    server.serve("/v3/carbon-intensity/forecast", "forecast.json")
    live = settings.replace(provider="electricitymaps", region="DE", electricitymaps_api_key="em-key-123456")
    ticks = iter(range(10**6))  # every request sees a clock 10 min later: the cached latest value is always stale
    client = HttpClient(
        live,
        name="electricitymaps",
        label="Electricity Maps",
        auth_hint=electricitymaps.AUTH_HINT,
        clock=lambda: time.time() + 600 * next(ticks),
        sleep=lambda s: None,
    )
    provider = ElectricityMapsProvider(live, base_url=server.base_url, client=client)
    plan = CarbonPlan(live, service=IntensityService(live, provider=provider), refresh_s=0.1)
    with Tracker("x", settings=live, sources=[ConstantPowerSource({"gpu:0": 10.0})], host=FakeHost(), carbon=plan) as t:
        time.sleep(0.5)
    run = t.result
    assert run is not None and run.status == "complete" and not run.intensity_fallback
    note = next(n for n in run.notes if n.startswith("intensity refresh at "))
    assert "did not answer JSON" in note and "the values fetched before were kept" in note


@pytest.fixture
def replay() -> object:
    servers: list[ReplayServer] = []

    def start(folder: str) -> ReplayServer:
        servers.append(ReplayServer(folder))
        return servers[-1]

    yield start
    for server in servers:
        server.close()


def test_a_simulated_two_hour_run_keeps_memory_flat_and_thins_its_samples(settings: Settings) -> None:
    """7,200 one-second readings, replayed without waiting: the store keeps the first hour at full resolution and
    the second in 10 s buckets; memory after the first hour stops growing."""
    host = SimulatedHost(step_s=1.0)
    sim = settings.replace(interval_s=1.0, flush_s=5.0)
    t = Tracker("long", settings=sim, sources=[SimulatedPower(100.0)], host=host, pace=lambda stop, s: stop.is_set())
    tracemalloc.start()
    try:
        t.start()
        marks: dict[int, int] = {}
        for hour in (1, 2):
            while host.t < 1000.0 + hour * 3600:
                time.sleep(0.005)
            marks[hour] = tracemalloc.get_traced_memory()[0]
        run = t.stop()
    finally:
        tracemalloc.stop()
    assert run.duration_s >= 7200
    assert run.energy_j == pytest.approx(100.0 * run.duration_s, rel=1e-9)
    assert marks[2] - marks[1] < 2_000_000  # the second hour adds almost nothing held in memory
    with open_store(sim.db_url, read_only=True) as store:
        samples = list(store.iter_samples(run.id))
    first_hour = [s for s in samples if s.t_s <= 3600]
    later = [s for s in samples if s.t_s > 3600]
    assert 3500 <= len(first_hour) <= 3601
    assert len(later) == pytest.approx((run.duration_s - 3600) / 10, abs=3)
    assert samples[-1].energy_j == pytest.approx(run.energy_j, rel=1e-9)  # the coarse series keeps every joule
    assert all(s.power_w == pytest.approx(100.0) for s in samples)
    assert resolution_s(30 * 3600, 1.0) == 60.0 and resolution_s(30 * 3600, 120.0) == 120.0
