"""The default run store: one SQLite file (or ``:memory:``), safe to share between threads and processes.

The ``runs`` table holds the full record as JSON (``record``) next to the scalar columns lists and filters
need; both are written together, so they never disagree. WAL journaling lets a CLI read while the tracker
writes; a busy timeout absorbs write locks, and a write that still finds the database locked is retried (see
:data:`BUSY_RETRIES`), so concurrent writers wait rather than fail. One connection per store object, under a lock.

**Read-only.** ``SQLiteStore(path, read_only=True)`` (what ``wattwise runs list|show|export`` open) never writes:
it opens the file with SQLite's ``mode=ro``, falls back to ``immutable=1`` where a WAL database sits on a
read-only filesystem without its shared-memory file, creates nothing (a missing file reads as an empty store),
and shows runs whose process is gone as ``incomplete`` without rewriting them. Reads never write, even on a
writable store: only beginning a run settles them.
"""

from __future__ import annotations

import logging
import os
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path

from wattwise.errors import RunExistsError, RunNotFoundError, StoreError
from wattwise.records import Artifact, Run, Sample, utc_now
from wattwise.store import sqlite_artifacts
from wattwise.store.base import (
    MIN_PREFIX,
    ORDER_KEYS,
    STALE_AFTER_S,
    RunStore,
    ambiguous_error,
    check_list_args,
    checked_change,
    collect_runs,
    decode_record,
    encodable,
    encode_record,
    mark_incomplete,
    not_found_error,
    page_in_sql,
    stale_reason,
    supersedes,
    this_host,
    utc_iso,
)
from wattwise.store.migrations import SQLITE_MIGRATIONS, applied_migrations, apply_migrations, transaction
from wattwise.store.sqlite_util import BUSY_RETRIES, BUSY_TIMEOUT_S
from wattwise.store.sqlite_util import FIX as _FIX
from wattwise.store.sqlite_util import absent_for_reading as _absent_for_reading
from wattwise.store.sqlite_util import create_file as _create_file
from wattwise.store.sqlite_util import error as _error
from wattwise.store.sqlite_util import reason as _reason
from wattwise.store.sqlite_util import sample_rows as _sample_rows
from wattwise.store.sqlite_util import text as _text

__all__ = ["SQLiteStore"]

MEMORY = ":memory:"
SAMPLE_BATCH = 5000  # rows per read while streaming samples
log = logging.getLogger(__name__)  # one line on stderr by Python's last-resort handler

_COLUMNS = (
    "id",
    "name",
    "status",
    "started_at",
    "ended_at",
    "duration_s",
    "energy_j",
    "co2e_g",
    "region",
    "host",
    "pid",
    "heartbeat_at",
    "record",
)
_INSERT = f"INSERT INTO runs ({', '.join(_COLUMNS)}) VALUES ({', '.join(':' + c for c in _COLUMNS)})"
_UPSERT = _INSERT + " ON CONFLICT (id) DO UPDATE SET " + ", ".join(f"{c} = excluded.{c}" for c in _COLUMNS[1:])
_SAMPLES = "SELECT rowid, t_s, channel, power_w, energy_j FROM samples WHERE run_id = ?"
_BUSY_PRAGMA = f"PRAGMA busy_timeout = {int(BUSY_TIMEOUT_S * 1000)}"
# one static statement for every filter combination: a NULL parameter means "any"; a stored "running" run is also
# looked at when filtering by status (readers may show it incomplete: its process is gone)
_LIST = (
    "SELECT id, record, heartbeat_at FROM runs"
    " WHERE (:status IS NULL OR status = :status OR (status = 'running' AND :exact = 0))"
    " AND (:name IS NULL OR name = :name) AND (:region IS NULL OR region = :region)"
    " AND (:contains IS NULL OR instr(lower(name), lower(:contains)) > 0)"
)
_PAGE = " LIMIT :limit OFFSET :offset"  # in SQL where no row is dropped after reading (see list_runs)
# ORDER BY clauses for each key and direction, from a fixed list (never from the caller's text)
_ORDERS = {
    (key, descending): f" ORDER BY {key} {'DESC' if descending else 'ASC'}, rowid {'DESC' if descending else 'ASC'}"
    for key in ORDER_KEYS
    for descending in (True, False)
}
_INSERT_SAMPLE = "INSERT INTO samples (run_id, t_s, channel, power_w, energy_j) VALUES (?, ?, ?, ?, ?)"
_SAMPLE_ORDER = " ORDER BY t_s, channel, rowid LIMIT ?"


