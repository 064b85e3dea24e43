"""Counting served work in a run: tokens and requests, validated, accumulated, stored, divided into the energy."""

from __future__ import annotations

import socket
import subprocess
import sys
import threading
import time

import numpy as np
import pytest

from tests.fakes.power import ConstantPowerSource, FakeHost
from wattwise.config import Settings
from wattwise.errors import ConfigError, RecordError, TrackerStateError
from wattwise.measure.epochs import ENV_VAR, EpochListener, report_work
from wattwise.measure.tracker import Tracker
from wattwise.measure.work import WorkCounter, counted
from wattwise.record_schema import check_run, run_from_dict
from wattwise.records import Run, Work
from wattwise.store import open_store
from wattwise.units import j_to_wh


def make(settings: Settings, power_w: float = 100.0) -> Tracker:
    return Tracker("serve", settings=settings, sources=[ConstantPowerSource({"cpu": power_w})], host=FakeHost())


def test_counts_accumulate_and_divide_the_energy_exactly(settings: Settings) -> None:
    with make(settings) as t:
        assert t.count(tokens=100, requests=2, prompt_tokens=40) == Work(100.0, 2.0, 40.0)
        t.count(tokens=28)
        t.count(requests=2.0)
        # numpy's integers are numbers too
        assert t.count(prompt_tokens=np.int64(10)) == Work(128.0, 4.0, 50.0)  # type: ignore[arg-type]
        time.sleep(0.05)
    run = t.result
    assert run is not None and run.work == Work(output_tokens=128.0, requests=4.0, prompt_tokens=50.0)
    per = run.per_work
    assert per is not None and run.energy_j > 0
    assert per.j_per_output_token == run.energy_j / 128.0
    assert per.j_per_request == run.energy_j / 4.0
    assert per.wh_per_request == j_to_wh(run.energy_j / 4.0)
    assert per.co2e_g_per_request == run.co2e_g / 4.0
    assert per.source == run.source == "measured"
    data = run.to_dict()
    assert data["work"] == {"output_tokens": 128.0, "requests": 4.0, "prompt_tokens": 50.0}
    assert data["per_work"]["j_per_output_token"] == run.energy_j / 128.0
    assert data["per_work"]["wh_per_request"] == j_to_wh(run.energy_j / 4.0)


def test_a_run_that_counts_nothing_has_no_work(settings: Settings) -> None:
    with make(settings) as t:
        pass
    assert t.result is not None and t.result.work is None and t.result.per_work is None
    assert t.result.to_dict()["work"] is None and t.result.to_dict()["per_work"] is None


def test_requests_without_tokens_give_no_figure_per_token(settings: Settings) -> None:
    with make(settings) as t:
        t.count(requests=3)
    per = t.result.per_work if t.result is not None else None
    assert per is not None and per.j_per_output_token is None and per.j_per_request is not None


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"tokens": -1}, r"tokens from count\(tokens=...\) must be between 0 and 1e\+18 \(got -1\)"),
        ({"requests": float("nan")}, r"requests from count\(requests=...\) must be between 0 and 1e\+15 \(got nan\)"),
        ({"tokens": True}, r"is a count, not True"),
        ({"prompt_tokens": "12"}, r"prompt_tokens from count\(prompt_tokens=...\) .*got '12'"),
        ({"tokens": 1e30}, r"must be between 0 and 1e\+18"),
        ({"requests": float("inf")}, r"got inf"),
        ({}, r"count\(\) needs tokens=, requests= or prompt_tokens="),
    ],
)
def test_bad_counts_are_one_clear_error_and_add_nothing(
    settings: Settings, kwargs: dict[str, object], message: str
) -> None:
    with make(settings) as t:
        t.count(tokens=5)
        with pytest.raises(ConfigError, match=message) as info:
            t.count(**kwargs)  # type: ignore[arg-type]
        assert "\n" not in str(info.value)
    assert t.result is not None and t.result.work == Work(5.0, 0.0, 0.0)


def test_a_total_beyond_its_range_is_refused_and_the_total_kept(settings: Settings) -> None:
    with make(settings) as t:
        t.count(tokens=9e17)
        with pytest.raises(ConfigError, match=r"the run's tokens would reach 1\.8e\+18"):
            t.count(tokens=9e17, requests=1)
    assert t.result is not None and t.result.work == Work(9e17, 0.0, 0.0)


def test_counting_outside_a_running_run_is_refused(settings: Settings) -> None:
    t = make(settings)
    with pytest.raises(TrackerStateError, match="not running"):
        t.count(tokens=1)
    with t:
        t.count(tokens=1)
    with pytest.raises(TrackerStateError, match="has stopped"):
        t.count(tokens=1)
    assert t.result is not None and t.result.work == Work(1.0, 0.0, 0.0)


