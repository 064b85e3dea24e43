"""Getting a run into the store, and never losing it: at the start, at every checkpoint, at the end.

:class:`RunWriter` is the tracker's only path to the store. Checkpoints (from the sampler thread, at least every
``flush_s``) save the partial record then the samples gathered since the last one; if the store refuses, the
samples stay buffered (up to :data:`MAX_BACKLOG`) for the next checkpoint and one warning is given. At the end the
record is saved first (it matters most), then the samples. If the store refuses the final record, the record and
its unsent samples are written under ``<home>/unsaved/<run id>.json`` (private to the user) and a StoreError says
how to import it (``wattwise runs import FILE``).
"""

from __future__ import annotations

import json
import logging
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from wattwise.errors import RecordError, StoreError
from wattwise.fsutil import write_private
from wattwise.measure.observers import Observers
from wattwise.validate import RUN_ID

if TYPE_CHECKING:
    from wattwise.records import Run, Sample
    from wattwise.store.base import RunStore

__all__ = ["MAX_BACKLOG", "RecordSink", "RunWriter"]

MAX_BACKLOG = 100_000  # samples kept for a retry while the store refuses checkpoints (a few MB)
log = logging.getLogger(__name__)  # one line on stderr by Python's last-resort handler: "wattwise: checkpoint ..."


class RecordSink(Protocol):
    """Where a tracker sends its run: :class:`RunWriter` (a store), or, for a rank of a distributed job, what
    :mod:`wattwise.measure.rank_exchange` builds (rank 0 reduces the ranks; the others report to it)."""

    @property
    def samples_stored(self) -> int: ...

    @property
    def samples_taken(self) -> int: ...

    def begin(self, run: Run) -> None: ...

    def add(self, samples: list[Sample]) -> None: ...

    def checkpoint(self, run: Run) -> bool: ...

    def complete(self, run: Run, *, hurry: bool = False) -> Run: ...

    def final(self, run: Run) -> None: ...


class RunWriter:
    """Saves one run's records and samples through a store (see the module docstring). Thread-safe."""

    def __init__(self, store: RunStore, home: Path, observers: Observers | None = None) -> None:
        self._store = store
        self._home = home
        self._observers = observers if observers is not None else Observers()
        self._run_id = ""
        self._lock = threading.Lock()  # the sample buffer
        self._save_lock = threading.Lock()  # checkpoints and the final save, one at a time
        self._buffer: list[Sample] = []
        self._failing = False
        self._finished = False  # the final record is being or has been saved: no checkpoint may follow it
        self.samples_stored = 0  # samples the store has accepted for this run
        self.samples_taken = 0  # samples handed to the writer (stored, buffered, or dropped past MAX_BACKLOG)

    @property
    def store(self) -> RunStore:
        return self._store

    def begin(self, run: Run) -> None:
        self._store.begin(run)
        self._run_id = run.id
        self._observers.run_started(run)

    def add(self, samples: list[Sample]) -> None:
        """Samples to send with the next checkpoint (observers get them now)."""
        if samples:
            with self._lock:
                self._buffer.extend(samples)
                self.samples_taken += len(samples)
            self._observers.samples_taken(self._run_id, samples)

    def checkpoint(self, run: Run) -> bool:
        """The partial record, then the buffered samples; False (samples kept, one warning) if the store refused.

        Checkpoints and the final save are serialised: a checkpoint that comes after the final save (a signal
        handler's, late) does nothing, so a final record is never overwritten by a "running" one."""
        with self._save_lock:
            if self._finished:
                return False
            self._observers.checkpoint(run)
            with self._lock:
                batch, self._buffer = self._buffer, []
            try:
                self._store.save(run)
                if batch:
                    self._store.append_samples(run.id, batch)
                    self.samples_stored += len(batch)
            except StoreError as exc:
                with self._lock:
                    self._buffer = (batch + self._buffer)[-MAX_BACKLOG:]
                if not self._failing:
                    self._failing = True
                    retry = "" if isinstance(exc.__cause__, RecordError) else ", will retry"
                    log.warning("wattwise: checkpoint of run %s failed%s: %s", run.id, retry, exc)
                return False
            self._failing = False
            return True

    def complete(self, run: Run, *, hurry: bool = False) -> Run:
        """The record the run ends with: with the figures observers add from a cluster's counters (a distributed
        run's rank 0 reduces its ranks into it first; ``hurry``: the process is ending, wait for nothing long)."""
        return self._observers.external_figures(run)

    def final(self, run: Run) -> None:
        """The final record, then every sample not yet stored; a record the store refuses goes to a file."""
        with self._save_lock:
            self._finished = True
            try:
                self._final(run)
            finally:
                self._observers.run_ended(run)

    def _final(self, run: Run) -> None:
        with self._lock:
            batch, self._buffer = self._buffer, []
        try:
            self._store.save(run)
        except StoreError as exc:
            path = self.save_unsaved(run, batch)
            where = f"its record was written to {path}; store it later with `wattwise runs import {path}`"
            if path is None:
                where = "and it could not be written to a file either"
            raise StoreError(f"run {run.id} could not be stored ({exc}); {where}") from exc
        if batch:
            try:
                self._store.append_samples(run.id, batch)
                self.samples_stored += len(batch)
            except StoreError as exc:
                raise StoreError(f"run {run.id} was stored, but {len(batch)} of its samples were not: {exc}") from exc

    def save_unsaved(self, run: Run, samples: list[Sample]) -> Path | None:
        """``<home>/unsaved/<id>.json``: the record and its unsent samples, for ``wattwise runs import``."""
        name = run.id if RUN_ID.fullmatch(run.id) else "run"  # never a path from an id
        data = run.to_dict()
        data["samples"] = [
            {"t_s": s.t_s, "channel": s.channel, "power_w": s.power_w, "energy_j": s.energy_j} for s in samples
        ]
        try:
            path = self._home / "unsaved" / f"{name}.json"
            write_private(path, json.dumps(data, indent=1, allow_nan=False))
        except (OSError, ValueError):
            return None
        return path
