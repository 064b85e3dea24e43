from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.store import pgserver
from wattwise.store import SQLiteStore
from wattwise.store.base import RunStore

ENGINES = ("sqlite", "postgresql")


@pytest.fixture(scope="session")
def pg() -> Iterator[pgserver.PgServer]:
    """A real PostgreSQL server for the whole session (started on first use, stopped by its pid)."""
    why = pgserver.missing()
    if why is not None:
        if os.environ.get("CI"):
            pytest.fail(f"CI runs the store's tests on PostgreSQL too, but {why}")
        pytest.skip(f"no PostgreSQL here: {why}")
    server = pgserver.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(params=ENGINES)
def engine(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def store_url(engine: str, request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A fresh, empty store's URL on each engine: a SQLite file, or a new PostgreSQL database."""
    if engine == "sqlite":
        return str(tmp_path / "contract" / "wattwise.db")
    server: pgserver.PgServer = request.getfixturevalue("pg")
    return server.new_database()


@pytest.fixture
def store(engine: str, store_url: str) -> Iterator[RunStore]:
    """A fresh store on each engine: the contract every engine keeps is tested on all of them."""
    from wattwise.store import open_store

    if engine == "sqlite":
        with SQLiteStore(":memory:") as opened:
            yield opened
        return
    with open_store(store_url) as opened:
        yield opened


@pytest.fixture
def sqlite_store() -> Iterator[SQLiteStore]:
    """A fresh in-memory SQLite store, for what only SQLite does."""
    with SQLiteStore(":memory:") as opened:
        yield opened


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    """Where a file store goes; its directory does not exist yet."""
    return tmp_path / "home" / "wattwise.db"


@pytest.fixture
def file_store(db_path: Path) -> Iterator[SQLiteStore]:
    with SQLiteStore(db_path) as opened:
        yield opened
