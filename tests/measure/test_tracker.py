from __future__ import annotations

import json
import math
import re
import time
from pathlib import Path

import pytest

import wattwise
from tests.fakes.power import ConstantPowerSource, FakeHost
from tests.fakes.store import FailingStore
from wattwise.config import Settings
from wattwise.devices.base import HostSnapshot, MeterReading
from wattwise.errors import ConfigError, DeviceError, StoreError, TrackerStateError, UnknownRegionError
from wattwise.measure.tracker import Tracker
from wattwise.records import Run
from wattwise.store import open_store
from wattwise.units import emissions_g


def make(settings: Settings, source: ConstantPowerSource, name: str = "t", epochs: int | None = None) -> Tracker:
    return Tracker(name, settings=settings, sources=[source], host=FakeHost(), epochs=epochs)


def test_energy_per_component_and_total_follow_the_counters(settings: Settings) -> None:
    source = ConstantPowerSource({"gpu:0": 200.0, "cpu:package-0": 50.0}, share=0.5)
    with make(settings.replace(region="DE"), source) as t:
        time.sleep(0.3)
    run = t.result
    assert run is not None and run.status == "complete"
    by_name = {c.name: c for c in run.components}
    assert by_name["gpu:0"].machine_energy_j == pytest.approx(200.0 * run.duration_s, rel=1e-9)
    assert by_name["gpu:0"].energy_j == pytest.approx(100.0 * run.duration_s, rel=1e-9)
    assert run.energy_j == pytest.approx(125.0 * run.duration_s, rel=1e-9)
    assert run.machine_energy_j == pytest.approx(250.0 * run.duration_s, rel=1e-9)
    assert run.co2e_g == pytest.approx(emissions_g(run.energy_j, 1.0, run.intensity_g_per_kwh))
    assert run.region == "DE" and "Germany" in run.intensity_source
    assert run.source == "measured"
    assert source.closed == 1


def test_machine_attribution_counts_the_whole_machine(settings: Settings) -> None:
    source = ConstantPowerSource({"cpu:package-0": 40.0}, share=0.25)
    with make(settings.replace(attribution="machine"), source) as t:
        time.sleep(0.1)
    assert t.result is not None
    assert t.result.energy_j == pytest.approx(t.result.machine_energy_j)
    assert t.result.attribution == "machine"


def test_nested_windows_are_exact_and_know_their_parent(settings: Settings) -> None:
    source = ConstantPowerSource({"gpu:0": 100.0})
    with make(settings, source) as t:
        with t.window("epoch-1"):
            with t.window("forward"):
                time.sleep(0.05)
            time.sleep(0.05)
        t.begin_window("eval")
        time.sleep(0.02)
        eval_record = t.end_window("eval")
    run = t.result
    assert run is not None
    windows = {w.name: w for w in run.windows}
    assert windows["forward"].parent == "epoch-1"
    assert windows["epoch-1"].parent is None
    for w in run.windows:
        assert w.energy_j == pytest.approx(100.0 * w.duration_s, rel=1e-9)
    assert windows["forward"].duration_s < windows["epoch-1"].duration_s
    assert eval_record.name == "eval" and eval_record.energy_j > 0


def test_short_run_is_not_zero(settings: Settings) -> None:
    source = ConstantPowerSource({"gpu:0": 300.0})
    with make(settings.replace(interval_s=1.0, flush_s=5.0), source) as t:
        pass  # far shorter than one sampling interval
    assert t.result is not None
    assert t.result.energy_j > 0
    assert t.result.energy_j == pytest.approx(300.0 * t.result.duration_s, rel=1e-9)


def test_window_misuse_is_a_clear_error(settings: Settings) -> None:
    with make(settings, ConstantPowerSource({"gpu:0": 1.0})) as t:
        with pytest.raises(TrackerStateError, match="never opened"):
            t.end_window("nope")
        t.begin_window("a")
        with pytest.raises(TrackerStateError, match="already open"):
            t.begin_window("a")
    assert t.result is not None
    assert any(w.name == "a (closed at stop)" for w in t.result.windows)
    with pytest.raises(TrackerStateError):
        t.begin_window("late")


def test_stop_before_start_and_double_start() -> None:
    t = Tracker("x", settings=Settings(gpu=False), sources=[], host=FakeHost())
    with pytest.raises(TrackerStateError, match="before start"):
        t.stop()


def test_exception_marks_run_failed_and_is_not_swallowed(settings: Settings) -> None:
    t = make(settings, ConstantPowerSource({"gpu:0": 10.0}))
    with pytest.raises(ZeroDivisionError), t:
        _ = 1 / 0
    assert t.result is not None and t.result.status == "failed"
    assert t.result.error is not None and "ZeroDivisionError" in t.result.error
    with open_store(settings.db_url) as store:
        assert store.get(t.result.id).status == "failed"


