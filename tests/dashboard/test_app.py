"""The dashboard in-process (Starlette's TestClient): pages, JSON, refusals, the token and the read-only store."""

from __future__ import annotations

import http.client
import socket
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

pytest.importorskip("starlette")
pytest.importorskip("jinja2")

from starlette.testclient import TestClient

from tests.report.runs import store_with_runs
from wattwise.dashboard.app import create_app
from wattwise.dashboard.auth import LOOPBACK_HOSTS
from wattwise.errors import ConfigError
from wattwise.records import Run
from wattwise.store import open_store

TOKEN = "t0ken-for-the-tests-1234"


@pytest.fixture
def db(tmp_path: Path) -> tuple[Path, list[Run]]:
    path = tmp_path / "runs.db"
    with open_store(str(path)) as store:
        runs = store_with_runs(store, 3)
    return path, runs


@pytest.fixture
def client(db: tuple[Path, list[Run]]) -> Iterator[TestClient]:
    store = open_store(str(db[0]), read_only=True)
    with TestClient(create_app(store, allowed_hosts=(*LOOPBACK_HOSTS, "testserver"))) as c:
        yield c
    store.close()


def test_runs_list_page_and_json(client: TestClient, db: tuple[Path, list[Run]]) -> None:
    runs = db[1]
    page = client.get("/")
    assert page.status_code == 200 and all(r.id in page.text for r in runs)
    assert "default-src 'none'" in page.headers["content-security-policy"]
    data = client.get("/api/runs", params={"sort": "energy", "order": "asc"}).json()
    energies = [r["energy_j"] for r in data["runs"]]
    assert energies == sorted(energies) and data["count"] == 3
    assert client.get("/api/runs", params={"name": "train-1"}).json()["count"] == 1
    assert client.get("/api/runs", params={"limit": 1, "offset": 1}).json()["runs"][0]["id"] == runs[1].id


def test_run_page_has_the_report_plots_and_json_has_the_data(client: TestClient, db: tuple[Path, list[Run]]) -> None:
    run = db[1][0]
    page = client.get(f"/runs/{run.id[:17]}")  # a unique prefix
    assert page.status_code == 200 and 'id="chart-power"' in page.text and "ww-series" in page.text
    data = client.get(f"/api/runs/{run.id}").json()
    assert data["run"]["id"] == run.id and data["raw_samples"] == 600 and len(data["predictions"]) == 5
    samples = client.get(f"/api/runs/{run.id}/samples", params={"channel": "gpu:0"}).json()
    assert samples["count"] == 300
    latest = client.get("/runs/latest", follow_redirects=False)
    assert latest.status_code == 303 and latest.headers["location"] == f"/runs/{db[1][-1].id}"


def test_compare_page_and_json(client: TestClient, db: tuple[Path, list[Run]]) -> None:
    a, b, _ = db[1]
    page = client.get("/compare", params={"ids": f"{a.id},{b.id}"})
    assert page.status_code == 200 and 'id="chart-energy"' in page.text
    data = client.get("/api/compare", params=[("ids", a.id), ("ids", b.id)]).json()
    assert [r["id"] for r in data["runs"]] == [a.id, b.id] and data["callouts"]
    assert client.get("/compare").status_code == 200  # the picker
    assert client.get("/api/compare", params={"ids": a.id}).status_code == 400


@pytest.mark.parametrize(
    "path",
    [
        "/api/runs/1' OR '1'='1",
        "/api/runs/..%2F..%2Fetc%2Fpasswd",
        "/api/runs/abc",
        "/api/runs?sort=energy_j;DROP",
        "/api/runs?limit=-1",
        "/api/runs?status=done",
        "/api/compare?ids=a'--,b",
    ],
)
def test_bad_requests_get_an_error_and_no_data(client: TestClient, path: str) -> None:
    response = client.get(path)
    assert response.status_code in (400, 404)
    assert "error" in response.json() and "runs" not in response.json()


def test_unknown_run_is_404_with_one_line(client: TestClient) -> None:
    response = client.get("/runs/zzzz9999")
    assert response.status_code == 404 and "no run matches" in response.text
    assert client.get("/api/runs/zzzz9999").json() == {
        "error": "no run matches 'zzzz9999'; `wattwise runs list` shows ids"
    }


def test_raw_traversal_path_never_reaches_a_file(db: tuple[Path, list[Run]]) -> None:
    """Sent as is, without a client normalising the dots."""
    import uvicorn

    store = open_store(str(db[0]), read_only=True)
    app = create_app(store, allowed_hosts=LOOPBACK_HOSTS)
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="off"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    try:
        for _ in range(100):
            if server.started:
                break
            threading.Event().wait(0.05)
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        closing = conn
        conn.request("GET", "/api/runs/../../etc/passwd")
        response = conn.getresponse()
        body = response.read().decode()
        assert response.status in (400, 404) and "root:" not in body
        conn.request("GET", "/api/runs", headers={"Host": "attacker.example"})
        response = conn.getresponse()
        response.read()
        assert response.status == 421
        closing.close()
    finally:
        server.should_exit = True
        thread.join(10)
        store.close()


def test_writes_are_not_routed(client: TestClient) -> None:
    for method in ("POST", "PUT", "DELETE", "PATCH"):
        assert client.request(method, "/api/runs").status_code == 405


