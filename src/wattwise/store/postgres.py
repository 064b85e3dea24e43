"""The run store on PostgreSQL, for teams and for every rank of a job writing into one place (``psycopg`` 3).

``WATTWISE_DB=postgresql://user:password@host:5432/dbname`` opens it. It keeps the same records as the SQLite
store (the full record as JSON beside the columns lists filter on) and obeys the same contract
(:class:`~wattwise.store.base.RunStore`, one test suite for both): a "running" run whose process is gone is shown
incomplete (and settled when a run begins), id prefixes resolve the same way, a read-only store never writes.
Schema steps are the named migrations of :data:`POSTGRES_MIGRATIONS`, applied once each under an advisory lock,
so two processes opening a new database at once apply every step once.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime
from typing import TYPE_CHECKING, Any

from wattwise.errors import (
    RecordError,
    RunExistsError,
    RunNotFoundError,
    StoreError,
    StoreRefused,
    StoreUnreachable,
)
from wattwise.record_schema import artifact_from_dict, check_artifact
from wattwise.records import ARTIFACT_KINDS, Artifact, Run, Sample, utc_now
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
    encode_record,
    mark_incomplete,
    not_found_error,
    page_in_sql,
    stale_reason,
    supersedes,
    this_host,
    utc_iso,
)
from wattwise.store.migrations import POSTGRES_MIGRATIONS, Migration
from wattwise.store.sqlite_util import finite

if TYPE_CHECKING:
    import psycopg

__all__ = ["PostgresStore", "redact"]

SAMPLE_BATCH = 5000
CONNECT_TIMEOUT_S = 5
_LOCK_KEY = 7_202_612_030  # pg_advisory_xact_lock key of wattwise's migrations
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
_INSERT = f"INSERT INTO runs ({', '.join(_COLUMNS)}) VALUES ({', '.join(f'%({c})s' for c in _COLUMNS)})"
_UPSERT = _INSERT + " ON CONFLICT (id) DO UPDATE SET " + ", ".join(f"{c} = excluded.{c}" for c in _COLUMNS[1:])
_INSERT_SAMPLE = "INSERT INTO samples (run_id, t_s, channel, power_w, energy_j) VALUES (%s, %s, %s, %s, %s)"
_LIST = (
    "SELECT id, record, heartbeat_at FROM runs"
    " WHERE (%(status)s::text IS NULL OR status = %(status)s OR (status = 'running' AND %(exact)s = 0))"
    " AND (%(name)s::text IS NULL OR name = %(name)s) AND (%(region)s::text IS NULL OR region = %(region)s)"
    " AND (%(contains)s::text IS NULL OR strpos(lower(name), lower(%(contains)s)) > 0)"
)
_COLLATE_C = ' COLLATE "C"'
_ORDERS = {  # names in code-point order whatever the server's collation, as SQLite orders them
    (key, descending): f" ORDER BY {key}{_COLLATE_C if key == 'name' else ''} {'DESC' if descending else 'ASC'},"
    f" seq {'DESC' if descending else 'ASC'}"
    for key in ORDER_KEYS
    for descending in (True, False)
}
_PAGE = " LIMIT %(limit)s OFFSET %(offset)s"
# keyset paging in (t_s, channel, insertion) order, the order the SQLite store gives
_SAMPLES = (
    "SELECT seq, t_s, channel, power_w, energy_j FROM samples WHERE run_id = %(run)s"
    " AND (t_s, channel, seq) > (%(t)s, %(channel)s, %(seq)s) ORDER BY t_s, channel, seq LIMIT %(n)s"
)


def redact(url: str) -> str:
    """Where the store is, without any password (in the user part, the query string or a key=value string)."""
    try:
        from psycopg.conninfo import conninfo_to_dict

        parts = conninfo_to_dict(url)
    except Exception:  # not parseable: show the scheme and host only
        host = (
            url.rsplit("@", maxsplit=1)[-1].split("?", maxsplit=1)[0].split("/", maxsplit=1)[0] if "://" in url else "?"
        )
        return f"postgresql://{host}/…"
    user = str(parts.get("user") or "")
    host = str(parts.get("host") or "localhost")
    port = str(parts.get("port") or "")
    dbname = str(parts.get("dbname") or "")
    return f"postgresql://{f'{user}@' if user else ''}{host}{f':{port}' if port else ''}/{dbname}"


_UNREACHABLE = (
    "connection refused",
    "timeout expired",
    "could not translate host name",
    "no route to host",
    "network is unreachable",
    "server closed the connection",
    "could not connect",
    "connection timed out",
    "name or service not known",
)


def _usable(ref: str) -> bool:
    """Whether an id or reference can be sent to PostgreSQL at all (no NUL, no lone surrogate): one that cannot is
    simply not found, as SQLite finds nothing for it."""
    if "\x00" in ref:
        return False
    try:
        ref.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _text(value: str) -> str:
    """Column text PostgreSQL can hold: no NUL, no lone surrogate (the JSON record keeps the exact value)."""
    cleaned = value.replace("\x00", "?")
    try:
        cleaned.encode("utf-8")
    except UnicodeEncodeError:
        return cleaned.encode("utf-8", "replace").decode("utf-8")
    return cleaned


class PostgresStore(RunStore):
    """Runs in a PostgreSQL database (see the module docstring). One connection per store object, under a lock."""

    def __init__(
        self,
        url: str,
        *,
        read_only: bool = False,
        clock: Callable[[], datetime] = utc_now,
        stale_after_s: float = STALE_AFTER_S,
    ) -> None:
        try:
            import psycopg
        except ImportError:
            raise StoreError(
                "a postgresql:// store needs psycopg: pip install 'wattwise[postgres]' (and libpq, e.g. Debian's "
                "libpq5)"
            ) from None
        self._psycopg = psycopg
        self._where = redact(url)
        self._read_only = read_only
        self._clock = clock
        self._stale_after_s = stale_after_s
        self._host = this_host()
        self._lock = threading.Lock()
        self.notes: list[str] = []
        self._url = url
        conn = self._connect()
        self._conn: psycopg.Connection[Any] | None = conn
        self._empty = False  # read-only on a database with no store yet: reads find nothing
        try:
            self._prepare(conn)
        except BaseException:
            conn.close()
            raise

    # --- connection ----------------------------------------------------------------------------------------

    def _connect(self) -> psycopg.Connection[Any]:
        driver = self._psycopg
        try:
            conn: psycopg.Connection[Any] = driver.connect(
                self._url, autocommit=True, connect_timeout=CONNECT_TIMEOUT_S
            )
            return conn
        except driver.Error as exc:
            reason = _reason(exc)
            if any(marker in reason.lower() for marker in _UNREACHABLE) and "password" not in reason.lower():
                raise StoreUnreachable(f"cannot reach the run store {self._where}: {reason}") from None
            raise StoreRefused(f"the run store {self._where} refused the connection: {reason}") from None

    @property
    def read_only(self) -> bool:
        return self._read_only

    @property
    def persistent(self) -> bool:
        return True

    def __repr__(self) -> str:
        return f"PostgresStore({self._where!r}{', read_only=True' if self._read_only else ''})"

    def _prepare(self, conn: psycopg.Connection[Any]) -> None:
        """Check that the database is a wattwise store (its ledger names our steps) or empty, then apply missing
        migrations, all under wattwise's advisory lock: two processes opening a new database at once wait for each
        other, and nothing is ever created in another application's database."""
        psycopg = self._psycopg
        try:
            if self._read_only:
                self._check(conn, for_reading=True)
                conn.execute("SET default_transaction_read_only = on")
                return
            conn.execute("SELECT pg_advisory_lock(%s)", (_LOCK_KEY,))
            try:
                self._check(conn, for_reading=False)
                _apply(conn, self._where, POSTGRES_MIGRATIONS)
            finally:
                conn.execute("SELECT pg_advisory_unlock(%s)", (_LOCK_KEY,))
        except psycopg.Error as exc:
            raise StoreError(f"run store {self._where}: opening failed: {_reason(exc)}") from None

    def _check(self, conn: psycopg.Connection[Any], *, for_reading: bool) -> None:
        tables = {row[0] for row in conn.execute("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")}
        applied = {r[0] for r in conn.execute("SELECT name FROM migrations")} if "migrations" in tables else set()
        ours = {m.name for m in POSTGRES_MIGRATIONS}
        if tables - {"migrations"} and POSTGRES_MIGRATIONS[0].name not in applied:
            names = ", ".join(sorted(tables)[:5])
            raise StoreError(
                f"{self._where} is a PostgreSQL database but not a wattwise run store (tables: {names}); it was "
                "left untouched; point WATTWISE_DB to another database"
            )
        unknown = applied - ours
        if unknown:
            raise StoreError(
                f"database {self._where} was created by a newer wattwise (unknown migrations: "
                f"{', '.join(sorted(unknown))}); upgrade wattwise to open it"
            )
        if for_reading and not applied:
            self._empty = True  # an empty database (or one being created): no runs yet, as SQLite reads a new file
            self.notes.append(f"no run store in {self._where} yet")
        elif for_reading and ours - applied:
            raise StoreError(
                f"run store {self._where} is missing tables this wattwise reads; open it once for writing "
                "(e.g. `wattwise run -- true`) to upgrade it"
            )

    @contextmanager
    def _db(self, action: str, *, write: bool = False) -> Iterator[psycopg.Connection[Any]]:
        with self._lock:
            if self._conn is None:
                raise StoreError(f"run store {self._where} is closed")
            if write and self._read_only:
                raise StoreError(f"run store {self._where} was opened read-only; {action} needs write access")
            if self._conn.broken or self._conn.closed:  # the server restarted or the network dropped: once more
                self._conn.close()
                self._conn = self._connect()
                if self._read_only:
                    self._conn.execute("SET default_transaction_read_only = on")
            try:
                yield self._conn
            except self._psycopg.Error as exc:
                raise StoreError(f"run store {self._where}: {action} failed: {_reason(exc)}") from None

    def close(self) -> None:
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None

    # --- records -------------------------------------------------------------------------------------------

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
            "record": encode_record(run),
        }

    def _view(self, record: str, heartbeat_at: str) -> Run:
        run = decode_record(record, self._where)
        if run.status != "running":
            return run
        reason = stale_reason(
            run,
            datetime.fromisoformat(heartbeat_at),
            now=self._clock(),
            host=self._host,
            stale_after_s=self._stale_after_s,
        )
        return run if reason is None else mark_incomplete(run, reason)

    def _settle_stale(self, conn: psycopg.Connection[Any]) -> None:
        """Persist "incomplete" for stored "running" runs whose process is gone (only when a run begins)."""
        rows = conn.execute("SELECT id, heartbeat_at, record FROM runs WHERE status = 'running'").fetchall()
        for run_id, heartbeat_at, record in rows:
            try:
                view = self._view(record, heartbeat_at)
            except StoreError:
                continue
            if view.status == "incomplete":
                ended = None if view.ended_at is None else utc_iso(view.ended_at)
                conn.execute(
                    "UPDATE runs SET status = 'incomplete', record = %s, ended_at = %s "
                    "WHERE id = %s AND status = 'running' AND heartbeat_at = %s",
                    (encode_record(view, check=False), ended, run_id, heartbeat_at),
                )

    # --- writing -------------------------------------------------------------------------------------------

    def begin(self, run: Run) -> None:
        if run.status != "running":
            run = run.replace(status="running")
        row = self._row(run, self._clock())
        with self._db("beginning a run", write=True) as conn:
            try:
                with conn.transaction():
                    conn.execute(_INSERT, row)
            except self._psycopg.errors.UniqueViolation:
                raise RunExistsError(
                    f"a run with id {run.id!r} already exists in {self._where}; use a new id"
                ) from None
            try:
                with conn.transaction():
                    self._settle_stale(conn)
            except self._psycopg.Error:
                pass  # best effort: readers show them incomplete anyway

    def save(self, run: Run) -> None:
        row = self._row(run, self._clock())
        with self._db("saving a run", write=True) as conn, conn.transaction():
            conn.execute(_UPSERT, row)

    def update(self, run_id: str, change: Callable[[Run], Run]) -> Run:
        if self._empty or not _usable(run_id):
            raise not_found_error(run_id)
        with self._db("updating a run", write=True) as conn, conn.transaction():
            row = conn.execute("SELECT record, heartbeat_at FROM runs WHERE id = %s FOR UPDATE", (run_id,)).fetchone()
            if row is None:
                raise not_found_error(run_id)
            changed = checked_change(self._view(row[0], row[1]), change)
            conn.execute(_UPSERT, self._row(changed, self._clock()))
        return changed

    def add(self, items: Sequence[tuple[Run, Sequence[Sample]]], *, replace: bool = False) -> None:
        now = self._clock()
        prepared = [(run, self._row(run, now), _sample_rows(run.id, samples)) for run, samples in items]
        with self._db("storing runs", write=True) as conn, conn.transaction():
            for run, row, rows in prepared:
                found = conn.execute("SELECT record FROM runs WHERE id = %s FOR UPDATE", (run.id,)).fetchone()
                if found is not None and not replace:
                    try:
                        earlier = supersedes(run, decode_record(found[0], self._where))
                    except StoreError:
                        earlier = False
                    if not earlier:
                        raise RunExistsError(
                            f"a run with id {run.id!r} is already stored in {self._where}; nothing was imported "
                            "(give --replace to overwrite it)"
                        )
                elif found is not None:
                    conn.execute("DELETE FROM samples WHERE run_id = %s", (run.id,))
                conn.execute(_UPSERT, row)
                if rows:
                    with conn.cursor() as cur:
                        cur.executemany(_INSERT_SAMPLE, rows)

    def append_samples(self, run_id: str, samples: Sequence[Sample]) -> None:
        rows = _sample_rows(run_id, samples)
        if not rows:
            return
        with self._db("appending samples", write=True) as conn, conn.transaction():
            touched = conn.execute("UPDATE runs SET heartbeat_at = %s WHERE id = %s", (utc_iso(self._clock()), run_id))
            if touched.rowcount == 0:
                raise RunNotFoundError(f"no run {run_id!r} in {self._where}; begin() it before appending samples")
            with conn.cursor() as cur:
                cur.executemany(_INSERT_SAMPLE, rows)

    def delete(self, run_id: str) -> None:
        if not _usable(run_id):
            raise not_found_error(run_id)
        with self._db("deleting a run", write=True) as conn, conn.transaction():
            conn.execute("DELETE FROM samples WHERE run_id = %s", (run_id,))
            if conn.execute("DELETE FROM runs WHERE id = %s", (run_id,)).rowcount == 0:
                raise not_found_error(run_id)

    # --- reading (never writes) ----------------------------------------------------------------------------

    def get(self, ref: str) -> Run:
        if self._empty or not _usable(ref):
            raise not_found_error(ref)
        with self._db("reading a run") as conn:
            if ref == "latest":
                row = conn.execute(
                    "SELECT record, heartbeat_at FROM runs ORDER BY started_at DESC, seq DESC LIMIT 1"
                ).fetchone()
            else:
                row = conn.execute("SELECT record, heartbeat_at FROM runs WHERE id = %s", (ref,)).fetchone()
            if row is not None:
                return self._view(row[0], row[1])
            if len(ref) < MIN_PREFIX or ref == "latest":
                raise not_found_error(ref)
            matches = conn.execute(
                "SELECT id, record, heartbeat_at FROM runs WHERE left(id, %s) = %s ORDER BY id LIMIT 6",
                (len(ref), ref),
            ).fetchall()
        if not matches:
            raise not_found_error(ref)
        if len(matches) > 1:
            raise ambiguous_error(ref, [m[0] for m in matches[:5]], more=len(matches) > 5)
        return self._view(matches[0][1], matches[0][2])

    def count(self) -> int:
        if self._empty:
            return 0
        with self._db("counting runs") as conn:
            row = conn.execute("SELECT count(*) FROM runs").fetchone()
            return int(row[0]) if row else 0

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
            "limit": None if limit is None or not exact else limit,
            "offset": offset if exact else 0,
        }
        if limit == 0 or self._empty:
            return []
        with self._db("listing runs") as conn:
            statement = _LIST + _ORDERS[order_by, descending] + _PAGE  # all fixed here; order_by was checked
            rows = conn.execute(statement, params).fetchall()  # static SQL: see statement
        return collect_runs(
            (self._readable(record, heartbeat_at) for _, record, heartbeat_at in rows),
            limit=limit,
            status=status,
            name=name,
            name_contains=name_contains,
            offset=offset,
        )

    def _readable(self, record: str, heartbeat_at: str) -> Run | None:
        try:
            return self._view(record, heartbeat_at)
        except StoreError:  # one damaged row must not hide the others
            return None

    def iter_samples(self, run_id: str, *, batch_size: int = SAMPLE_BATCH) -> Iterator[Sample]:
        if self._empty or not _usable(run_id):
            raise not_found_error(run_id)
        with self._db("reading samples") as conn:
            if conn.execute("SELECT 1 FROM runs WHERE id = %s", (run_id,)).fetchone() is None:
                raise not_found_error(run_id)
        return self._stream(run_id, batch_size)

    def _stream(self, run_id: str, batch_size: int) -> Iterator[Sample]:
        """Batches in (t_s, channel, insertion) order; the lock is held per batch only."""
        key: dict[str, object] = {"run": run_id, "t": float("-inf"), "channel": b"", "seq": 0, "n": batch_size}
        while True:
            with self._db("reading samples") as conn:
                rows = conn.execute(_SAMPLES, key).fetchall()
            yield from (Sample(t_s=r[1], channel=_channel(r[2]), power_w=r[3], energy_j=r[4]) for r in rows)
            if len(rows) < batch_size:
                return
            key.update(t=rows[-1][1], channel=rows[-1][2], seq=rows[-1][0])

    # --- artifacts -----------------------------------------------------------------------------------------

    def save_artifact(self, artifact: Artifact) -> None:
        try:
            record = check_artifact(artifact)
        except RecordError as exc:
            raise StoreError(f"{exc}; it was not saved") from None
        with self._db("saving an artifact", write=True) as conn:
            try:
                with conn.transaction():
                    conn.execute(
                        "INSERT INTO artifacts (id, kind, name, created_at, record) VALUES (%s, %s, %s, %s, %s)",
                        (artifact.id, artifact.kind, _text(artifact.name), utc_iso(artifact.created_at), record),
                    )
            except self._psycopg.errors.UniqueViolation:
                raise RunExistsError(f"an artifact with id {artifact.id!r} is already saved") from None

    def list_artifacts(self, kind: str | None = None, limit: int | None = 50) -> list[Artifact]:
        if kind is not None and kind not in ARTIFACT_KINDS:
            raise StoreError(f"unknown artifact kind {kind!r}; use one of {', '.join(ARTIFACT_KINDS)}")
        check_list_args(limit, None)
        if self._empty:
            return []
        with self._db("listing saved artifacts") as conn:
            rows = conn.execute(
                "SELECT record FROM artifacts WHERE (%(kind)s::text IS NULL OR kind = %(kind)s)"
                " ORDER BY created_at DESC, seq DESC LIMIT %(limit)s",
                {"kind": kind, "limit": limit},
            ).fetchall()
        return [self._artifact(r[0]) for r in rows]

    def get_artifact(self, ref: str, kind: str | None = None) -> Artifact:
        what = kind or "artifact"
        if ref == "latest":
            found = self.list_artifacts(kind, 1)
            if not found:
                raise RunNotFoundError(f"no {what} saved yet; save one with --save")
            return found[0]
        if kind is not None and kind not in ARTIFACT_KINDS:
            raise StoreError(f"unknown artifact kind {kind!r}; use one of {', '.join(ARTIFACT_KINDS)}")
        if self._empty or not _usable(ref):
            raise RunNotFoundError(f"no {what} matches {ref!r}; the dashboard and `--json` listings show ids")
        with self._db("reading a saved artifact") as conn:
            rows = conn.execute(
                "SELECT id, record FROM artifacts WHERE (id = %(ref)s OR (length(%(ref)s) >= %(least)s AND"
                " left(id, length(%(ref)s)) = %(ref)s)) AND (%(kind)s::text IS NULL OR kind = %(kind)s)"
                " ORDER BY id LIMIT 3",
                {"ref": ref, "least": MIN_PREFIX, "kind": kind},
            ).fetchall()
        exact = [r for r in rows if r[0] == ref]
        if exact:
            return self._artifact(exact[0][1])
        if not rows:
            raise RunNotFoundError(f"no {what} matches {ref!r}; the dashboard and `--json` listings show ids")
        if len(rows) > 1:
            raise RunNotFoundError(f"ambiguous prefix {ref!r}: give more characters of the {what} id")
        return self._artifact(rows[0][1])

    def _artifact(self, text: str) -> Artifact:
        try:
            return artifact_from_dict(json.loads(text), f"saved artifact in {self._where}")
        except (ValueError, RecordError) as exc:
            raise StoreError(f"unreadable saved artifact in {self._where}: {exc}") from None


