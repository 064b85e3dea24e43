"""DCGM's GPU energy counter: live from a (local) dcgm-exporter (saved with the run's final record), and afterwards
from a (local) Prometheus."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

import pytest

import wattwise
from tests.fakes.power import ConstantPowerSource, FakeHost
from tests.importers.runs import GPU0, GPU1, T0, gpu_run
from tests.importers.servers import Answer, FakePrometheus, Reply, Series, Server, page, pages
from wattwise.config import Settings
from wattwise.errors import CounterError
from wattwise.importers import DcgmCounters, dcgm_from_prometheus
from wattwise.importers.dcgm import METRIC
from wattwise.measure.tracker import Tracker
from wattwise.records import Run
from wattwise.store import SQLiteStore, open_store
from wattwise.store.base import RunStore

START = {"E0": 319159391, "E1": 31035686671}  # mJ since the driver loaded, as the recorded page had them


def metrics(delta0_mj: float, delta1_mj: float) -> str:
    return page("dcgm-exporter.txt", E0=START["E0"] + delta0_mj, E1=START["E1"] + delta1_mj)


def live(run_uuids: tuple[str, ...], *texts: str, gpus: tuple[str, ...] = ()) -> DcgmCounters:
    """The observer told of a run's start then asked for its figures, the exporter serving ``texts`` in turn."""
    run = gpu_run(uuids=run_uuids)
    with Server(pages(*texts)).running() as url:
        observer = DcgmCounters(f"{url}/metrics", gpus=gpus)
        observer.run_started(run.replace(status="running"))
        figures = observer.external_figures(run)
    assert list(figures) == observer.figures
    return observer


def test_live_counters_are_read_for_the_runs_gpu_only() -> None:
    delta_mj = 196_764_132.0
    observer = live((GPU0,), metrics(0, 0), metrics(delta_mj, 9_999_999))
    (figure,) = observer.figures  # only the GPU the run measured, not the node's other one
    assert figure.source == "dcgm" and figure.scope == f"gpu 0 {GPU0}"
    assert figure.energy_j == pytest.approx(delta_mj / 1000)
    assert "NVIDIA H100 80GB HBM3 on gpu-node-07" in figure.detail and METRIC in figure.detail
    assert figure.started_at is not None and figure.ended_at is not None and figure.started_at <= figure.ended_at


def test_a_run_that_measured_no_gpu_gets_every_gpu_of_the_exporter() -> None:
    observer = live((), metrics(0, 0), metrics(5000.0, 7000.0))
    assert [f.scope for f in observer.figures] == [f"gpu 0 {GPU0}", f"gpu 1 {GPU1}"]
    assert [f.energy_j for f in observer.figures] == pytest.approx([5.0, 7.0])


def test_gpus_can_be_chosen_by_index() -> None:
    observer = live((GPU0,), metrics(0, 0), metrics(5000.0, 7000.0), gpus=("1",))
    assert [f.scope for f in observer.figures] == [f"gpu 1 {GPU1}"]


def test_a_counter_that_went_down_is_refused() -> None:
    reset = page("dcgm-exporter.txt", E0=1234, E1=START["E1"] + 1)  # the driver reloaded: GPU 0 counts from 0
    with Server(pages(metrics(0, 0), reset)).running() as url:
        observer = DcgmCounters(f"{url}/metrics")
        observer.run_started(gpu_run())
        with pytest.raises(CounterError, match=rf"gpu 0 {GPU0} went down during the run .*reset"):
            observer.external_figures(gpu_run())
    assert observer.figures == []


def test_a_reset_on_a_gpu_the_run_did_not_use_does_not_matter() -> None:
    other_reset = page("dcgm-exporter.txt", E0=START["E0"] + 2000, E1=5)
    observer = live((GPU0,), metrics(0, 0), other_reset)
    assert [f.energy_j for f in observer.figures] == [pytest.approx(2.0)]


def test_without_a_start_reading_there_is_nothing_to_give() -> None:
    server = Server(pages(metrics(0, 0)))
    with server.running() as url:
        observer = DcgmCounters(f"{url}/metrics")
        assert observer.external_figures(gpu_run()) == ()
    assert server.requests == []


@pytest.mark.parametrize(
    ("path", "body", "message"),
    [
        ("/nope", None, "answered 404"),
        ("/metrics", "<html><body>Grafana login</body></html>", f"serves no {METRIC}"),
        ("/metrics", f'{METRIC}{{gpu="0",UUID="{GPU0}" 12\n', "line 1 is not in Prometheus' text format"),
    ],
)
def test_a_wrong_exporter_answer_is_one_line(path: str, body: str | None, message: str) -> None:
    answer = pages(body) if body is not None else pages(metrics(0, 0))
    with Server(answer).running() as url:
        observer = DcgmCounters(f"{url}{path}")
        with pytest.raises(CounterError, match=message) as caught:
            observer.run_started(gpu_run())
    assert "\n" not in str(caught.value)


