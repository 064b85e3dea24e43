"""What only the PostgreSQL store does: its server, other applications' databases, logins and reconnects."""

from __future__ import annotations

import multiprocessing
from pathlib import Path

import pytest

from tests.store import pgserver
from wattwise.errors import RunNotFoundError, StoreError, StoreRefused, StoreUnreachable
from wattwise.store import SPOOL, SQLiteStore, open_store
from wattwise.store.postgres import redact

from .builders import make_run

psycopg = pytest.importorskip("psycopg")


def _open_and_count(url: str) -> str:
    try:
        with open_store(url) as store:
            return str(store.count())
    except StoreError as exc:
        return f"error: {exc}"


def test_processes_creating_the_schema_at_once_all_succeed(pg: pgserver.PgServer) -> None:
    for _ in range(3):
        url = pg.new_database()
        with multiprocessing.get_context("spawn").Pool(6) as pool:
            results = pool.map(_open_and_count, [url] * 6)
        assert results == ["0"] * 6, results


def test_another_applications_database_is_never_changed(pg: pgserver.PgServer) -> None:
    url = pg.new_database()
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("CREATE TABLE runs (run_uuid TEXT PRIMARY KEY, name TEXT)")
        conn.execute("CREATE TABLE experiments (id INT)")
    for read_only in (False, True):
        with pytest.raises(StoreError, match="not a wattwise run store"):
            open_store(url, read_only=read_only)
    with psycopg.connect(url, autocommit=True) as conn:
        tables = {r[0] for r in conn.execute("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")}
    assert tables == {"runs", "experiments"}  # no migrations table was left behind


def test_an_empty_database_reads_as_an_empty_store(pg: pgserver.PgServer) -> None:
    url = pg.new_database()
    with open_store(url, read_only=True) as store:
        assert store.list_runs() == [] and store.count() == 0 and store.list_artifacts() == []
        with pytest.raises(RunNotFoundError):
            store.get("latest")
    with psycopg.connect(url, autocommit=True) as conn:  # and reading created nothing
        assert conn.execute("SELECT count(*) FROM pg_tables WHERE schemaname = 'public'").fetchone() == (0,)


@pytest.mark.parametrize(
    "url",
    [
        "postgresql://bob:pw1@127.0.0.1:1/db",
        "postgresql://bob@127.0.0.1:1/db?password=pw1",
        "host=127.0.0.1 port=1 user=bob password=pw1 dbname=db",
    ],
)
def test_passwords_never_appear(url: str) -> None:
    assert "pw1" not in redact(url) and "127.0.0.1" in redact(url)
    with pytest.raises(StoreUnreachable) as caught:
        open_store(url if "://" in url else "postgresql://bob:pw1@127.0.0.1:1/db")
    assert "pw1" not in str(caught.value)


def test_a_refused_login_keeps_the_run_locally_and_says_what_to_fix(
    pg: pgserver.PgServer, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    url = pg.new_database().replace("wattwise@", "nobody@")  # no such role
    with pytest.raises(StoreRefused) as caught:
        open_store(url)
    assert not isinstance(caught.value, StoreUnreachable) and "refused the connection" in str(caught.value)
    from tests.fakes.power import ConstantPowerSource, FakeHost
    from wattwise.config import Settings
    from wattwise.measure.tracker import Tracker

    settings = Settings.load({"gpu": False, "home": str(tmp_path / "home"), "db": url, "rapl_root": "/nonexistent"})
    with Tracker("x", settings=settings, sources=[ConstantPowerSource({"cpu": 1.0})], host=FakeHost()) as tracker:
        pass
    (line,) = [r.getMessage() for r in caplog.records if "refused the connection" in r.getMessage()]
    assert "fix WATTWISE_DB" in line and "wattwise runs sync" in line and "nobody" in line
    with SQLiteStore(tmp_path / "home" / SPOOL, read_only=True) as spool:
        assert spool.get(tracker.run_id or "").status == "complete"


def test_references_postgresql_cannot_hold_are_not_found(store_url: str, engine: str) -> None:
    with open_store(store_url) as store:
        store.save(make_run("abcd0001"))
        for ref in ("ab\x00cd", "abcd\udcff", "\udcff\udcfe\udcfd\udcfc"):
            with pytest.raises(RunNotFoundError):
                store.get(ref)
            with pytest.raises(RunNotFoundError):
                store.delete(ref)


def test_filters_match_names_exactly(store_url: str) -> None:
    with open_store(store_url) as store:
        store.save(make_run("nul00001", name="a\x00b"))
        store.save(make_run("mark0001", name="a?b"))
        assert [r.id for r in store.list_runs(name="a?b")] == ["mark0001"]
        assert [r.id for r in store.list_runs(name="a\x00b")] == ["nul00001"]


def test_the_store_reconnects_after_its_connection_is_lost(pg: pgserver.PgServer) -> None:
    url = pg.new_database()
    with open_store(url) as store:
        store.save(make_run("before01"))
        with psycopg.connect(url, autocommit=True) as admin:  # what a server restart does to a client
            admin.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE pid <> pg_backend_pid()")
        with pytest.raises(StoreError):
            store.save(make_run("during01"))  # the call that finds the connection gone fails…
        store.save(make_run("after001"))  # …the next one reconnects
        assert {r.id for r in store.list_runs()} == {"before01", "after001"}
