"""``wattwise runs sync``: send what was kept locally to the store it was meant for, exactly once.

Two places hold such runs: the spool (``<home>/spool.db``, a SQLite store the tracker measures into while a shared
store cannot be reached) and ``<home>/unsaved/*.json`` (records whose final save was refused). Each finished run
is stored in the target with its samples in one transaction, then removed locally. A run the target already holds
(the same record: an earlier sync was interrupted after storing it) counts as sent and is removed; a different
record under the same id is refused and kept. Runs still being measured stay in the spool.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from wattwise.errors import ConfigError, RecordError, RunExistsError, RunNotFoundError, StoreError
from wattwise.records import Run
from wattwise.store.base import RunStore

__all__ = ["SyncReport", "sync"]


@dataclass
class SyncReport:
    sent: list[str] = field(default_factory=list)
    already: list[str] = field(default_factory=list)
    waiting: list[str] = field(default_factory=list)  # still being measured
    refused: list[str] = field(default_factory=list)  # "id: why"

    def summary(self) -> str:
        parts = [f"sent {len(self.sent)} run(s)"]
        if self.already:
            parts.append(f"{len(self.already)} already stored there")
        if self.waiting:
            parts.append(f"{len(self.waiting)} still being measured (sync again when they end)")
        if self.refused:
            parts.append(f"{len(self.refused)} refused and kept: {'; '.join(self.refused[:5])}")
        return "; ".join(parts)


def _send(target: RunStore, run: Run, samples: list[Any], report: SyncReport) -> bool:
    """True when the run is now in the target (sent now or before)."""
    try:
        target.add([(run, samples)])
    except RunExistsError:
        try:
            same = target.get(run.id) == run
        except (RunNotFoundError, StoreError):
            same = False
        if same:
            report.already.append(run.id)
            return True
        report.refused.append(f"{run.id}: a different record with this id is stored there")
        return False
    except StoreError as exc:
        report.refused.append(f"{run.id}: {exc}")
        return False
    report.sent.append(run.id)
    return True


def sync(target: RunStore, home: Path, *, parse_file: Callable[[Path], list[tuple[Run, list[Any]]]]) -> SyncReport:
    from wattwise.store import SPOOL, SQLiteStore

    report = SyncReport()
    spool_path = home / SPOOL
    target_path = getattr(target, "path", None)
    if (
        spool_path.exists()
        and isinstance(target_path, Path)
        and target_path.exists()
        and spool_path.samefile(target_path)
    ):
        raise ConfigError(
            f"{target_path} is the local spool itself: give the shared store to send to (--db or WATTWISE_DB)"
        )
    if spool_path.exists():
        with SQLiteStore(spool_path) as spool:
            for run in spool.list_runs(limit=None):
                if run.status == "running":
                    report.waiting.append(run.id)
                    continue
                if _send(target, run, list(spool.iter_samples(run.id)), report):
                    with contextlib.suppress(RunNotFoundError):  # another sync removed it first
                        spool.delete(run.id)
    for path in sorted((home / "unsaved").glob("*.json")):
        try:
            items = parse_file(path)
        except (OSError, ValueError, RecordError) as exc:
            report.refused.append(f"{path.name}: {exc}")
            continue
        results = [_send(target, run, samples, report) for run, samples in items]  # every one, not up to a failure
        if all(results):
            path.unlink(missing_ok=True)
    return report
