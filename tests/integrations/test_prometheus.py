"""The Prometheus exporter, scraped over HTTP and parsed with Prometheus' own text parser, and the Pushgateway."""

from __future__ import annotations

import socket
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from typing import Any, ClassVar

import pytest

from tests.fakes.power import ConstantPowerSource, FakeHost
from wattwise.config import Settings
from wattwise.integrations.exporter import Exporter
from wattwise.integrations.prometheus import MachineMeter, PushgatewayObserver
from wattwise.measure.tracker import Tracker
from wattwise.netutil import bind

parser = pytest.importorskip("prometheus_client.parser")

POWER = {"gpu:0": 100.0, "cpu": 20.0}
ALLOWED_LABELS = {"channel", "component", "source", "region"}


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def scrape(port: int) -> dict[str, Any]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as response:
        assert response.headers["Content-Type"].startswith("text/plain; version=0.0.4")
        text = response.read().decode()
    return {family.name: family for family in parser.text_string_to_metric_families(text)}


def start(settings: Settings, state: Path) -> tuple[Exporter, threading.Thread]:
    meter = MachineMeter(settings, sources=[ConstantPowerSource(POWER)], host=FakeHost(), state_path=state)
    exporter = Exporter(meter, bind("127.0.0.1", free_port()), interval_s=0.05)
    thread = threading.Thread(target=exporter.serve_forever, daemon=True)
    thread.start()
    return exporter, thread


@pytest.fixture
def state(tmp_path: Path) -> Path:
    return tmp_path / "exporter-state.json"


def test_metrics_parse_and_counters_grow_and_survive_a_restart(settings: Settings, state: Path) -> None:
    exporter, thread = start(settings, state)
    try:
        time.sleep(0.4)
        first = scrape(exporter.port)
        time.sleep(0.3)
        second = scrape(exporter.port)
    finally:
        exporter.shutdown()
        thread.join(10)
    energy = {s.labels["channel"]: s.value for s in first["wattwise_energy_joules"].samples}
    later = {s.labels["channel"]: s.value for s in second["wattwise_energy_joules"].samples}
    assert first["wattwise_energy_joules"].type == "counter" and first["wattwise_power_watts"].type == "gauge"
    assert set(energy) == set(POWER) and all(later[c] > energy[c] > 0 for c in POWER)
    power = {s.labels["channel"]: s.value for s in second["wattwise_power_watts"].samples}
    assert power["gpu:0"] == pytest.approx(100.0, rel=0.2) and power["cpu"] == pytest.approx(20.0, rel=0.2)
    assert second["wattwise_emissions_grams"].samples[0].value > 0
    for family in second.values():  # bounded labels: never a run id
        for sample in family.samples:
            assert set(sample.labels) <= ALLOWED_LABELS, sample
    assert state.exists()

    again, thread = start(settings, state)  # a restart continues the counters
    try:
        resumed = {s.labels["channel"]: s.value for s in scrape(again.port)["wattwise_energy_joules"].samples}
    finally:
        again.shutdown()
        thread.join(10)
    assert all(resumed[c] >= later[c] for c in POWER)


def test_only_metrics_are_served(settings: Settings, state: Path) -> None:
    exporter, thread = start(settings, state)
    try:
        for path, method, status in (("/", "GET", 404), ("/metrics", "POST", 405)):
            request = urllib.request.Request(f"http://127.0.0.1:{exporter.port}{path}", method=method, data=b"")
            with pytest.raises(urllib.error.HTTPError) as caught:
                urllib.request.urlopen(request, timeout=10)
            assert caught.value.code == status
            caught.value.close()
    finally:
        exporter.shutdown()
        thread.join(10)


def test_a_damaged_state_file_starts_the_counters_again(settings: Settings, state: Path) -> None:
    state.write_text("{not json")
    meter = MachineMeter(settings, sources=[ConstantPowerSource(POWER)], host=FakeHost(), state_path=state)
    energy, grams = meter.totals()
    assert all(value < 1.0 for value in energy.values()) and grams >= 0
    meter.close()


def test_the_exporter_port_in_use_is_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    from wattwise.cli.main import main

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        assert main(["exporter", "--port", str(port), "--no-gpu"]) == 2
    err = capsys.readouterr().err
    assert f"port {port} on 127.0.0.1 is already in use" in err and err.count("\n") == 1


class _Gateway(BaseHTTPRequestHandler):
    received: ClassVar[list[tuple[str, str]]] = []

    def do_PUT(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"])).decode()
        _Gateway.received.append((self.path, body))
        self.send_response(200)
        self.end_headers()

    def log_message(self, format: str, *args: Any) -> None:
        return


@pytest.fixture
def gateway() -> Iterator[str]:
    _Gateway.received = []
    server = HTTPServer(("127.0.0.1", 0), _Gateway)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()
    thread.join(10)


def test_a_batch_run_is_pushed_to_the_pushgateway_when_it_ends(settings: Settings, gateway: str) -> None:
    observer = PushgatewayObserver(gateway, "nightly train")
    t = Tracker("train", settings=settings, sources=[ConstantPowerSource(POWER)], host=FakeHost(), observers=[observer])
    with t:
        time.sleep(0.2)
    assert observer.pushed and t.result is not None
    path, body = _Gateway.received[0]
    assert path == "/metrics/job/nightly%20train"
    families = {f.name: f for f in parser.text_string_to_metric_families(body)}
    energy = {s.labels["channel"]: s.value for s in families["wattwise_run_energy_joules"].samples}
    assert energy == {c.name: pytest.approx(c.energy_j) for c in t.result.components}
    assert families["wattwise_run_success"].samples[0].value == 1.0
    assert all(t.result.id not in str(s.labels) for f in families.values() for s in f.samples)


def test_a_pushgateway_that_is_down_warns_and_the_run_is_stored(
    settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    observer = PushgatewayObserver(f"http://127.0.0.1:{free_port()}", "job", timeout_s=2)
    t = Tracker("train", settings=settings, sources=[ConstantPowerSource(POWER)], host=FakeHost(), observers=[observer])
    with t:
        time.sleep(0.1)
    assert t.result is not None and t.result.status == "complete" and not observer.pushed
    assert "could not push run" in caplog.text


def test_negative_totals_in_the_state_file_are_ignored(settings: Settings, state: Path) -> None:
    state.write_text('{"energy_j": {"cpu": -1000000, "gpu:0": 5}, "co2e_g": 1}')
    meter = MachineMeter(settings, sources=[ConstantPowerSource(POWER)], host=FakeHost(), state_path=state)
    energy, _ = meter.totals()
    assert energy["cpu"] >= 0 and energy["gpu:0"] >= 5
    meter.close()


def test_job_names_with_a_slash_use_the_pushgateways_base64_form() -> None:
    observer = PushgatewayObserver("http://127.0.0.1:9091/", "team/nightly")
    assert observer.target == "http://127.0.0.1:9091/metrics/job@base64/dGVhbS9uaWdodGx5"


def test_a_gateway_that_never_answers_holds_the_run_up_only_for_the_timeout(settings: Settings) -> None:
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(1)  # accepts, never answers
    try:
        observer = PushgatewayObserver(f"http://127.0.0.1:{silent.getsockname()[1]}", "job", timeout_s=1)
        t = Tracker("t", settings=settings, sources=[ConstantPowerSource(POWER)], host=FakeHost(), observers=[observer])
        t.start()
        began = time.monotonic()
        t.stop()
        assert time.monotonic() - began < 3 and not observer.pushed
    finally:
        silent.close()
