"""The observer hook: what a run reports besides its store, and an observer that fails never stops a run."""

from __future__ import annotations

import time
from collections.abc import Sequence

import pytest

import wattwise
from tests.fakes.power import ConstantPowerSource, FakeHost
from wattwise.config import Settings
from wattwise.errors import ConfigError
from wattwise.measure.tracker import Tracker
from wattwise.records import Run, Sample


class Recorder(wattwise.RunObserver):
    def __init__(self) -> None:
        self.events: list[str] = []
        self.samples: list[Sample] = []
        self.final: Run | None = None

    def run_started(self, run: Run) -> None:
        self.events.append(f"started:{run.status}")

    def samples_taken(self, run_id: str, samples: Sequence[Sample]) -> None:
        self.events.append("samples")
        self.samples.extend(samples)

    def checkpoint(self, run: Run) -> None:
        self.events.append("checkpoint")

    def run_ended(self, run: Run) -> None:
        self.events.append(f"ended:{run.status}")
        self.final = run


class Broken(wattwise.RunObserver):
    calls = 0

    def samples_taken(self, run_id: str, samples: Sequence[Sample]) -> None:
        Broken.calls += 1
        raise RuntimeError("exporter down")


def test_observers_see_the_start_every_sample_checkpoints_and_the_end(settings: Settings) -> None:
    recorder = Recorder()
    t = Tracker(
        "observed",
        settings=settings,
        sources=[ConstantPowerSource({"gpu:0": 100.0})],
        host=FakeHost(),
        observers=[recorder],
    )
    with t, t.window("phase"):
        time.sleep(0.4)
    assert recorder.events[0] == "started:running" and recorder.events[-1] == "ended:complete"
    assert "checkpoint" in recorder.events and "samples" in recorder.events
    assert recorder.final == t.result
    assert len(recorder.samples) == t.samples_stored  # the same samples the store got
    assert recorder.final is not None and [w.name for w in recorder.final.windows] == ["phase"]


def test_a_failing_observer_is_detached_once_and_the_run_goes_on(
    settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    recorder = Recorder()
    Broken.calls = 0
    t = Tracker(
        "observed",
        settings=settings,
        sources=[ConstantPowerSource({"gpu:0": 100.0})],
        host=FakeHost(),
        observers=[Broken(), recorder],
    )
    with t:
        time.sleep(0.3)
    assert t.result is not None and t.result.status == "complete"
    assert Broken.calls == 1 and caplog.text.count("observer Broken failed in samples_taken") == 1
    assert recorder.events[-1] == "ended:complete"


def test_observers_reach_every_call_of_a_decorated_function(settings: Settings) -> None:
    recorder = Recorder()

    @wattwise.track(settings=settings, observers=[recorder])
    def work() -> int:
        return 1

    work()
    work()
    assert recorder.events.count("ended:complete") == 2


def test_an_observer_must_be_one() -> None:
    with pytest.raises(ConfigError, match=r"must subclass wattwise\.RunObserver"):
        Tracker("x", observers=[object()])  # type: ignore[list-item]


class Exits(wattwise.RunObserver):
    def run_started(self, run: Run) -> None:
        raise SystemExit(3)


def test_observers_given_as_a_generator_and_one_that_exits(settings: Settings) -> None:
    recorder = Recorder()
    t = Tracker(
        "observed",
        settings=settings,
        sources=[ConstantPowerSource({"gpu:0": 100.0})],
        host=FakeHost(),
        observers=(o for o in [Exits(), recorder]),
    )
    with t:
        time.sleep(0.1)
    assert t.result is not None and t.result.status == "complete" and recorder.events[-1] == "ended:complete"


class Counters(wattwise.RunObserver):
    """What a DCGM observer does: figures of its own for the run, given before the final save."""

    def __init__(self, energy_j: float, fail: bool = False) -> None:
        self.energy_j = energy_j
        self.fail = fail

    def external_figures(self, run: Run) -> Sequence[wattwise.ExternalFigure]:
        if self.fail:
            raise RuntimeError("exporter down")
        assert run.status == "complete"
        return [wattwise.ExternalFigure("dcgm", "gpu 0", self.energy_j), wattwise.ExternalFigure("dcgm", "gpu 1", 1.0)]


def test_cluster_figures_go_in_with_the_one_final_save(settings: Settings, caplog: pytest.LogCaptureFixture) -> None:
    from wattwise.store import open_store

    t = Tracker(
        "counted",
        settings=settings,
        sources=[ConstantPowerSource({"gpu:0": 100.0})],
        host=FakeHost(),
        observers=[Counters(5.0), Counters(7.0), Counters(0.0, fail=True)],
    )
    with t:
        time.sleep(0.05)
    assert t.result is not None
    # the second observer's gpu 0 replaces the first's (same source and scope); the failing one is warned about
    assert [(f.scope, f.energy_j) for f in t.result.external] == [("gpu 0", 7.0), ("gpu 1", 1.0)]
    with open_store(settings.db_url) as store:
        assert store.get(t.result.id) == t.result
    assert any("Counters failed in external_figures" in r.getMessage() for r in caplog.records)


class Watcher(wattwise.RunObserver):
    def __init__(self) -> None:
        self.statuses: list[wattwise.LiveStatus] = []

    def live(self, run_id: str, status: wattwise.LiveStatus) -> None:
        self.statuses.append(status)


def test_the_live_status_after_every_reading_for_observers_that_want_it(settings: Settings) -> None:
    watcher, recorder = Watcher(), Recorder()
    t = Tracker(
        "watched",
        settings=settings,
        sources=[ConstantPowerSource({"gpu:0": 100.0})],
        host=FakeHost(),
        observers=[watcher, recorder],
    )
    with t:
        time.sleep(0.4)
    assert len(watcher.statuses) == t.ticks >= 3  # interval 0.05 s
    assert watcher.statuses[-1].power_w["gpu"] == pytest.approx(100.0, rel=0.05)
    energies = [s.energy_j for s in watcher.statuses]
    assert energies == sorted(energies) and energies[-1] > 0
    from wattwise.measure.observers import Observers

    assert Observers([watcher]).wants_live and not Observers([recorder]).wants_live  # no status made for nobody
