"""The SQL of saved artifacts (estimates, plans) in the SQLite store; :class:`SQLiteStore` calls these under its
lock, inside its transactions."""

from __future__ import annotations

import json
import sqlite3

from wattwise.errors import RecordError, RunExistsError, RunNotFoundError, StoreError
from wattwise.record_schema import artifact_from_dict, check_artifact
from wattwise.records import ARTIFACT_KINDS, Artifact
from wattwise.store.base import MIN_PREFIX, check_list_args, utc_iso

__all__ = ["get_artifact", "insert_artifact", "list_artifacts"]

_LIST = "SELECT id, record FROM artifacts WHERE (:kind IS NULL OR kind = :kind) ORDER BY created_at DESC, rowid DESC"


def _decode(text: str, where: str) -> Artifact:
    try:
        return artifact_from_dict(json.loads(text), f"saved artifact in {where}")
    except (ValueError, RecordError) as exc:
        raise StoreError(f"unreadable saved artifact in {where}: {exc}") from None


def _check_kind(kind: str | None) -> None:
    if kind is not None and kind not in ARTIFACT_KINDS:
        raise StoreError(f"unknown artifact kind {kind!r}; use one of {', '.join(ARTIFACT_KINDS)}")


def insert_artifact(conn: sqlite3.Connection, artifact: Artifact) -> None:
    try:
        record = check_artifact(artifact)
    except RecordError as exc:
        raise StoreError(f"{exc}; it was not saved") from None
    if conn.execute("SELECT 1 FROM artifacts WHERE id = ?", (artifact.id,)).fetchone() is not None:
        raise RunExistsError(f"an artifact with id {artifact.id!r} is already saved")
    conn.execute(
        "INSERT INTO artifacts (id, kind, name, created_at, record) VALUES (?, ?, ?, ?, ?)",
        (artifact.id, artifact.kind, artifact.name, utc_iso(artifact.created_at), record),
    )


def list_artifacts(conn: sqlite3.Connection, where: str, kind: str | None, limit: int | None) -> list[Artifact]:
    _check_kind(kind)
    check_list_args(limit, None)
    out: list[Artifact] = []
    if limit == 0:
        return out
    for _, record in conn.execute(_LIST, {"kind": kind}):
        out.append(_decode(record, where))
        if limit is not None and len(out) >= limit:
            break
    return out


def get_artifact(conn: sqlite3.Connection, where: str, ref: str, kind: str | None) -> Artifact:
    """By id, unique prefix (≥ 4 characters) or "latest" (of ``kind``)."""
    _check_kind(kind)
    what = kind or "artifact"
    if ref == "latest":
        found = list_artifacts(conn, where, kind, 1)
        if not found:
            raise RunNotFoundError(f"no {what} saved yet; save one with --save")
        return found[0]
    rows = conn.execute(
        "SELECT id, record FROM artifacts WHERE (id = :ref OR (length(:ref) >= :least AND substr(id, 1, length(:ref))"
        " = :ref)) AND (:kind IS NULL OR kind = :kind) ORDER BY id LIMIT 3",
        {"ref": ref, "least": MIN_PREFIX, "kind": kind},
    ).fetchall()
    exact = [row for row in rows if row[0] == ref]
    if exact:
        return _decode(exact[0][1], where)
    if not rows:
        raise RunNotFoundError(f"no {what} matches {ref!r}; the dashboard and `--json` listings show ids")
    if len(rows) > 1:
        raise RunNotFoundError(f"ambiguous prefix {ref!r}: give more characters of the {what} id")
    return _decode(rows[0][1], where)
