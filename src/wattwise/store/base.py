"""The one small interface every run store implements, and the rules every store shares.

A store keeps :class:`~wattwise.records.Run` records and their power :class:`~wattwise.records.Sample` rows.
The tracker writes (``begin`` once, ``save`` at every checkpoint and at the end, ``append_samples`` as it
samples); the CLI, reports, the scheduler and the dashboard read (``get``, ``list_runs``, ``iter_samples``).
SQLite is the default backend; a PostgreSQL store for teams will implement the same protocol and reuse the
backend-neutral rules below: how a stale "running" run is recognised (:func:`stale_reason`), how a record is
encoded (:func:`encode_record`) and what the lookup errors say.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import sys
from collections.abc import Callable, Iterable, Iterator, Sequence
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, Protocol, Self, runtime_checkable

from wattwise.errors import ConfigError, RecordError, RunNotFoundError, StoreError
from wattwise.records import RUN_STATUSES, Artifact, Run, Sample

if TYPE_CHECKING:
    from types import TracebackType

__all__ = [
    "MIN_PREFIX",
    "ORDER_KEYS",
    "STALE_AFTER_S",
    "RunStore",
    "ambiguous_error",
    "check_list_args",
    "checked_change",
    "collect_runs",
    "decode_record",
    "encodable",
    "encode_record",
    "mark_incomplete",
    "not_found_error",
    "page_in_sql",
    "pid_alive",
    "stale_reason",
    "supersedes",
    "this_host",
    "utc_iso",
]

MIN_PREFIX = 4  # the shortest id prefix ``get`` accepts
ORDER_KEYS = ("started_at", "energy_j", "co2e_g", "duration_s", "name")  # what runs can be listed by
STALE_AFTER_S = 300.0  # a "running" run silent this long is incomplete; the tracker heartbeats every ≤ 10 s


@runtime_checkable
class RunStore(Protocol):
    """Runs and their samples; every method raises :class:`~wattwise.errors.StoreError` on failure.

    Implementations are safe to share between threads (the tracker writes samples from its sampling thread and
    checkpoints from the main thread). Subclass it explicitly to inherit the context-manager methods.
    """

    def begin(self, run: Run) -> None:
        """Insert a new run with status "running"; StoreError if a run with the same id already exists."""
        ...

    def save(self, run: Run) -> None:
        """Insert or replace the full record (checkpoints and the final record) and refresh its heartbeat."""
        ...

    def append_samples(self, run_id: str, samples: Sequence[Sample]) -> None:
        """Add samples to a run in one transaction; RunNotFoundError if the run was never begun."""
        ...

    def update(self, run_id: str, change: Callable[[Run], Run]) -> Run:
        """Replace the stored record of run ``run_id`` by ``change(record)`` in one transaction, and return it: no
        other writer can come between the read and the write (a concurrent update waits, then sees this one), so
        nothing another writer saved is lost. ``change`` gets the record as readers see it (a stale "running" run
        as incomplete) and must keep its id; what it raises abandons the update, nothing written. Samples are not
        touched. RunNotFoundError if no run has this id (exactly: no prefix, no "latest")."""
        ...

    def add(self, items: Sequence[tuple[Run, Sequence[Sample]]], *, replace: bool = False) -> None:
        """Store whole records made elsewhere (``runs import``) with their samples, all in one transaction: if one
        is refused, none is stored.

        A run whose id is already stored is refused with RunExistsError, unless ``replace`` (the old record and
        samples are dropped) or the stored record is an earlier checkpoint of this same run (:func:`supersedes`:
        the record a tracker saved to a file when the store refused its final save), whose samples are kept and
        added to.
        """
        ...

    def get(self, ref: str) -> Run:
        """The run with id ``ref``, or whose id starts with ``ref`` (≥ 4 characters, unique), or "latest"."""
        ...

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
        """Runs ordered by ``order_by`` (one of :data:`ORDER_KEYS`; newest first by default), optionally only those
        with this status, exactly this name, this region or a name holding ``name_contains`` (any case), skipping
        the first ``offset``; ``limit`` None: all."""
        ...

    def count(self) -> int:
        """How many runs are stored, whatever their status."""
        ...

    def delete(self, run_id: str) -> None:
        """Remove a run and its samples (``runs sync`` empties the local spool this way); RunNotFoundError if it is
        not stored."""
        ...

    def save_artifact(self, artifact: Artifact) -> None:
        """Save an estimate or a plan beside the runs; RunExistsError if its id is taken, StoreError if a rule
        of :func:`wattwise.record_schema.check_artifact` is broken."""
        ...

    def list_artifacts(self, kind: str | None = None, limit: int | None = 50) -> list[Artifact]:
        """Saved artifacts newest first, optionally of one kind; a store too old to hold any lists none."""
        ...

    def get_artifact(self, ref: str, kind: str | None = None) -> Artifact:
        """The artifact with id ``ref``, a unique prefix of one (≥ 4 characters), or "latest" (of ``kind``)."""
        ...

    def iter_samples(self, run_id: str, *, batch_size: int = 5000) -> Iterator[Sample]:
        """A run's samples ordered by ``t_s``, then channel (by code point), then insertion, read ``batch_size``
        at a time (never all at once)."""
        ...

    def close(self) -> None:
        """Release the connection. Safe to call twice; any other call afterwards raises StoreError."""
        ...

    @property
    def persistent(self) -> bool:
        """Whether what is stored outlives this object (False for an in-memory database)."""
        ...

    @property
    def read_only(self) -> bool:
        """True when opened for reading only: every write raises StoreError, and runs whose process is gone are
        shown as incomplete without being rewritten."""
        ...

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()


# --- stale runs: one rule for every backend --------------------------------------------------------------


def this_host() -> str:
    """The host name the tracker records in ``Run.host`` and the stale rule compares against."""
    # os.uname() is what socket.gethostname() returns on POSIX, without importing socket (start-up cost)
    if hasattr(os, "uname"):
        return os.uname().nodename
    import socket

    return socket.gethostname()


def pid_alive(pid: int) -> bool:
    """Whether a process with this id exists on this host. Unknown (pid ≤ 0, Windows) counts as alive."""
    if pid <= 0 or sys.platform == "win32":  # os.kill(pid, 0) would terminate the process on Windows
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # it exists, under another user
        return True
    return True


def stale_reason(
    run: Run,
    heartbeat_at: datetime,
    *,
    now: datetime,
    host: str,
    stale_after_s: float = STALE_AFTER_S,
    is_alive: Callable[[int], bool] = pid_alive,
) -> str | None:
    """Why a run stored as "running" is no longer being recorded, or None while it may still be.

    A run is stale when it was recorded on this host and its process is gone, or when its last heartbeat is
    older than ``stale_after_s`` (another host, a reused pid, a hung process). Both ``heartbeat_at`` and
    ``now`` are timezone-aware.
    """
    if run.status != "running":
        return None
    if run.host and run.host == host and run.pid > 0 and not is_alive(run.pid):
        return f"process {run.pid} on {host} ended before the run was finished"
    silent_s = (now - heartbeat_at).total_seconds()
    if silent_s > stale_after_s:
        return f"no heartbeat for {silent_s:.0f} s (last at {utc_iso(heartbeat_at)})"
    return None


def supersedes(new: Run, old: Run) -> bool:
    """Whether ``new`` is a later record of the same measured run as the stored ``old``: same id, start, host and
    process, ``old`` not longer, and ``old`` only a checkpoint (still "running", or marked incomplete because its
    process died). A final record, once stored, is never superseded: importing the same file twice is refused."""
    checkpoint = old.status == "running" or (
        old.status == "incomplete" and any(n.startswith("marked incomplete: ") for n in old.notes)
    )
    same = new.id == old.id and new.started_at == old.started_at and new.host == old.host and new.pid == old.pid
    return same and checkpoint and old.duration_s <= new.duration_s and new.status != "running"


def checked_change(run: Run, change: Callable[[Run], Run]) -> Run:
    """``change(run)`` for :meth:`RunStore.update`: StoreError if it returns something else than a record of the
    same run (the id is what the row is found by)."""
    changed = change(run)
    if not isinstance(changed, Run) or changed.id != run.id:
        raise StoreError(f"an update of run {run.id!r} must return a record of that run; nothing was changed")
    return changed


def mark_incomplete(run: Run, reason: str) -> Run:
    """The record of a stale run: status "incomplete", ``ended_at`` at its last checkpoint (what was measured),
    and a note saying why; a distributed run's ranks still running at that checkpoint are ``lost`` (their figures
    run to their last report)."""
    ended = run.ended_at if run.ended_at is not None else run.started_at + timedelta(seconds=run.duration_s)
    ranks = tuple(r if r.status != "running" else dataclasses.replace(r, status="lost") for r in run.ranks)
    return run.replace(
        status="incomplete", ended_at=ended, ranks=ranks, notes=(*run.notes, f"marked incomplete: {reason}")
    )


# --- records ---------------------------------------------------------------------------------------------


def utc_iso(moment: datetime) -> str:
    """Fixed-width ISO 8601 in UTC (microseconds always present), so text order is time order."""
    return moment.astimezone(UTC).isoformat(timespec="microseconds")


def _non_finite_path(value: Any, path: str) -> str | None:
    if isinstance(value, float):
        return None if math.isfinite(value) else path
    if isinstance(value, dict):
        items: Iterator[tuple[str, Any]] = ((f"{path}.{key}", item) for key, item in value.items())
    elif isinstance(value, list):
        items = ((f"{path}[{index}]", item) for index, item in enumerate(value))
    else:
        return None
    for item_path, item in items:
        found = _non_finite_path(item, item_path)
        if found is not None:
            return found
    return None


def encode_record(run: Run, *, check: bool = True) -> str:
    """``run.to_dict()`` as strict JSON (ASCII, no NaN/Infinity), or StoreError naming the offending field.

    ``check`` applies every record rule first (:func:`wattwise.record_schema.check_run`: a safe id, known status,
    aware times, numbers in range, totals that add up), so no store ever holds a record ``runs import`` would
    refuse. Exports and re-encodings of records already stored pass ``check=False``: what is stored is shown.
    """
    if check:
        from wattwise.record_schema import check_run

        try:
            check_run(run, "run")
        except RecordError as exc:
            raise StoreError(f"{exc}; the record was not stored") from exc
    moments = [("started_at", run.started_at), ("ended_at", run.ended_at)]
    moments += [(f"windows[{i}].started_at", w.started_at) for i, w in enumerate(run.windows)]
    for field_name, moment in moments:
        if moment is not None and moment.utcoffset() is None:
            raise StoreError(f"run {run.id!r}: {field_name} has no time zone; use an aware datetime (utc_now())")
    data = run.to_dict()
    try:
        return json.dumps(data, allow_nan=False, separators=(",", ":"))
    except ValueError:
        where = _non_finite_path(data, "run") or "a field"
        raise StoreError(f"run {run.id!r}: {where} is not a finite number; the record was not stored") from None


def decode_record(text: str, where: str) -> Run:
    """A stored record back into a Run; StoreError if it cannot be read (its values are not re-checked)."""
    from wattwise.record_schema import run_from_dict

    try:
        return run_from_dict(json.loads(text), f"run record in {where}")
    except (ValueError, RecordError) as exc:
        raise StoreError(f"unreadable run record in {where}: {exc}") from None


# --- lookup errors and arguments -------------------------------------------------------------------------


def encodable(ref: str) -> bool:
    """Whether a reference can be sent to a database (no lone surrogate): one that cannot matches nothing."""
    try:
        ref.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def page_in_sql(status: str | None) -> bool:
    """Whether a listing can be limited and offset in SQL: a stored "running" run may read as incomplete (its
    process is gone), so only filters for "running" or "incomplete" drop rows after reading them."""
    return status in (None, "complete", "failed")


def collect_runs(
    views: Iterable[Run | None],
    *,
    limit: int | None,
    status: str | None,
    name: str | None,
    name_contains: str | None,
    offset: int,
) -> list[Run]:
    """The listing from the rows a store read (None: a row it could not read, skipped), with the filters applied
    to the records themselves: the filter columns hold names made storable (NUL, lone surrogates replaced), so
    the record decides; the offset is applied here when it could not be in SQL (:func:`page_in_sql`)."""
    runs: list[Run] = []
    skipped = 0
    needle = None if name_contains is None else name_contains.lower()
    for run in views:
        if run is None or (status is not None and run.status != status):
            continue
        if (name is not None and run.name != name) or (needle is not None and needle not in run.name.lower()):
            continue
        if not page_in_sql(status) and skipped < offset:
            skipped += 1
            continue
        runs.append(run)
        if limit is not None and len(runs) >= limit:
            break
    return runs


def not_found_error(ref: str) -> RunNotFoundError:
    if ref == "latest":
        return RunNotFoundError("no runs stored yet; measure one with `wattwise run -- <command>`")
    if 0 < len(ref) < MIN_PREFIX:
        return RunNotFoundError(
            f"no run matches {ref!r}; give at least {MIN_PREFIX} characters of the id (`wattwise runs list` shows ids)"
        )
    return RunNotFoundError(f"no run matches {ref!r}; `wattwise runs list` shows ids")


def ambiguous_error(ref: str, ids: Sequence[str], more: bool) -> RunNotFoundError:
    shown = ", ".join(ids) + (", …" if more else "")
    return RunNotFoundError(f"ambiguous prefix {ref!r}, matches: {shown}; give more characters of the id")


def check_list_args(limit: int | None, status: str | None, order_by: str = "started_at", offset: int = 0) -> None:
    """ConfigError for a negative limit or offset, an unknown status filter or an unknown order."""
    if order_by not in ORDER_KEYS:
        raise ConfigError(f"cannot order runs by {order_by!r}; use one of {', '.join(ORDER_KEYS)}")
    if offset < 0:
        raise ConfigError(f"offset must be zero or more (got {offset})")
    if limit is not None and limit < 0:
        raise ConfigError(f"limit must be zero or more (got {limit}); use None for all runs")
    if status is not None and status not in RUN_STATUSES:
        raise ConfigError(f"unknown run status {status!r}; use one of {', '.join(RUN_STATUSES)}")
