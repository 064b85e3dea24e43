"""Rank 0's side of a distributed run: the other ranks' reports read from the job's store, and the writer that
reduces them into the record it stores (see :mod:`wattwise.measure.rank_exchange` for what the ranks post).

Rank 0 reads the reports at each of its checkpoints. At its end it waits for every rank's final report while that
rank is alive (its process still there on the same host, or a heartbeat in the last :data:`DEAD_AFTER_S` seconds),
up to :data:`MAX_WAIT_S`; a rank that has not reported :data:`NEVER_REPORTED_S` after rank 0's start is not coming.
It waits :data:`HURRY_WAIT_S` at most when the process is ending (a signal, the exit hook) or its own run failed
(the other ranks may be stuck in a collective with it). Then it reduces (:mod:`wattwise.measure.rank_reduce`),
stores one record and removes the run's keys from the store.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from wattwise.measure.rank_exchange import PARSE_ERRORS, STORE_ERRORS, KeyValue, cpu_reader, parse_report
from wattwise.measure.rank_reduce import EpochPredictor, RankReport, owners, qualified, reduce_run
from wattwise.measure.ranks import Topology
from wattwise.records import Run, Sample

if TYPE_CHECKING:
    from wattwise.measure.persist import RunWriter

__all__ = ["RankCollector", "RankReducer"]

log = logging.getLogger(__name__)

DEAD_AFTER_S = 15.0  # a rank silent this long is taken for gone (it posts at least once a second while measuring)
NEVER_REPORTED_S = 5.0  # a rank that has not reported this long after rank 0's start is not coming
MAX_WAIT_S = 120.0  # rank 0's end waits at most this long for the other ranks' final reports
HURRY_WAIT_S = 2.0  # ... and this long when its process is ending or its own run failed


def _gone(pid: int) -> bool:
    """Whether process ``pid`` of this host has ended (a zombie not yet reaped has)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    state = stat[stat.rfind(")") + 2 :][:1]
    return state in {"Z", "X"}


class RankCollector:
    """The other ranks' latest reports, and their samples not yet taken."""

    def __init__(self, store: KeyValue, prefix: str, topology: Topology) -> None:
        self._kv = store
        self._prefix = prefix
        self._topology = topology
        self._reports: dict[int, RankReport] = {}
        self._taken: dict[int, int] = {}  # rank → sample chunks read
        self._bad: dict[int, str] = {}
        self.lost: frozenset[int] = frozenset()  # ranks found gone before their final report
        self._warned = False
        self._lock = threading.Lock()  # the sampler's checkpoints, a signal handler's and the end poll one at a time

    @property
    def reports(self) -> dict[int, RankReport]:
        """A copy of the latest reports, by rank."""
        with self._lock:
            return dict(self._reports)

    def _others(self) -> list[int]:
        return [r for r in range(self._topology.world_size) if r != self._topology.rank]

    def poll(self, started_wall: float) -> list[tuple[int, Sample]]:
        """Read every rank's latest report; return their new samples (with the rank that took each) on rank 0's
        clock, named as the run names them. A store that fails is warned about once; what was read stays."""
        with self._lock:
            found: list[tuple[int, Sample]] = []
            try:
                for rank in self._others():
                    key = f"{self._prefix}report/{rank}"
                    if (rank in self._reports and self._reports[rank].final) or not self._kv.check([key]):
                        continue
                    try:
                        report = parse_report(self._kv.get(key), self._topology.world_size)
                    except PARSE_ERRORS as exc:
                        self._bad[rank] = str(exc)[:300]
                        continue
                    self._reports[rank] = report
                    found.extend((rank, s) for s in self._samples(report, started_wall))
                now = time.time()
                self.lost = frozenset(r for r, rep in self._reports.items() if not rep.final and not self.alive(r, now))
            except STORE_ERRORS as exc:
                if not self._warned:
                    self._warned = True
                    log.warning("wattwise: rank 0 could not read the other ranks' reports: %s", exc)
            return found

    def _samples(self, report: RankReport, started_wall: float) -> list[Sample]:
        shift = report.started_wall - started_wall
        found: list[Sample] = []
        for chunk in range(self._taken.get(report.rank, 0), report.chunks):
            key = f"{self._prefix}samples/{report.rank}/{chunk}"
            try:
                rows = json.loads(self._kv.get(key))
                found.extend(
                    Sample(
                        t_s=float(t_s) + shift,
                        channel=qualified(str(channel), report.host, self._topology),
                        power_w=float(power_w),
                        energy_j=float(energy_j),
                    )
                    for t_s, channel, power_w, energy_j in rows
                    if float(t_s) + shift >= 0
                )
            except (ValueError, TypeError) as exc:
                self._bad[report.rank] = f"sample chunk {chunk}: {exc}"
            self._kv.delete_key(key)
            self._taken[report.rank] = chunk + 1
        return found

    def alive(self, rank: int, now: float) -> bool:
        """Whether ``rank`` may still send its final report: its process is there (same host) or it spoke lately."""
        report = self._reports.get(rank)
        if report is not None and report.host == self._topology.host and _gone(report.pid):
            return False
        key = f"{self._prefix}alive/{rank}"
        try:
            last = float(self._kv.get(key)) if self._kv.check([key]) else (report.updated_wall if report else 0.0)
        except (*STORE_ERRORS, TypeError):
            return False
        return now - last < DEAD_AFTER_S

    def wait_finals(self, started_wall: float, patience_s: float) -> list[tuple[int, Sample]]:
        """Poll until every rank has sent its final report, is gone or never reported, for at most
        ``patience_s``; the samples read meanwhile."""
        found = self.poll(started_wall)
        begun = time.time()
        while True:
            now = time.time()
            reports = self.reports
            pending = [r for r in self._others() if not (r in reports and reports[r].final)]
            waiting = [
                r
                for r in pending
                if (r in reports and r not in self.lost and self.alive(r, now))
                or (r not in reports and now - started_wall < NEVER_REPORTED_S)  # a late start, not a no-show
            ]
            if not waiting or now - begun >= patience_s:
                return found
            time.sleep(0.2)
            found.extend(self.poll(started_wall))

    def notes(self) -> list[str]:
        with self._lock:
            return [f"rank {rank}'s report could not be read: {why}" for rank, why in sorted(self._bad.items())]

    def clean_up(self) -> None:
        """Remove the run's reports and heartbeats from the job's store (its sample chunks went as they were read)."""
        try:
            for rank in self._others():
                self._kv.delete_key(f"{self._prefix}report/{rank}")
                self._kv.delete_key(f"{self._prefix}alive/{rank}")
        except STORE_ERRORS:
            return