def test_the_runs_gpu_missing_from_the_exporter_is_named() -> None:
    with pytest.raises(CounterError, match="has no GPU GPU-00000000-1111, which the run measured"):
        live(("GPU-00000000-1111",), metrics(0, 0), metrics(1, 1))


# --- with the tracker: the figures go in with the run's one final save ------------------------------------------


def tracked(settings: Settings, observer: DcgmCounters, store: RunStore | None = None) -> Tracker:
    """A short run on one fake GPU at 100 W, ``observer`` attached, stored in ``store`` or the configured one."""
    source = ConstantPowerSource({"gpu:0": 100.0})
    tracker = Tracker("t", settings=settings, store=store, sources=[source], host=FakeHost(), observers=[observer])
    with tracker:
        time.sleep(0.05)
    return tracker


def stored_run(settings: Settings, run_id: str) -> Run:
    with open_store(settings.db_url) as store:
        return store.get(run_id)


def test_with_the_tracker_the_figures_land_in_the_stored_run(settings: Settings) -> None:
    server = Server(pages(metrics(0, 0), metrics(3000.0, 4000.0)))
    with server.running() as url:
        tracker = tracked(settings, DcgmCounters(f"{url}/metrics"))
    assert tracker.result is not None and tracker.result.status == "complete"
    stored = stored_run(settings, tracker.result.id)
    assert stored == tracker.result
    assert [(f.source, f.energy_j) for f in stored.external] == [("dcgm", pytest.approx(3.0)), ("dcgm", 4.0)]
    assert stored.energy_j == pytest.approx(sum(c.energy_j for c in stored.components))  # beside it, never in it
    assert len(server.requests) == 2  # one scrape at the start, one at the end


def test_the_figures_land_in_a_store_the_tracker_was_given(settings: Settings) -> None:
    with SQLiteStore(":memory:") as memory, Server(pages(metrics(0, 0), metrics(1000.0, 0))).running() as url:
        tracker = tracked(settings, DcgmCounters(f"{url}/metrics"), store=memory)
        assert tracker.result is not None
        assert [f.energy_j for f in memory.get(tracker.result.id).external] == [pytest.approx(1.0), 0.0]


def test_the_wattwise_track_context_manager_stores_them_too(settings: Settings) -> None:
    with Server(pages(metrics(0, 0), metrics(2000.0, 0))).running() as url:
        observer = DcgmCounters(f"{url}/metrics", gpus=("0",))
        with wattwise.track("tracked", settings=settings, observers=[observer]) as t:
            time.sleep(0.05)
    assert t.result is not None
    assert stored_run(settings, t.result.id).external == tuple(observer.figures)
    assert [f.energy_j for f in observer.figures] == [pytest.approx(2.0)]


def _then(status: int, text: str) -> Answer:
    """An exporter that serves a good page once, then answers ``status`` with ``text``."""
    first = pages(metrics(0, 0))
    calls: list[str] = []

    def answer(path: str, query: dict[str, str]) -> Reply:
        calls.append(path)
        return first(path, query) if len(calls) == 1 else (status, "text/plain", text.encode())

    return answer


@pytest.mark.parametrize(
    ("answer", "message"),
    [
        (lambda: _then(503, "exporter restarting"), "answered 503: exporter restarting"),
        (lambda: pages(metrics(0, 0), page("dcgm-exporter.txt", E0=12, E1=34)), "went down during the run"),
    ],
    ids=["unavailable", "reset"],
)
def test_an_exporter_that_fails_at_the_end_costs_one_warning_and_the_run_is_stored(
    settings: Settings, caplog: pytest.LogCaptureFixture, answer: Callable[[], Answer], message: str
) -> None:
    with Server(answer()).running() as url, caplog.at_level(logging.WARNING):
        tracker = tracked(settings, DcgmCounters(f"{url}/metrics"))
    assert tracker.result is not None and tracker.result.status == "complete"
    lines = [r.getMessage() for r in caplog.records if "DcgmCounters" in r.getMessage()]
    assert len(lines) == 1 and "failed in external_figures" in lines[0] and message in lines[0], lines
    assert "\n" not in lines[0]
    stored = stored_run(settings, tracker.result.id)
    assert stored == tracker.result and stored.status == "complete" and stored.external == ()


