"""Named schema migrations of the SQLite run store, each applied once in its own transaction.

Append new steps to :data:`SQLITE_MIGRATIONS`; never edit or reorder a released one. Every applied step is
recorded by name in the ``migrations`` table, so reopening a database applies only what is missing, and a
database that records a name this version does not know was created by a newer wattwise and is refused.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime

from wattwise.errors import StoreError

__all__ = [
    "OPTIONAL_FOR_READING",
    "POSTGRES_MIGRATIONS",
    "SQLITE_MIGRATIONS",
    "Migration",
    "applied_migrations",
    "apply_migrations",
    "transaction",
]


@dataclass(frozen=True, slots=True)
class Migration:
    """One schema step: a unique name and the SQL statements applied together."""

    name: str
    statements: tuple[str, ...]


SQLITE_MIGRATIONS: tuple[Migration, ...] = (
    Migration(
        "0001_runs_and_samples",
        (
            """
            CREATE TABLE runs (
                id TEXT PRIMARY KEY,
                name TEXT NOT NULL,
                status TEXT NOT NULL,
                started_at TEXT NOT NULL,
                ended_at TEXT,
                duration_s REAL NOT NULL,
                energy_j REAL NOT NULL,
                co2e_g REAL NOT NULL,
                region TEXT NOT NULL,
                host TEXT NOT NULL,
                pid INTEGER NOT NULL,
                heartbeat_at TEXT NOT NULL,
                record TEXT NOT NULL
            )
            """,
            "CREATE INDEX runs_started_at ON runs (started_at)",
            "CREATE INDEX runs_status ON runs (status)",
            """
            CREATE TABLE samples (
                run_id TEXT NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
                t_s REAL NOT NULL,
                channel TEXT NOT NULL,
                power_w REAL NOT NULL,
                energy_j REAL NOT NULL
            )
            """,
            # (run_id, t_s) as asked for reads by time; channel (and the implicit rowid) make the index cover
            # the full streaming order, so iter_samples never sorts.
            "CREATE INDEX samples_run_t ON samples (run_id, t_s, channel)",
        ),
    ),
    Migration(
        "0002_artifacts",
        (
            # estimates and schedule plans saved beside the runs (``--save``); ``record`` is the artifact's JSON
            """
            CREATE TABLE artifacts (
                id TEXT PRIMARY KEY,
                kind TEXT NOT NULL,
                name TEXT NOT NULL,
                created_at TEXT NOT NULL,
                record TEXT NOT NULL
            )
            """,
            "CREATE INDEX artifacts_kind_created ON artifacts (kind, created_at)",
        ),
    ),
)
# The same schema on PostgreSQL (wattwise.store.postgres): ``seq`` keeps insertion order (SQLite's rowid); a
# sample's channel is stored as its UTF-8 bytes, so any name survives (PostgreSQL text refuses NUL) and samples
# come back in code-point order whatever the server's collation
POSTGRES_MIGRATIONS: tuple[Migration, ...] = (
    Migration(
        "0001_runs_and_samples",
        (
            """
            CREATE TABLE runs (
                id TEXT PRIMARY KEY,
                name TEXT NOT NULL,
                status TEXT NOT NULL,
                started_at TEXT NOT NULL,
                ended_at TEXT,
                duration_s DOUBLE PRECISION NOT NULL,
                energy_j DOUBLE PRECISION NOT NULL,
                co2e_g DOUBLE PRECISION NOT NULL,
                region TEXT NOT NULL,
                host TEXT NOT NULL,
                pid BIGINT NOT NULL,
                heartbeat_at TEXT NOT NULL,
                record TEXT NOT NULL,
                seq BIGSERIAL
            )
            """,
            "CREATE INDEX runs_started_at ON runs (started_at)",
            "CREATE INDEX runs_status ON runs (status)",
            """
            CREATE TABLE samples (
                seq BIGSERIAL PRIMARY KEY,
                run_id TEXT NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
                t_s DOUBLE PRECISION NOT NULL,
                channel BYTEA NOT NULL,
                power_w DOUBLE PRECISION NOT NULL,
                energy_j DOUBLE PRECISION NOT NULL
            )
            """,
            "CREATE INDEX samples_run_t ON samples (run_id, t_s, channel, seq)",
        ),
    ),
    Migration(
        "0002_artifacts",
        (
            """
            CREATE TABLE artifacts (
                id TEXT PRIMARY KEY,
                kind TEXT NOT NULL,
                name TEXT NOT NULL,
                created_at TEXT NOT NULL,
                record TEXT NOT NULL,
                seq BIGSERIAL
            )
            """,
            "CREATE INDEX artifacts_kind_created ON artifacts (kind, created_at)",
        ),
    ),
)
# steps that only add tables: a reader of a store that lacks them still reads runs (and sees no artifacts)
OPTIONAL_FOR_READING = frozenset({"0002_artifacts"})

_CREATE_LEDGER = "CREATE TABLE IF NOT EXISTS migrations (name TEXT PRIMARY KEY, applied_at TEXT NOT NULL)"


def applied_migrations(conn: sqlite3.Connection) -> list[str]:
    """Names recorded in the ``migrations`` table, in the order they were applied."""
    return [row[0] for row in conn.execute("SELECT name FROM migrations ORDER BY applied_at, rowid")]


def apply_migrations(
    conn: sqlite3.Connection, where: str, migrations: Sequence[Migration] = SQLITE_MIGRATIONS
) -> list[str]:
    """Apply the steps not yet recorded, each in its own transaction; return the names applied now.

    ``conn`` must be in autocommit mode (``isolation_level=None``). A step that fails is rolled back, is not
    recorded, and raises StoreError; the steps before it stay applied. Each transaction takes the write lock
    first and re-checks the ledger, so two processes opening a new database at once apply every step once.
    A database that is already up to date is not written to.
    """
    has_ledger = conn.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'migrations'")
    if has_ledger.fetchone() is None:
        with transaction(conn):
            conn.execute(_CREATE_LEDGER)
    applied = set(applied_migrations(conn))
    known = {m.name for m in migrations}
    unknown = sorted(applied - known)
    if unknown:
        raise StoreError(
            f"database {where} was created by a newer wattwise (unknown migrations: {', '.join(unknown)}); "
            "upgrade wattwise to open it"
        )
    applied_now: list[str] = []
    for migration in migrations:
        if migration.name in applied:  # a fully migrated database is opened without writing
            continue
        try:
            with transaction(conn):
                done = conn.execute("SELECT 1 FROM migrations WHERE name = ?", (migration.name,)).fetchone()
                if done is not None:
                    continue
                for statement in migration.statements:
                    conn.execute(statement)  # static SQL: a released migration's statement
                conn.execute(
                    "INSERT INTO migrations (name, applied_at) VALUES (?, ?)",
                    (migration.name, datetime.now(UTC).isoformat(timespec="microseconds")),
                )
        except sqlite3.Error as exc:
            reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            raise StoreError(f"migration {migration.name} failed on {where}: {reason}; it was rolled back") from exc
        applied_now.append(migration.name)
    return applied_now


@contextmanager
def transaction(conn: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
    """``BEGIN IMMEDIATE`` … ``COMMIT`` on an autocommit connection, rolled back on any exception.

    IMMEDIATE takes the write lock up front, so a busy database waits (busy_timeout) instead of failing when a
    read would have to be upgraded to a write.
    """
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield conn
        conn.commit()
    except BaseException:
        conn.rollback()
        raise