class RankReducer:
    """Rank 0's writer: the run's store writer, fed the reduced record and every rank's samples."""

    def __init__(
        self,
        inner: RunWriter,
        collector: RankCollector,
        topology: Topology,
        *,
        water_l: Callable[[float], tuple[float, float]],
        predict_epochs: EpochPredictor,
    ) -> None:
        self._inner = inner
        self._collector = collector
        self._topology = topology
        self._water_l = water_l
        self._predict = predict_epochs
        self._cpu = cpu_reader()
        self._own: Run | None = None  # rank 0's latest own record (whose channels it keeps)

    @property
    def samples_stored(self) -> int:
        return self._inner.samples_stored

    @property
    def samples_taken(self) -> int:
        return self._inner.samples_taken

    def _merge(self, run: Run, *, final: bool) -> Run:
        self._own = run
        merged = reduce_run(
            run,
            self._cpu(),
            self._topology,
            self._collector.reports,
            final=final,
            water_l=self._water_l,
            predict_epochs=self._predict,
            lost=self._collector.lost,
        )
        extra = self._collector.notes()
        return merged.replace(notes=(*merged.notes, *extra)) if extra else merged

    def _take(self, found: list[tuple[int, Sample]]) -> None:
        """The other ranks' samples of the channels the run keeps from them (a GPU two ranks measured: the lower)."""
        if not found:
            return
        own = self._own
        owner = owners(own, self._topology, self._collector.reports) if own is not None else {}
        self._inner.add([s for rank, s in found if owner.get(s.channel, rank) == rank])

    def begin(self, run: Run) -> None:
        self._inner.begin(self._merge(run, final=False))

    def add(self, samples: list[Sample]) -> None:
        if self._topology.multi_node:
            host = self._topology.host
            samples = [Sample(s.t_s, f"{host}/{s.channel}", s.power_w, s.energy_j) for s in samples]
        self._inner.add(samples)

    def checkpoint(self, run: Run) -> bool:
        self._own = run
        self._take(self._collector.poll(run.started_at.timestamp()))
        return self._inner.checkpoint(self._merge(run, final=False))

    def complete(self, run: Run, *, hurry: bool = False) -> Run:
        """The record the run ends with, once the other ranks have sent their final reports (or are gone)."""
        self._own = run
        patience = HURRY_WAIT_S if hurry or run.status != "complete" else MAX_WAIT_S
        self._take(self._collector.wait_finals(run.started_at.timestamp(), patience))
        merged = self._merge(run, final=True)
        self._collector.clean_up()
        return self._inner.complete(merged)

    def final(self, run: Run) -> None:
        self._inner.final(run)