def _channel(value: bytes | memoryview) -> str:
    return bytes(value).decode("utf-8", "surrogatepass")


def _sample_rows(run_id: str, samples: Sequence[Sample]) -> list[tuple[str, float, bytes, float, float]]:
    for sample in samples:
        if not finite(sample.t_s, sample.power_w, sample.energy_j):
            raise StoreError(
                f"run {run_id!r}: sample of {sample.channel!r} at t_s={sample.t_s} is not finite; "
                "no sample of this batch was stored"
            )
    return [(run_id, s.t_s, s.channel.encode("utf-8", "surrogatepass"), s.power_w, s.energy_j) for s in samples]


def _apply(conn: psycopg.Connection[Any], where: str, migrations: Sequence[Migration]) -> None:
    """Apply the steps not yet recorded, each in its own transaction under wattwise's advisory lock."""
    with conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(%s)", (_LOCK_KEY,))
        conn.execute("CREATE TABLE IF NOT EXISTS migrations (name TEXT PRIMARY KEY, applied_at TEXT NOT NULL)")
    applied = {row[0] for row in conn.execute("SELECT name FROM migrations")}
    unknown = applied - {m.name for m in migrations}
    if unknown:
        raise StoreError(
            f"database {where} was created by a newer wattwise (unknown migrations: {', '.join(sorted(unknown))}); "
            "upgrade wattwise to open it"
        )
    for migration in migrations:
        if migration.name in applied:
            continue
        with conn.transaction():
            conn.execute("SELECT pg_advisory_xact_lock(%s)", (_LOCK_KEY,))
            if conn.execute("SELECT 1 FROM migrations WHERE name = %s", (migration.name,)).fetchone():
                continue
            for statement in migration.statements:
                conn.execute(statement)  # static SQL: a released migration's statement
            conn.execute(
                "INSERT INTO migrations (name, applied_at) VALUES (%s, %s)", (migration.name, utc_iso(utc_now()))
            )


def _reason(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