class SQLiteStore(RunStore):
    """Runs in a SQLite database at ``path`` (created with its parent directory if missing) or in memory.

    ``read_only`` opens it for reading only (see the module docstring). ``clock`` and ``stale_after_s`` exist for
    tests and tools; the defaults are what the tracker expects.
    """

    def __init__(
        self,
        path: Path | str,
        *,
        read_only: bool = False,
        stale_after_s: float = STALE_AFTER_S,
        clock: Callable[[], datetime] = utc_now,
    ) -> None:
        self._path = None if str(path) == MEMORY else Path(path).expanduser()
        self._where = MEMORY if self._path is None else str(self._path)
        self._read_only = read_only
        self._stale_after_s = stale_after_s
        self._clock = clock
        self._host = this_host()
        self._lock = threading.Lock()
        self._conn: sqlite3.Connection | None = None
        self.notes: list[str] = []  # how a read-only store had to be opened (immutable), for doctor
        self._absent: set[str] = set()  # optional migrations a read-only store lacks (see OPTIONAL_FOR_READING)
        if sqlite3.sqlite_version_info < (3, 24, 0):
            raise StoreError(f"SQLite {sqlite3.sqlite_version} is too old for the run store; wattwise needs 3.24+")
        conn = self._connect()
        try:
            self._prepare(conn)
        except BaseException:
            conn.close()
            raise
        self._conn = conn

    @property
    def path(self) -> Path | None:
        """The database file, or None for an in-memory store."""
        return self._path

    @property
    def read_only(self) -> bool:
        return self._read_only

    @property
    def persistent(self) -> bool:
        return self._path is not None

    def __repr__(self) -> str:
        mode = ", read_only=True" if self._read_only else ""
        return f"SQLiteStore({self._where!r}{mode})"

    # --- opening -----------------------------------------------------------------------------------------

    def _connect(self) -> sqlite3.Connection:
        if self._path is None:
            return self._sqlite(MEMORY)
        if self._read_only:
            return self._connect_read_only(self._path)
        _create_file(self._path)
        return self._sqlite(str(self._path))

    def _sqlite(self, target: str, *, uri: bool = False) -> sqlite3.Connection:
        try:
            return sqlite3.connect(
                target, timeout=BUSY_TIMEOUT_S, isolation_level=None, check_same_thread=False, uri=uri
            )
        except sqlite3.Error as exc:
            raise StoreError(f"cannot open run store at {self._where}: {_reason(exc)}; {_FIX}") from None

    def _connect_read_only(self, path: Path) -> sqlite3.Connection:
        """``mode=ro``; where a WAL database on a read-only filesystem cannot be opened that way (SQLite must create
        its -shm file), ``immutable=1``, which reads the file as it is. A missing file is an empty store."""
        try:
            if not path.exists():
                self.notes.append(f"no run store at {path} yet")
                return self._sqlite(MEMORY)
            if path.is_dir():
                raise StoreError(f"cannot read run store at {path}: it is a directory; {_FIX}")
            if not os.access(path, os.R_OK):
                raise StoreError(f"cannot read run store at {path}: permission denied for this user; {_FIX}")
            uri = path.resolve().as_uri()
        except OSError as exc:
            raise StoreError(f"cannot read run store at {path}: {exc.strerror or exc}; {_FIX}") from None
        conn = self._sqlite(f"{uri}?mode=ro", uri=True)
        try:
            if not conn.execute("SELECT name FROM sqlite_master LIMIT 1").fetchall():
                conn.close()  # an empty file (0 bytes, or a database with no table yet) is an empty store
                self.notes.append(f"the run store at {path} is empty: no runs yet")
                return self._sqlite(MEMORY)
            return conn
        except sqlite3.OperationalError as exc:
            conn.close()
            if "unable to open" not in str(exc) and "readonly" not in str(exc):
                raise self._not_ours(exc) from None
        except sqlite3.DatabaseError as exc:  # not a database, or a damaged one
            conn.close()
            raise self._not_ours(exc) from None
        conn = self._sqlite(f"{uri}?mode=ro&immutable=1", uri=True)
        self.notes.append(
            f"{path} was opened as immutable (its WAL index cannot be made here): runs still in its -wal file, "
            "not yet written into it, are not shown"
        )
        return conn

    def _not_ours(self, exc: BaseException) -> StoreError:
        return StoreError(
            f"{self._where} is not a readable SQLite database ({_reason(exc)}); it was left untouched; "
            "point WATTWISE_DB to another file, or restore it from a copy"
        )

    def _prepare(self, conn: sqlite3.Connection) -> None:
        """Check that the file is ours (or empty), apply missing migrations, then set the journal up.

        Nothing is written to a file before it is known to be a wattwise store that this version can read; a
        read-only store writes nothing at all.
        """
        try:
            tables = {row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
            if tables - {"migrations"} and "runs" not in tables:  # a ledger alone: another process is creating it
                raise self._foreign(tables)
            if self._read_only and tables == {"migrations"}:
                raise StoreError(f"run store {self._where} is being created by another process; try again in a moment")
            if tables and self._read_only:
                conn.execute("SELECT count(*) FROM runs").fetchone()  # a damaged file fails here, not mid-listing
        except sqlite3.DatabaseError as exc:
            reason = _reason(exc)
            if isinstance(exc, sqlite3.OperationalError) and ("readonly" in reason or "unable to open" in reason):
                raise StoreError(
                    f"run store {self._where} cannot be opened for writing here ({reason}): its file or directory "
                    f"is read-only for this user; it was left untouched (reading commands still work); {_FIX}"
                ) from None
            raise StoreError(
                f"{self._where} is not a SQLite database ({reason}); it was left untouched; "
                "point WATTWISE_DB to another file or move this one away"
            ) from None
        if tables:
            try:
                applied_migrations(conn)
            except sqlite3.OperationalError:  # no "migrations" table, or one that is not our ledger
                raise self._foreign(tables) from None
        try:
            conn.execute(_BUSY_PRAGMA)
            if self._read_only and tables:
                self._check_readable(conn)
                conn.execute("PRAGMA query_only = ON")
                return
            conn.execute("PRAGMA foreign_keys = ON")
            self._retry_busy(lambda: apply_migrations(conn, self._where, SQLITE_MIGRATIONS))
            if self._path is not None and not self._read_only:
                self._retry_busy(lambda: conn.execute("PRAGMA journal_mode = WAL"))  # persistent; then a no-op
                conn.execute("PRAGMA synchronous = NORMAL")  # in WAL: safe from crashes of the process
            if self._read_only:
                conn.execute("PRAGMA query_only = ON")
        except sqlite3.Error as exc:
            raise _error(self._where, "opening", exc) from None

    def _check_readable(self, conn: sqlite3.Connection) -> None:
        self._absent = _absent_for_reading(conn, self._where)
        if self._absent:
            self.notes.append(
                f"run store {self._where} was written by an older wattwise: its runs are shown; estimates and plans "
                "appear once a writing command (e.g. `wattwise run -- true`) has upgraded it"
            )

    def _foreign(self, tables: set[str]) -> StoreError:
        names = ", ".join(sorted(tables)[:5])
        return StoreError(
            f"{self._where} is a SQLite database but not a wattwise run store (tables: {names}); "
            "it was left untouched; point WATTWISE_DB to another file"
        )

    @staticmethod
    def _retry_busy(action: Callable[[], object]) -> None:
        """Run ``action``; if the database stays locked past the busy timeout (heavy concurrent writing), wait a
        little and try again, up to BUSY_RETRIES times, so writers queue rather than fail."""
        for attempt in range(BUSY_RETRIES + 1):
            try:
                action()
                return
            except sqlite3.OperationalError as exc:
                text = str(exc)
                if attempt == BUSY_RETRIES or ("locked" not in text and "busy" not in text):
                    raise
                time.sleep(0.05 * (attempt + 1))

    # --- plumbing ----------------------------------------------------------------------------------------

    @contextmanager
    def _db(self, action: str, *, write: bool = False) -> Iterator[sqlite3.Connection]:
        """The connection, under the lock, with database errors turned into one-line StoreErrors."""
        with self._lock:
            if self._conn is None:
                raise StoreError(f"run store {self._where} is closed")
            if write and self._read_only:
                raise StoreError(f"run store {self._where} was opened read-only; {action} needs write access")
            try:
                yield self._conn
            except (sqlite3.Error, OverflowError, UnicodeEncodeError) as exc:
                raise _error(self._where, action, exc) from None

    def _write(self, action: str, work: Callable[[sqlite3.Connection], None]) -> None:
        """One write transaction, retried while another process holds the lock (see :meth:`_retry_busy`)."""
        with self._db(action, write=True) as conn:

            def attempt() -> None:
                with transaction(conn):
                    work(conn)

            self._retry_busy(attempt)

    def _row(self, run: Run, heartbeat_at: datetime) -> dict[str, object]:
        return {
            "id": run.id,
            "name": _text(run.name),
            "status": run.status,
            "started_at": utc_iso(run.started_at),
            "ended_at": None if run.ended_at is None else utc_iso(run.ended_at),
            "duration_s": run.duration_s,
            "energy_j": run.energy_j,
            "co2e_g": run.co2e_g,
            "region": _text(run.region),
            "host": _text(run.host),
            "pid": run.pid,
            "heartbeat_at": utc_iso(heartbeat_at),
            "record": encode_record(run),  # validates first: no partial row is ever written
        }

    def _stale(self, run: Run, heartbeat_at: str) -> str | None:
        return stale_reason(
            run,
            datetime.fromisoformat(heartbeat_at),
            now=self._clock(),
            host=self._host,
            stale_after_s=self._stale_after_s,
        )

    def _view(self, record: str, heartbeat_at: str) -> Run:
        """A stored record as readers see it: a run whose process is gone is shown incomplete."""
        run = decode_record(record, self._where)
        reason = self._stale(run, heartbeat_at) if run.status == "running" else None
        return run if reason is None else mark_incomplete(run, reason)

    def _reap_stale(self, conn: sqlite3.Connection) -> None:
        """Persist status "incomplete" for every stored "running" run whose process is gone (see base); a
        read-only store leaves them (readers see them incomplete through :meth:`_view`)."""
        if self._read_only:
            return
        stale: list[tuple[str, str, str, str | None]] = []
        for run_id, heartbeat_at, record in conn.execute(
            "SELECT id, heartbeat_at, record FROM runs WHERE status = 'running'"
        ):
            try:
                run = decode_record(record, self._where)
            except StoreError:
                continue  # an unreadable record is reported by whoever lists it
            reason = self._stale(run, heartbeat_at)
            if reason is not None:
                marked = mark_incomplete(run, reason)
                ended = None if marked.ended_at is None else utc_iso(marked.ended_at)
                stale.append((run_id, heartbeat_at, encode_record(marked, check=False), ended))
        if not stale:
            return

        def attempt() -> None:
            with transaction(conn):
                for run_id, heartbeat_at, record, ended in stale:  # unless the tracker checkpointed meanwhile
                    conn.execute(
                        "UPDATE runs SET status = 'incomplete', record = ?, ended_at = ? "
                        "WHERE id = ? AND status = 'running' AND heartbeat_at = ?",
                        (record, ended, run_id, heartbeat_at),
                    )

        self._retry_busy(attempt)

    # --- writing -----------------------------------------------------------------------------------------

    def begin(self, run: Run) -> None:
        if run.status != "running":
            run = run.replace(status="running")
        row = self._row(run, self._clock())

        def insert(conn: sqlite3.Connection) -> None:
            try:
                conn.execute(_INSERT, row)
            except sqlite3.IntegrityError:
                raise RunExistsError(
                    f"a run with id {run.id!r} already exists in {self._where}; use a new id"
                ) from None

        self._write("beginning a run", insert)
        try:  # runs left "running" by processes that died are settled when a new run starts
            with self._db("settling stale runs", write=True) as conn:
                self._reap_stale(conn)
        except StoreError:
            pass  # best effort: readers show them incomplete anyway

    def save(self, run: Run) -> None:
        row = self._row(run, self._clock())

        def upsert(conn: sqlite3.Connection) -> None:
            conn.execute(_UPSERT, row)

        self._write("saving a run", upsert)

    def update(self, run_id: str, change: Callable[[Run], Run]) -> Run:
        changed: list[Run] = []

        def rewrite(conn: sqlite3.Connection) -> None:  # BEGIN IMMEDIATE: the write lock is held from the read on
            row = conn.execute("SELECT record, heartbeat_at FROM runs WHERE id = ?", (run_id,)).fetchone()
            if row is None or not encodable(run_id):
                raise not_found_error(run_id)
            changed[:] = [checked_change(self._view(row[0], row[1]), change)]
            conn.execute(_UPSERT, self._row(changed[0], self._clock()))

        self._write("updating a run", rewrite)
        return changed[0]

    def add(self, items: Sequence[tuple[Run, Sequence[Sample]]], *, replace: bool = False) -> None:
        now = self._clock()
        prepared = [(run, self._row(run, now), _sample_rows(run.id, samples)) for run, samples in items]

        def insert(conn: sqlite3.Connection) -> None:
            for run, row, sample_rows in prepared:
                row_found = conn.execute("SELECT record FROM runs WHERE id = ?", (run.id,)).fetchone()
                if row_found is not None and not replace:
                    try:
                        earlier = supersedes(run, decode_record(row_found[0], self._where))
                    except StoreError:
                        earlier = False
                    if not earlier:
                        raise RunExistsError(
                            f"a run with id {run.id!r} is already stored in {self._where}; nothing was imported "
                            "(give --replace to overwrite it)"
                        )
                elif row_found is not None:
                    conn.execute("DELETE FROM samples WHERE run_id = ?", (run.id,))
                conn.execute(_UPSERT, row)
                conn.executemany(_INSERT_SAMPLE, sample_rows)

        self._write("storing runs", insert)  # one transaction: all of them, or none

    def append_samples(self, run_id: str, samples: Sequence[Sample]) -> None:
        rows = _sample_rows(run_id, samples)
        if not rows:
            return

        def insert(conn: sqlite3.Connection) -> None:
            touched = conn.execute("UPDATE runs SET heartbeat_at = ? WHERE id = ?", (utc_iso(self._clock()), run_id))
            if touched.rowcount == 0:
                raise RunNotFoundError(f"no run {run_id!r} in {self._where}; begin() it before appending samples")
            conn.executemany(_INSERT_SAMPLE, rows)

        self._write("appending samples", insert)

    # --- reading -----------------------------------------------------------------------------------------

    def get(self, ref: str) -> Run:
        if not encodable(ref):
            raise not_found_error(ref)
        with self._db("reading a run") as conn:
            if ref == "latest":
                row = conn.execute(
                    "SELECT record, heartbeat_at FROM runs ORDER BY started_at DESC, rowid DESC LIMIT 1"
                ).fetchone()
            else:
                row = conn.execute("SELECT record, heartbeat_at FROM runs WHERE id = ?", (ref,)).fetchone()
            if row is not None:
                return self._view(row[0], row[1])
            if len(ref) < MIN_PREFIX or ref == "latest":
                raise not_found_error(ref)
            matches = conn.execute(
                "SELECT id, record, heartbeat_at FROM runs WHERE substr(id, 1, ?) = ? ORDER BY id LIMIT 6",
                (len(ref), ref),
            ).fetchall()
        if not matches:
            raise not_found_error(ref)
        if len(matches) > 1:
            raise ambiguous_error(ref, [m[0] for m in matches[:5]], more=len(matches) > 5)
        return self._view(matches[0][1], matches[0][2])

    def delete(self, run_id: str) -> None:
        if not encodable(run_id):
            raise not_found_error(run_id)

        def remove(conn: sqlite3.Connection) -> None:
            conn.execute("DELETE FROM samples WHERE run_id = ?", (run_id,))
            if conn.execute("DELETE FROM runs WHERE id = ?", (run_id,)).rowcount == 0:
                raise not_found_error(run_id)

        self._write("deleting a run", remove)

    def save_artifact(self, artifact: Artifact) -> None:
        self._write("saving an artifact", lambda conn: sqlite_artifacts.insert_artifact(conn, artifact))

    def list_artifacts(self, kind: str | None = None, limit: int | None = 50) -> list[Artifact]:
        with self._db("listing saved artifacts") as conn:
            if "0002_artifacts" in self._absent:
                return []
            return sqlite_artifacts.list_artifacts(conn, self._where, kind, limit)

    def get_artifact(self, ref: str, kind: str | None = None) -> Artifact:
        with self._db("reading a saved artifact") as conn:
            if "0002_artifacts" in self._absent:
                raise RunNotFoundError(f"no {kind or 'artifact'} saved in {self._where} (written by an older wattwise)")
            return sqlite_artifacts.get_artifact(conn, self._where, ref, kind)

    def count(self) -> int:
        """How many runs are stored (whatever their status)."""
        with self._db("counting runs") as conn:
            return int(conn.execute("SELECT count(*) FROM runs").fetchone()[0])

    def list_runs(
        self,
        limit: int | None = 50,
        status: str | None = None,
        name: str | None = None,
        *,
        region: str | None = None,
        name_contains: str | None = None,
        order_by: str = "started_at",
        descending: bool = True,
        offset: int = 0,
    ) -> list[Run]:
        check_list_args(limit, status, order_by, offset)
        exact = page_in_sql(status)
        params: dict[str, object] = {
            "status": status,
            "exact": int(exact),
            "name": None if name is None else _text(name),
            "region": None if region is None else _text(region),
            "contains": None if name_contains is None else _text(name_contains),
            "limit": -1 if limit is None or not exact else limit,
            "offset": offset if exact else 0,
        }
        if limit == 0:
            return []
        with self._db("listing runs") as conn:
            statement = _LIST + _ORDERS[order_by, descending] + _PAGE  # all fixed here; order_by was checked
            rows = conn.execute(statement, params).fetchall()  # static SQL: see statement
        return collect_runs(
            (self._readable(*row) for row in rows),
            limit=limit,
            status=status,
            name=name,
            name_contains=name_contains,
            offset=offset,
        )

    def _readable(self, run_id: str, record: str, heartbeat_at: str) -> Run | None:
        try:
            return self._view(record, heartbeat_at)
        except StoreError as exc:  # one damaged row must not hide the others
            log.warning("wattwise: skipped run %s: %s", run_id, exc)
            return None

    def iter_samples(self, run_id: str, *, batch_size: int = SAMPLE_BATCH) -> Iterator[Sample]:
        """Samples in (t_s, channel, insertion) order, read ``batch_size`` rows at a time.

        The lock is held per batch only, so the tracker can keep appending while a reader streams; samples
        appended behind the reader's position are not returned.
        """
        with self._db("reading samples") as conn:
            if conn.execute("SELECT 1 FROM runs WHERE id = ?", (run_id,)).fetchone() is None:
                raise not_found_error(run_id)
        return self._stream_samples(run_id, max(1, batch_size))

    def _stream_samples(self, run_id: str, batch_size: int) -> Iterator[Sample]:
        after: tuple[float, str, int] | None = None
        while True:
            with self._db("reading samples") as conn:
                if after is None:
                    rows = conn.execute(_SAMPLES + _SAMPLE_ORDER, (run_id, batch_size)).fetchall()
                else:
                    rows = conn.execute(
                        _SAMPLES + " AND (t_s, channel, rowid) > (?, ?, ?)" + _SAMPLE_ORDER,
                        (run_id, *after, batch_size),
                    ).fetchall()
            for _, t_s, channel, power_w, energy_j in rows:
                yield Sample(t_s=t_s, channel=channel, power_w=power_w, energy_j=energy_j)
            if len(rows) < batch_size:
                return
            last = rows[-1]
            after = (last[1], last[2], last[0])

    def close(self) -> None:
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None