def test_keyboard_interrupt_marks_run_incomplete(settings: Settings) -> None:
    t = make(settings, ConstantPowerSource({"gpu:0": 10.0}))
    with pytest.raises(KeyboardInterrupt), t:
        raise KeyboardInterrupt
    assert t.result is not None and t.result.status == "incomplete"


def test_decorator_measures_each_call(settings: Settings) -> None:
    calls = []

    @wattwise.track(settings=settings)
    def work(n: int) -> int:
        calls.append(n)
        return n * 2

    assert work(3) == 6
    first = work.last_run  # type: ignore[attr-defined]
    assert work(4) == 8
    second = work.last_run  # type: ignore[attr-defined]
    assert first.id != second.id
    assert first.name.endswith("work")
    with open_store(settings.db_url) as store:
        assert {r.id for r in store.list_runs()} >= {first.id, second.id}


def test_start_stop_api_and_store_round_trip(settings: Settings) -> None:
    t = make(settings, ConstantPowerSource({"cpu": 20.0}, source="estimated"))
    t.start()
    time.sleep(0.05)
    run = t.stop()
    assert t.stop() is run  # idempotent
    with open_store(settings.db_url) as store:
        stored = store.get("latest")
    assert stored == run
    assert run.source == "estimated"
    comp = run.components[0]
    assert comp.low_j == pytest.approx(comp.energy_j * 0.5)
    assert comp.high_j == pytest.approx(comp.energy_j * 2.0)


def test_samples_are_flushed_while_running(settings: Settings) -> None:
    source = ConstantPowerSource({"gpu:0": 100.0})
    t = make(settings, source)
    t.start()
    assert t.run_id is not None
    time.sleep(0.6)  # flush_s is 0.2 in the fixture
    with open_store(settings.db_url) as store:
        mid = store.get(t.run_id)
        mid_samples = list(store.iter_samples(t.run_id))
    assert mid.status == "running"
    assert mid.energy_j > 0
    assert len(mid_samples) >= 3
    assert all(s.power_w == pytest.approx(100.0, rel=1e-6) for s in mid_samples)
    run = t.stop()
    with open_store(settings.db_url) as store:
        samples = list(store.iter_samples(run.id))
    assert len(samples) > len(mid_samples)
    assert samples[-1].energy_j == pytest.approx(run.energy_j, rel=1e-9)


def test_a_failing_source_keeps_its_energy_and_says_so(settings: Settings) -> None:
    bad = ConstantPowerSource({"gpu:0": 100.0}, name="flaky", fail_after_reads=3)
    good = ConstantPowerSource({"cpu:package-0": 10.0}, name="good")
    t = Tracker("f", settings=settings, sources=[bad, good], host=FakeHost())
    with t:
        time.sleep(0.4)
    run = t.result
    assert run is not None
    gpu = next(c for c in run.components if c.name == "gpu:0")
    assert 0 < gpu.energy_j < 100.0 * run.duration_s
    assert any("flaky stopped reporting" in n for n in run.notes)


def test_epochs_give_a_prediction_with_a_range(settings: Settings) -> None:
    source = ConstantPowerSource({"gpu:0": 100.0})
    with make(settings, source, epochs=10) as t:
        for _ in range(3):
            time.sleep(0.05)
            t.epoch_end()
        p = t.prediction
        assert p is not None
        status = t.live_status()
        assert status.prediction == p
    run = t.result
    assert run is not None and run.prediction == p
    assert p.epochs_done == 3 and p.epochs_planned == 10
    assert p.energy_j.low <= p.energy_j.value <= p.energy_j.high
    assert p.energy_j.value == pytest.approx(100.0 * p.duration_s.value, rel=0.05)
    assert [w.name for w in run.windows] == ["epoch-1", "epoch-2", "epoch-3"]


def test_unknown_region_fails_before_anything_is_stored(settings: Settings) -> None:
    source = ConstantPowerSource({"gpu:0": 1.0})
    with pytest.raises(UnknownRegionError, match="closest"):
        make(settings.replace(region="Germanyy"), source).start()
    with open_store(settings.db_url) as store:
        assert store.list_runs() == []