def test_token_is_required_when_given(db: tuple[Path, list[Run]]) -> None:
    store = open_store(str(db[0]), read_only=True)
    with TestClient(create_app(store, token=TOKEN)) as c:
        for headers in ({}, {"Authorization": "Bearer wrong-token-000000000"}):
            response = c.get("/api/runs", headers=headers)
            assert response.status_code == 401 and "runs" not in response.json()
        assert c.get("/?token=wrong").status_code == 401
        ok = c.get("/api/runs", headers={"Authorization": f"Bearer {TOKEN}"})
        assert ok.status_code == 200 and ok.json()["count"] == 3 and ok.headers["cache-control"] == "no-store"
        redirect = c.get(f"/?token={TOKEN}&status=complete", follow_redirects=False)
        assert redirect.status_code == 303 and redirect.headers["location"] == "/?status=complete"
        assert "HttpOnly" in redirect.headers["set-cookie"] and "SameSite=Strict" in redirect.headers["set-cookie"]
        assert c.get("/").status_code == 200  # the cookie now carries it
    store.close()


def test_the_app_refuses_a_writable_store(tmp_path: Path) -> None:
    with open_store(str(tmp_path / "w.db")) as store, pytest.raises(ConfigError, match="read-only"):
        create_app(store)


def test_a_dashboard_never_changes_the_store(db: tuple[Path, list[Run]], client: TestClient) -> None:
    before = db[0].read_bytes()
    for path in ("/", "/api/runs", f"/runs/{db[1][0].id}", "/compare", "/api/runs/zzzz0000"):
        client.get(path)
    assert db[0].read_bytes() == before


def test_saved_estimates_and_plans_are_listed_and_shown(tmp_path: Path) -> None:
    from datetime import UTC, datetime

    from tests.schedule.conftest import synthetic, write_trace
    from wattwise.cli.main import main

    year_trace_csv = write_trace(tmp_path / "trace.csv", synthetic(24 * 60, seed=3), datetime(2022, 2, 1, tzinfo=UTC))
    db = str(tmp_path / "artifacts.db")
    assert (
        main(
            [
                "estimate",
                "training",
                "--hardware",
                "H100-SXM",
                "--devices",
                "8",
                "--hours",
                "24",
                "--region",
                "DE",
                "--save",
                "--name",
                "llama-<7b>",
                "--db",
                db,
            ]
        )
        == 0
    )
    assert (
        main(
            [
                "estimate",
                "inference",
                "--hardware",
                "H100-SXM",
                "--params",
                "8e9",
                "--tokens-per-request",
                "500",
                "--batch",
                "128",
                "--requests-per-day",
                "1e5",
                "--save",
                "--json",
                "--db",
                db,
            ]
        )
        == 0
    )
    assert (
        main(
            [
                "schedule",
                "plan",
                "--trace",
                str(year_trace_csv),
                "--at",
                "2022-03-01T06:00Z",
                "--duration",
                "4h",
                "--window",
                "24h",
                "--save",
                "--name",
                "nightly",
                "--db",
                db,
            ]
        )
        == 0
    )
    store = open_store(db, read_only=True)
    with TestClient(create_app(store)) as c:
        estimates = c.get("/api/estimates").json()
        assert [i["kind"] for i in estimates["items"]] == ["inference-estimate", "training-estimate"]
        listing = c.get("/estimates").text
        assert "llama-&lt;7b&gt;" in listing and "<7b>" not in listing
        page = c.get("/estimates/latest")
        assert page.status_code == 200 and "Inference estimate" in page.text and "Source:" in page.text
        training_id = estimates["items"][1]["id"]
        assert "Training estimate" in c.get(f"/estimates/{training_id}").text
        plan = c.get("/plans/latest")
        assert plan.status_code == 200 and 'id="chart-outlook"' in plan.text and "what happened" in plan.text
        assert c.get("/api/plans").json()["items"][0]["name"] == "nightly"
        assert c.get(f"/plans/{training_id}").status_code == 404  # an estimate is not a plan
        assert c.get("/estimates/zzzz0000").status_code == 404
    store.close()


def test_samples_come_in_pages(client: TestClient, db: tuple[Path, list[Run]]) -> None:
    run = db[1][0]
    first = client.get(f"/api/runs/{run.id}/samples", params={"limit": 250}).json()
    assert first["count"] == 250 and first["next_offset"] == 250
    last = client.get(f"/api/runs/{run.id}/samples", params={"limit": 500, "offset": 500}).json()
    assert last["count"] == 100 and last["next_offset"] is None
    assert client.get(f"/api/runs/{run.id}/samples", params={"limit": 10**9}).status_code == 400


def test_a_redirect_after_the_token_stays_on_this_host(db: tuple[Path, list[Run]]) -> None:
    store = open_store(str(db[0]), read_only=True)
    with TestClient(create_app(store, token=TOKEN)) as c:
        response = c.get(f"http://testserver//evil.example/x?token={TOKEN}", follow_redirects=False)
        assert response.status_code == 303 and response.headers["location"].startswith("/evil.example")
    store.close()


def test_the_token_variable_is_not_a_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    from wattwise.config import Settings

    monkeypatch.setenv("WATTWISE_DASHBOARD_TOKEN", TOKEN)
    Settings.load({})  # other commands must not refuse it as an unknown setting


def test_a_dashboard_on_another_loopback_address_answers_to_it(db: tuple[Path, list[Run]]) -> None:
    from wattwise.dashboard.server import prepare

    app, token = prepare(str(db[0]), "127.0.0.2", None)
    assert token is None
    with TestClient(app, base_url="http://127.0.0.2:8787") as c:
        assert c.get("/api/runs").status_code == 200


def test_a_missing_store_is_refused_at_start(tmp_path: Path) -> None:
    from wattwise.dashboard.server import prepare

    with pytest.raises(ConfigError, match=r"no run store at .*check --db"):
        prepare(str(tmp_path / "typo" / "runs.db"), "127.0.0.1", None)