def test_a_count_after_the_final_reading_is_refused_not_lost() -> None:
    counter = WorkCounter()
    counter.add(counted(2, None, None))
    assert counter.total(close=True) == Work(2.0, 0.0, 0.0)
    with pytest.raises(TrackerStateError, match="final reading"):
        counter.add(counted(1, None, None))
    assert counter.total() == Work(2.0, 0.0, 0.0)


def test_counting_from_many_threads_loses_nothing(settings: Settings) -> None:
    with make(settings) as t:

        def serve() -> None:
            for _ in range(500):
                t.count(tokens=3, requests=1)

        threads = [threading.Thread(target=serve) for _ in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    assert t.result is not None and t.result.work == Work(12_000.0, 4_000.0, 0.0)


def test_checkpoints_and_the_store_keep_the_work(settings: Settings) -> None:
    t = make(settings)
    t.start()
    t.count(tokens=64, requests=1)
    time.sleep(0.5)  # flush_s is 0.2 in the fixture
    assert t.run_id is not None
    with open_store(settings.db_url) as store:
        mid = store.get(t.run_id)
    assert mid.status == "running" and mid.work == Work(64.0, 1.0, 0.0)
    t.count(tokens=64, requests=1)
    run = t.stop()
    with open_store(settings.db_url) as store:
        stored = store.get(run.id)
    assert stored.work == Work(128.0, 2.0, 0.0) == run.work
    assert stored.per_work == run.per_work


def _record(work: dict[str, object]) -> dict[str, object]:
    from tests.store.builders import make_run

    data = make_run().to_dict()
    data["work"] = work
    return data


def test_the_record_round_trips_work_and_checks_it() -> None:
    data = _record({"output_tokens": 10.0, "requests": 2.0, "prompt_tokens": 5.0})
    run = Run.from_dict(data)
    assert run.work == Work(10.0, 2.0, 5.0)
    assert Run.from_dict(run.to_dict()) == run
    check_run(run)
    with pytest.raises(RecordError, match=r"work\.requests must be a finite number"):
        run_from_dict(_record({"output_tokens": 1.0, "requests": "2"}))
    tiny = Run.from_dict(_record({"requests": 5e-324})).per_work  # a quotient that is not finite is no figure
    assert tiny is not None and tiny.j_per_request is None
    with pytest.raises(RecordError, match=r"work.output_tokens must be between 0 and 1e\+18 \(got -1.0\)"):
        check_run(Run.from_dict(_record({"output_tokens": -1.0})))
    assert Run.from_dict(_record({"requests": 3})).work == Work(0.0, 3.0, 0.0)  # absent counts are 0


def test_report_work_outside_wattwise_run_is_a_no_op_but_checks_its_counts(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(ENV_VAR, raising=False)
    assert report_work(tokens=3) is False
    monkeypatch.setenv(ENV_VAR, "/nonexistent/socket")
    assert report_work(tokens=3, requests=1) is False
    with pytest.raises(ConfigError, match=r"report_work\(tokens=...\) must be between 0"):
        report_work(tokens=-3)


def test_the_listener_adds_work_from_a_child_and_ignores_garbage() -> None:
    got: list[tuple[float, float, float]] = []

    def on_work(tokens: float, requests: float, prompt_tokens: float) -> None:
        if tokens > 1e6:
            raise ConfigError("refused by the tracker")
        got.append((tokens, requests, prompt_tokens))

    listener = EpochListener(lambda planned: None, on_work)
    try:
        code = "import wattwise\nwattwise.report_work(tokens=7, requests=1)\nwattwise.report_work(prompt_tokens=2.5)\n"
        env = {**listener.env(), "PATH": "/usr/bin:/bin"}
        subprocess.run([sys.executable, "-c", code], env=env, check=True, timeout=30)
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
            garbage_list = (b"work", b"work 1 2", b"work a b c", b"work 1 2 3 4", b"work 1e9 0 0", b"\xff\xfe")
            for garbage in (*garbage_list, b"work 1_000 0 0", b"work nan 0 0", b"work inf 1 1"):
                sock.sendto(garbage, listener.path)
    finally:
        listener.close()  # drains what was sent
    assert got == [(7.0, 1.0, 0.0), (0.0, 0.0, 2.5)]
    assert len(listener.errors) == 9  # underscores, nan and inf are not what report_work sends
    assert "refused by the tracker" in listener.errors[4]