def test_unwritable_store_fails_at_start(settings: Settings, tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    bad = settings.replace(db=f"sqlite:///{blocker / 'sub' / 'runs.db'}")
    with pytest.raises(StoreError):
        make(bad, ConstantPowerSource({"gpu:0": 1.0})).start()


def test_world_average_is_used_and_said_when_no_region(settings: Settings) -> None:
    with make(settings, ConstantPowerSource({"gpu:0": 1.0})) as t:
        pass
    assert t.result is not None
    assert t.result.region == "WORLD"
    assert any("no region set" in n for n in t.result.notes)


def test_live_status_reports_power_by_component(settings: Settings) -> None:
    source = ConstantPowerSource({"gpu:0": 100.0, "gpu:1": 50.0, "cpu:package-0": 30.0})
    with make(settings, source) as t:
        time.sleep(0.2)
        status = t.live_status()
    assert status.power_w["gpu"] == pytest.approx(150.0, rel=1e-6)
    assert status.power_w["cpu"] == pytest.approx(30.0, rel=1e-6)
    assert status.energy_j > 0 and status.source == "measured"


def test_a_store_failure_at_stop_keeps_the_record_in_a_file(settings: Settings) -> None:
    inner = open_store(settings.db_url)
    t = Tracker(
        "x",
        settings=settings,
        sources=[ConstantPowerSource({"gpu:0": 5.0})],
        host=FakeHost(),
        store=FailingStore(inner),
    )
    t.start()
    with pytest.raises(StoreError, match=r"wattwise runs import .*\.json") as info:
        t.stop()
    assert t.result is not None and t.result.energy_j > 0
    saved = settings.home / "unsaved" / f"{t.result.id}.json"
    assert str(saved) in str(info.value)
    assert Run.from_dict(json.loads(saved.read_text())) == t.result
    inner.close()


def test_failed_checkpoints_keep_their_samples_for_the_next_one(
    settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    inner = open_store(settings.db_url)
    store = FailingStore(inner, fail_final=False, fail_checkpoints=True)
    t = Tracker("x", settings=settings, sources=[ConstantPowerSource({"gpu:0": 5.0})], host=FakeHost(), store=store)
    t.start()
    with caplog.at_level("WARNING"):
        time.sleep(0.5)
        store.fail_checkpoints = False
        run = t.stop()
    assert re.search("checkpoint of run .* failed, will retry", caplog.text)
    assert len([r for r in caplog.records if "checkpoint" in r.getMessage()]) == 1  # said once
    with open_store(settings.db_url) as check:
        samples = list(check.iter_samples(run.id))
    assert samples[0].t_s < 0.2  # the earliest samples survived the failed checkpoints
    assert samples[-1].energy_j == pytest.approx(run.energy_j)
    inner.close()


class NaNSource(ConstantPowerSource):
    def read(self, snapshot: HostSnapshot, final: bool = False) -> tuple[MeterReading, ...]:
        return (MeterReading(float("nan"), float("nan")),)


def test_a_source_returning_nan_is_a_failure_not_a_poisoned_record(settings: Settings) -> None:
    t = Tracker(
        "x",
        settings=settings,
        sources=[NaNSource({"gpu:0": 1.0}, name="nan"), ConstantPowerSource({"cpu": 10.0})],
        host=FakeHost(),
    )
    with t:
        time.sleep(0.25)
    assert t.result is not None and math.isfinite(t.result.energy_j) and t.result.energy_j > 0
    assert any("nan stopped reporting" in n and "not a finite number" in n for n in t.result.notes)


def test_one_transient_error_skips_a_reading_not_the_source(settings: Settings) -> None:
    class Flaky(ConstantPowerSource):
        calls = 0

        def read(self, snapshot: HostSnapshot, final: bool = False) -> tuple[MeterReading, ...]:
            self.calls += 1
            if self.calls == 2:
                raise DeviceError("NVML: GPU is busy")
            return super().read(snapshot)

    source = Flaky({"gpu:0": 100.0}, name="flaky")
    with make(settings, source) as t:
        time.sleep(0.3)
    assert t.result is not None
    assert t.result.energy_j == pytest.approx(100.0 * t.result.duration_s, rel=1e-9)  # counters lose nothing
    assert any("flaky: 1 reading(s) failed" in n for n in t.result.notes)


def test_bare_decorator(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WATTWISE_GPU", "0")
    monkeypatch.setenv("WATTWISE_RAPL_ROOT", str(settings.rapl_root))

    @wattwise.track
    def double(x: int) -> int:
        return 2 * x

    assert double(21) == 42
    assert double.last_run.status == "complete"  # type: ignore[attr-defined]


def test_proc_root_of_another_namespace_is_a_config_error(settings: Settings, tmp_path: Path) -> None:
    fake_proc = tmp_path / "proc"
    fake_proc.mkdir()
    (fake_proc / "stat").write_text("cpu  1 0 0 1 0 0 0 0\n")
    with pytest.raises(ConfigError, match="another pid namespace"):
        Tracker(
            "x", settings=settings.replace(proc_root=fake_proc), sources=[ConstantPowerSource({"cpu": 1.0})]
        ).start()
