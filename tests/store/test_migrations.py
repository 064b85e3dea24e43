from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from wattwise.errors import StoreError
from wattwise.store import SQLiteStore
from wattwise.store.migrations import SQLITE_MIGRATIONS, Migration, applied_migrations, apply_migrations

from .builders import make_run


def ledger(db: Path) -> list[tuple[str, str]]:
    conn = sqlite3.connect(db)
    try:
        return conn.execute("SELECT name, applied_at FROM migrations ORDER BY rowid").fetchall()
    finally:
        conn.close()


def schema(db: Path) -> set[tuple[str, str]]:
    conn = sqlite3.connect(db)
    try:
        return set(conn.execute("SELECT type, name FROM sqlite_master WHERE name NOT LIKE 'sqlite_%'"))
    finally:
        conn.close()


def test_a_new_database_gets_every_migration_once(db_path: Path) -> None:
    SQLiteStore(db_path).close()
    assert [name for name, _ in ledger(db_path)] == [m.name for m in SQLITE_MIGRATIONS]
    assert schema(db_path) >= {
        ("table", "runs"),
        ("table", "samples"),
        ("table", "migrations"),
        ("index", "samples_run_t"),
        ("index", "runs_started_at"),
    }
    conn = sqlite3.connect(db_path)
    try:
        assert conn.execute("PRAGMA journal_mode").fetchone() == ("wal",)
    finally:
        conn.close()


def test_reopening_applies_nothing_and_keeps_the_data(db_path: Path) -> None:
    with SQLiteStore(db_path) as store:
        store.save(make_run())
    before = ledger(db_path)
    for _ in range(3):
        with SQLiteStore(db_path) as store:
            assert store.get("latest") == make_run()
    assert ledger(db_path) == before


def test_apply_migrations_is_idempotent_on_one_connection() -> None:
    conn = sqlite3.connect(":memory:", isolation_level=None)
    try:
        steps = [Migration("a", ("CREATE TABLE a (x)",)), Migration("b", ("CREATE TABLE b (x)",))]
        assert apply_migrations(conn, ":memory:", steps[:1]) == ["a"]
        assert apply_migrations(conn, ":memory:", steps) == ["b"]
        assert apply_migrations(conn, ":memory:", steps) == []
        assert applied_migrations(conn) == ["a", "b"]
    finally:
        conn.close()


def test_a_failing_migration_is_rolled_back_and_not_recorded() -> None:
    conn = sqlite3.connect(":memory:", isolation_level=None)
    try:
        steps = [
            Migration("good", ("CREATE TABLE good (x)",)),
            Migration("bad", ("CREATE TABLE half (x)", "INSERT INTO half VALUES (1)", "CREATE TABLE oops (")),
        ]
        with pytest.raises(StoreError) as caught:
            apply_migrations(conn, "test.db", steps)
        assert str(caught.value).startswith("migration bad failed on test.db: ")
        assert str(caught.value).endswith("; it was rolled back")
        assert applied_migrations(conn) == ["good"]
        tables = {row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        assert tables == {"migrations", "good"}
        assert not conn.in_transaction
    finally:
        conn.close()


def test_a_database_from_a_newer_wattwise_is_refused_untouched(db_path: Path) -> None:
    with SQLiteStore(db_path) as store:
        store.save(make_run())
    conn = sqlite3.connect(db_path)
    with conn:
        conn.execute("INSERT INTO migrations VALUES ('0042_from_the_future', '2030-01-01T00:00:00+00:00')")
    conn.close()
    before = db_path.read_bytes()
    with pytest.raises(StoreError) as caught:
        SQLiteStore(db_path)
    assert str(caught.value) == (
        f"database {db_path} was created by a newer wattwise (unknown migrations: 0042_from_the_future); "
        "upgrade wattwise to open it"
    )
    assert db_path.read_bytes() == before


@pytest.mark.parametrize(
    "ddl",
    [
        "CREATE TABLE users (id INTEGER PRIMARY KEY, email TEXT)",
        "CREATE TABLE migrations (id, migration, batch)",
    ],
    ids=["other-tables", "someone-elses-migrations-table"],
)
def test_another_applications_database_is_refused_untouched(tmp_path: Path, ddl: str) -> None:
    db = tmp_path / "app.db"
    conn = sqlite3.connect(db)
    with conn:
        conn.execute(ddl)
    conn.close()
    before = db.read_bytes()
    with pytest.raises(StoreError, match=r"is a SQLite database but not a wattwise run store \(tables: "):
        SQLiteStore(db)
    assert db.read_bytes() == before
