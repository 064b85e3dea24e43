from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from wattwise.store import SQLiteStore


@pytest.fixture
def store() -> Iterator[SQLiteStore]:
    """A fresh in-memory store."""
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