def test_an_exporter_that_is_down_at_the_start_detaches_the_observer_with_one_warning(
    settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    with Server(pages("")).running() as url:
        closed = url  # nothing listens there once the server is gone
    with caplog.at_level(logging.WARNING):
        tracker = tracked(settings, DcgmCounters(f"{closed}/metrics", timeout_s=2.0))
    assert tracker.result is not None and tracker.result.status == "complete"
    lines = [r.getMessage() for r in caplog.records if "DcgmCounters" in r.getMessage()]
    assert len(lines) == 1 and "cannot reach the DCGM exporter" in lines[0], lines
    assert stored_run(settings, tracker.result.id).external == ()


# --- after the fact, from Prometheus -----------------------------------------------------------------------------

SCRAPE_S = 15.0
POWER_W = {GPU0: 650.0, GPU1: 70.0}


def prometheus(reset_at_s: float | None = None, *, seconds: float = 300.0) -> FakePrometheus:
    """DCGM's counters scraped every 15 s from 15 min before the run to 15 min after, each GPU at constant power;
    ``reset_at_s``: GPU 0's counter restarts from 0 then (seconds after the run's start)."""
    first = (T0 - timedelta(minutes=15)).timestamp() // SCRAPE_S * SCRAPE_S
    times = [first + i * SCRAPE_S for i in range(int((1800 + seconds) / SCRAPE_S))]
    series = []
    for index, (uuid, watts) in enumerate(POWER_W.items()):
        values = []
        for t in times:
            since = t - first
            if uuid == GPU0 and reset_at_s is not None and t >= T0.timestamp() + reset_at_s:
                since = t - (T0.timestamp() + reset_at_s) + 1.0  # counts again from 0, and soon above the start
                values.append(since * watts * 1000.0 * 50)
                continue
            values.append(START[f"E{index}"] + since * watts * 1000.0)
        labels = {"__name__": METRIC, "gpu": str(index), "UUID": uuid, "Hostname": "gpu-node-07", "job": "dcgm"}
        series.append(Series(labels, list(zip(times, values, strict=True))))
    return FakePrometheus(series)


def test_from_prometheus_each_gpu_is_its_power_times_the_counters_window(tmp_path: Path) -> None:
    run = gpu_run(uuids=(GPU0, GPU1))
    fake = prometheus()
    with Server(fake.answer).running() as url:
        figures = dcgm_from_prometheus(url, run)
    assert [f.scope for f in figures] == [f"gpu 0 {GPU0}", f"gpu 1 {GPU1}"]
    for figure, watts in zip(figures, POWER_W.values(), strict=True):
        assert figure.started_at is not None and figure.ended_at is not None and run.ended_at is not None
        assert abs((figure.started_at - run.started_at).total_seconds()) <= SCRAPE_S / 2
        assert abs((figure.ended_at - run.ended_at).total_seconds()) <= SCRAPE_S / 2
        assert figure.energy_j == pytest.approx(watts * (figure.ended_at - figure.started_at).total_seconds())
        assert "Prometheus" in figure.detail


@pytest.mark.parametrize("reset_at_s", [1.0, 100.0, 290.0])  # after the first sample used, inside, before the last
def test_a_reset_inside_the_run_is_found_even_when_the_counter_ends_higher(reset_at_s: float) -> None:
    run = gpu_run(uuids=(GPU0,))
    expected = rf"gpu 0 {GPU0} was reset 1 time\(s\) during the run"
    with Server(prometheus(reset_at_s).answer).running() as url, pytest.raises(CounterError, match=expected):
        dcgm_from_prometheus(url, run)


def test_a_run_shorter_than_the_scrape_interval_is_refused(tmp_path: Path) -> None:
    run = gpu_run(uuids=(GPU0,), seconds=4.0)
    expected = r"span 15 s, the run 4 s: the run is too short for the counter's scrape interval"
    with Server(prometheus().answer).running() as url, pytest.raises(CounterError, match=expected):
        dcgm_from_prometheus(url, run)


def test_a_run_with_no_gpu_is_read_by_its_host(tmp_path: Path) -> None:
    server = Server(prometheus().answer)
    with server.running() as url:
        figures = dcgm_from_prometheus(url, gpu_run(uuids=()))
    assert len(figures) == 2
    assert all('{Hostname="gpu-node-07"}' in query["query"] for _, query in server.requests)


@pytest.mark.parametrize(
    ("status", "body", "message"),
    [
        (503, '{"status":"error","errorType":"unavailable","error":"TSDB not ready"}', "answered 503: TSDB not ready"),
        (200, "<html>login</html>", "answered something that is not JSON"),
        (200, '{"hello": "world"}', "answered JSON that is not its query API's"),
        (400, '{"status":"error","errorType":"bad_data","error":"1:20: parse error"}', "answered 400: 1:20: parse"),
    ],
)
def test_a_prometheus_that_answers_wrongly_is_one_line(status: int, body: str, message: str) -> None:
    server = Server(lambda path, query: (status, "application/json", body.encode()))
    with server.running() as url, pytest.raises(CounterError, match=message) as caught:
        dcgm_from_prometheus(url, gpu_run())
    assert "\n" not in str(caught.value)


def test_a_prometheus_that_is_down_is_one_line() -> None:
    with Server(pages("")).running() as url:
        closed = url
    with pytest.raises(CounterError, match=r"cannot reach Prometheus at http://127\.0\.0\.1:\d+/api/v1/query \("):
        dcgm_from_prometheus(closed, gpu_run(), timeout_s=2.0)


def test_credentials_in_the_url_never_reach_a_message_or_a_record(tmp_path: Path) -> None:
    with Server(prometheus().answer).running() as url:
        secret = url.replace("http://", "http://admin:s3cret@")
        figures = dcgm_from_prometheus(secret, gpu_run(uuids=(GPU0,)))
    assert url in figures[0].detail and "s3cret" not in figures[0].detail and "admin" not in figures[0].detail
