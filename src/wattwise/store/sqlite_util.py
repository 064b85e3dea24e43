"""Small helpers of the SQLite store: sample rows, creating the file privately, and one-line error texts."""

from __future__ import annotations

import math
import sqlite3
from collections.abc import Sequence
from pathlib import Path

from wattwise.errors import StoreError
from wattwise.fsutil import make_private_dirs
from wattwise.records import Sample
from wattwise.store.migrations import OPTIONAL_FOR_READING, SQLITE_MIGRATIONS, applied_migrations

BUSY_TIMEOUT_S = 5.0
BUSY_RETRIES = 6  # a write that finds the database locked after the busy timeout is tried this many more times
FIX = "set WATTWISE_HOME to a writable directory or WATTWISE_DB to another URL"

__all__ = [
    "BUSY_RETRIES",
    "BUSY_TIMEOUT_S",
    "FIX",
    "absent_for_reading",
    "create_file",
    "error",
    "file_in_the_way",
    "finite",
    "reason",
    "sample_rows",
    "text",
]


def sample_rows(run_id: str, samples: Sequence[Sample]) -> list[tuple[str, float, str, float, float]]:
    """Rows for the samples table, or StoreError (nothing stored) if any sample is not finite."""
    for sample in samples:
        if not finite(sample.t_s, sample.power_w, sample.energy_j):
            raise StoreError(
                f"run {run_id!r}: sample of {sample.channel!r} at t_s={sample.t_s} is not finite; "
                "no sample of this batch was stored"
            )
    return [(run_id, s.t_s, text(s.channel), s.power_w, s.energy_j) for s in samples]


def create_file(path: Path) -> None:
    """Create the parent directories and an empty private file if missing, or say in one line why not.

    Done here rather than by SQLite, whose own error ("unable to open database file") does not say why.
    The file is made readable by its owner only: stored commands may carry secrets in their arguments.
    """
    try:
        if path.is_dir():
            reason = "it is a directory"
        else:
            make_private_dirs(path.parent)  # a new home is the user's alone
            if not path.exists():
                path.touch(mode=0o600)
            return
    except OSError as exc:
        reason = file_in_the_way(path) or exc.strerror or type(exc).__name__
    raise StoreError(f"cannot create run store at {path}: {reason}; {FIX}")


def file_in_the_way(path: Path) -> str | None:
    """The ancestor that is a file where a directory should be (mkdir only says "File exists")."""
    for parent in path.parents:
        try:
            if parent.exists() and not parent.is_dir():
                return f"{parent} is a file, not a directory"
        except OSError:
            return None
    return None


def finite(*values: float) -> bool:
    return all(math.isfinite(value) for value in values)


def text(value: str) -> str:
    """Column text that SQLite can hold: lone surrogates (undecodable file names) become "?".

    The JSON record escapes them and keeps the exact value; only the filter columns are approximated.
    """
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return value.encode("utf-8", "replace").decode("utf-8")
    return value


def reason(exc: BaseException) -> str:
    message = str(exc).strip()
    return message.splitlines()[0] if message else type(exc).__name__


def error(where: str, action: str, exc: BaseException) -> StoreError:
    why = reason(exc)
    if "locked" in why or "busy" in why:
        waited = BUSY_TIMEOUT_S * (BUSY_RETRIES + 1) + 0.05 * BUSY_RETRIES * (BUSY_RETRIES + 1) / 2
        return StoreError(
            f"run store {where} stayed locked by another process for over {waited:.0f} s while {action}; "
            "try again when it is free"
        )
    if "readonly" in why or "unable to open" in why:
        return StoreError(f"cannot write run store at {where} ({why}) while {action}; {FIX}")
    return StoreError(f"run store {where}: {action} failed: {why}")


def absent_for_reading(conn: sqlite3.Connection, where: str) -> set[str]:
    """The optional migrations a store opened for reading lacks (its runs can still be read); StoreError when it was
    written by a newer wattwise, or lacks a migration reading cannot do without."""
    applied = set(applied_migrations(conn))
    known = [m.name for m in SQLITE_MIGRATIONS]
    unknown = sorted(applied - set(known))
    if unknown:
        raise StoreError(
            f"database {where} was created by a newer wattwise (unknown migrations: {', '.join(unknown)}); "
            "upgrade wattwise to open it"
        )
    missing = [name for name in known if name not in applied]
    required = [name for name in missing if name not in OPTIONAL_FOR_READING]
    if required:
        raise StoreError(
            f"run store {where} was written by an older wattwise and needs upgrading ({', '.join(required)}), "
            "which reading cannot do: run `wattwise run -- true` once with write access to it"
        )
    return {name for name in missing if name in OPTIONAL_FOR_READING}
