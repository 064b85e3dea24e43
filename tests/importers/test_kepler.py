"""Kepler's per-pod joules: live from a (local) Kepler exporter (the figures the observer gives the tracker), and
afterwards from a (local) Prometheus."""

from __future__ import annotations

import logging
from datetime import timedelta

import pytest

from tests.fakes.power import ConstantPowerSource, FakeHost
from tests.importers.runs import T0, gpu_run
from tests.importers.servers import FakePrometheus, Series, Server, page, pages
from wattwise.config import Settings
from wattwise.errors import ConfigError, CounterError
from wattwise.importers import KeplerCounters, counterpart, kepler_from_prometheus
from wattwise.importers.kepler import DEFAULT_METRIC
from wattwise.measure.tracker import Tracker

OLD = {"TD": 51234.25, "TI": 20480.5, "SD": 312.75, "SI": 401.0}  # trainer and log-shipper, dynamic and idle


def old_page(**added: float) -> str:
    return page("kepler-0.7.txt", **{k: v + added.get(k, 0.0) for k, v in OLD.items()})


def live(*texts: str, pod: str = "ml/train-7f9c", metric: str = DEFAULT_METRIC) -> KeplerCounters:
    """The observer told of a run's start then asked for its figures, the exporter serving ``texts`` in turn."""
    with Server(pages(*texts)).running() as url:
        observer = KeplerCounters(f"{url}/metrics", pod=pod, metric=metric)
        observer.run_started(gpu_run().replace(status="running"))
        figures = observer.external_figures(gpu_run())
    assert list(figures) == observer.figures
    return observer


def test_live_pod_energy_sums_its_containers_and_modes() -> None:
    added = {"TD": 9000.0, "TI": 1500.0, "SD": 20.0, "SI": 30.5}
    (figure,) = live(old_page(), old_page(**added)).figures
    assert figure.source == "kepler" and figure.scope == "pod ml/train-7f9c"
    assert figure.energy_j == pytest.approx(sum(added.values()))  # the other pod's series are not counted
    assert "4 series summed over the pod's containers and modes" in figure.detail
    assert 'container_namespace="ml"' in figure.detail and "zones" not in figure.detail
    run = gpu_run().with_external([figure])
    side = counterpart(run, figure)  # the whole pod: against the run's total
    assert side.energy_j == run.energy_j


def test_kepler_0_10_pod_metric_adds_package_and_dram_not_core() -> None:
    start = {"PK": 81234.5, "CO": 60211.0, "DR": 9123.25}
    end = {"PK": start["PK"] + 2400.0, "CO": start["CO"] + 2000.0, "DR": start["DR"] + 150.0}
    texts = (page("kepler-0.10.txt", **start), page("kepler-0.10.txt", **end))
    (figure,) = live(*texts, metric="kepler_pod_cpu_joules_total").figures
    assert figure.scope == "pod ml/train-7f9c (cpu, dram)"
    assert figure.energy_j == pytest.approx(2400.0 + 150.0)  # core is inside package
    assert "2 series summed over the pod's zones (package and dram; core and uncore" in figure.detail
    assert "containers" not in figure.detail and "modes" not in figure.detail  # the pod metric has neither label
    run = gpu_run()
    side = counterpart(run, figure)
    expected = sum(c.energy_j for c in run.components if c.component in ("cpu", "dram"))
    assert side.energy_j == pytest.approx(expected)


def test_a_container_started_during_the_run_counts_from_zero() -> None:
    start = "\n".join(line for line in old_page().splitlines() if "log-shipper" not in line) + "\n"
    (figure,) = live(start, old_page(TD=100.0)).figures
    assert figure.energy_j == pytest.approx(100.0 + OLD["SD"] + OLD["SI"])
    assert "2 of them started during the run" in figure.detail


def test_a_container_gone_at_the_end_is_refused() -> None:
    end = "\n".join(line for line in old_page(TD=5.0).splitlines() if "log-shipper" not in line) + "\n"
    with pytest.raises(CounterError, match="is gone at its end"):
        live(old_page(), end)


def test_a_pod_that_is_not_there_is_named() -> None:
    with pytest.raises(CounterError, match=r"no series of pod ml/elsewhere .*kepler_pod_cpu_joules_total"):
        live(old_page(), pod="ml/elsewhere")


@pytest.mark.parametrize("pod", ["train-7f9c", "ML/Train", "ml/", "/x", "ml/a/b", "ml/" + "x" * 300])
def test_a_bad_pod_is_refused_before_anything_is_read(pod: str) -> None:
    with pytest.raises(ConfigError, match="must be NAMESPACE/NAME of a pod"):
        KeplerCounters("http://127.0.0.1:9/metrics", pod=pod)


def test_from_prometheus_the_pod_is_its_power_times_the_counters_window() -> None:
    run = gpu_run()
    scrape_s = 30.0
    first = (T0 - timedelta(minutes=10)).timestamp() // scrape_s * scrape_s
    times = [first + i * scrape_s for i in range(60)]
    watts = {("trainer", "dynamic"): 180.0, ("trainer", "idle"): 35.0, ("sidecar", "dynamic"): 2.0}
    series = []
    for (container, mode), power in watts.items():
        labels = {
            "__name__": "kepler_container_joules_total",
            "container_namespace": "ml",
            "pod_name": "train-7f9c",
            "container_name": container,
            "mode": mode,
            "instance": "gpu-node-07:9102",
            "job": "kepler",
        }
        series.append(Series(labels, [(t, 1e6 + power * (t - first)) for t in times]))
    other = {**series[0].labels, "pod_name": "frontend-5d8b", "container_namespace": "web"}
    series.append(Series(other, [(t, 5e5 + 900.0 * (t - first)) for t in times]))
    server = Server(FakePrometheus(series).answer)
    with server.running() as url:
        (figure,) = kepler_from_prometheus(url, run, namespace="ml", pod="train-7f9c")
    assert figure.started_at is not None and figure.ended_at is not None
    window_s = (figure.ended_at - figure.started_at).total_seconds()
    assert figure.energy_j == pytest.approx(sum(watts.values()) * window_s)
    assert all('container_namespace="ml",pod_name="train-7f9c"' in q["query"] for _, q in server.requests)


def test_a_wrong_pod_fails_as_the_run_starts_and_the_run_goes_on(
    settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    server = Server(pages(old_page(), old_page(TD=10.0)))
    with server.running() as url, caplog.at_level(logging.WARNING):
        observer = KeplerCounters(f"{url}/metrics", pod="ml/elsewhere")
        source = ConstantPowerSource({"cpu": 10.0})
        tracker = Tracker("t", settings=settings, sources=[source], host=FakeHost(), observers=[observer])
        with tracker:
            lines = [r.getMessage() for r in caplog.records if "KeplerCounters" in r.getMessage()]
            assert len(lines) == 1 and "failed in run_started" in lines[0] and "ml/elsewhere" in lines[0], lines
    assert len(server.requests) == 1  # detached at the start: the end is not read
    assert tracker.result is not None and tracker.result.status == "complete" and tracker.result.external == ()
    assert len([r for r in caplog.records if "KeplerCounters" in r.getMessage()]) == 1


def test_a_series_that_holds_no_number_at_the_start_is_refused_then() -> None:
    with Server(pages(old_page().replace(f" {OLD['TD']}", " NaN"))).running() as url:
        observer = KeplerCounters(f"{url}/metrics", pod="ml/train-7f9c")
        with pytest.raises(CounterError, match=r"pod ml/train-7f9c reads nan, which no energy counter can hold"):
            observer.run_started(gpu_run().replace(status="running"))
