"""How the ranks of a distributed run reach rank 0: reports and samples through the job's key-value store.

wattwise never initialises a process group and never calls a collective (a collective hangs when a peer died, and
would interleave with the user's own). It uses the key-value store the job already has: under ``torchrun`` the
agent's store (``MASTER_ADDR:MASTER_PORT``, hosted by torchrun itself, so it outlives a worker that dies);
otherwise the store of the process group the user initialised (call ``wattwise.track()`` after
``init_process_group``).

Every rank other than 0 posts, under ``wattwise/<job>/<n>/`` (``n`` counts the distributed runs each rank began,
so ranks pair their n-th runs without talking):

* ``report/<rank>``: its record so far (``Run.to_dict()``), its CPU time and whether it is final, at the start,
  at every checkpoint (``flush_s``) and at the end;
* ``samples/<rank>/<k>``: its samples since the last chunk;
* ``alive/<rank>``: the time, at most once a second, while it measures.

Rank 0 reads them at each of its checkpoints, and at its end waits for every rank's final report while that rank
is alive (a heartbeat in the last :data:`DEAD_AFTER_S` seconds, or its process still there on the same host), up to
:data:`MAX_WAIT_S`, and for a rank that never reported until :data:`NEVER_REPORTED_S` after its own start; then it
reduces (:mod:`wattwise.measure.rank_reduce`) and stores one record.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from collections.abc import Callable
from datetime import timedelta
from typing import TYPE_CHECKING, Any, Protocol

from wattwise.errors import RecordError
from wattwise.measure.rank_reduce import EpochPredictor, RankReport, qualified, reduce_run
from wattwise.measure.ranks import Topology
from wattwise.records import Run, Sample

if TYPE_CHECKING:
    from wattwise.measure.persist import RunWriter

__all__ = ["KeyValue", "RankCollector", "RankPoster", "RankReducer", "open_exchange", "run_prefix"]

log = logging.getLogger(__name__)

STORE_TIMEOUT_S = 30.0
DEAD_AFTER_S = 15.0  # a rank silent this long is taken for dead (it posts at least once a second while measuring)
NEVER_REPORTED_S = 15.0  # a rank that has not reported this long after rank 0's start is not coming
MAX_WAIT_S = 120.0  # rank 0's end waits at most this long for the other ranks' final reports
_STORE_ERRORS = (RuntimeError, OSError, ValueError, TimeoutError)  # torch's store errors are RuntimeErrors


class KeyValue(Protocol):
    """The part of torch.distributed's ``Store`` used here (``TCPStore``, ``PrefixStore``, ``FileStore``...)."""

    def set(self, key: str, value: str) -> None: ...

    def get(self, key: str) -> bytes: ...

    def check(self, keys: list[str]) -> bool: ...

    def add(self, key: str, value: int) -> int: ...

    def delete_key(self, key: str) -> bool: ...


def open_exchange(topology: Topology) -> tuple[KeyValue | None, str]:
    """The job's store, or None and why not (the run is then measured by each process on its own)."""
    try:
        import torch.distributed as dist
    except ImportError:
        return None, "torch is not installed, so the ranks cannot reach rank 0"
    if topology.agent_store is not None:
        host, port = topology.agent_store
        try:
            store = dist.TCPStore(  # type: ignore[attr-defined]
                host, port, is_master=False, timeout=timedelta(seconds=STORE_TIMEOUT_S)
            )
        except _STORE_ERRORS as exc:
            return None, f"cannot reach torchrun's store at {host}:{port} ({exc})"
        return store, f"torchrun's store at {host}:{port}"
    if dist.is_available() and dist.is_initialized():
        default = getattr(dist.distributed_c10d, "_get_default_store", None)
        if default is not None:
            return default(), "the process group's store"
    return None, (
        "torch.distributed is not initialised: call wattwise.track() after init_process_group(), or launch with "
        "torchrun"
    )


def run_prefix(store: KeyValue, topology: Topology) -> str:
    """The keys of this rank's next distributed run: ranks pair their n-th runs (see the module docstring)."""
    base = f"wattwise/{topology.scope}"
    number = store.add(f"{base}/seq/{topology.rank}", 1)
    return f"{base}/{number}/"


def _cpu_reader() -> Callable[[], float]:
    """CPU seconds of this process's tree since now (the basis of its share of the node-wide energy)."""
    from wattwise.devices.host import open_host

    host = open_host(os.getpid())
    start = host.snapshot().tree_cpu_s

    def read() -> float:
        try:
            return max(0.0, host.snapshot().tree_cpu_s - start)
        except (OSError, ValueError, IndexError):
            return 0.0

    return read


class RankPoster:
    """The writer of a rank other than 0: posts its record and samples for rank 0 (and stores nothing itself)."""

    def __init__(self, store: KeyValue, prefix: str, topology: Topology) -> None:
        self._kv = store
        self._prefix = prefix
        self._topology = topology
        self._cpu = _cpu_reader()
        self._lock = threading.Lock()
        self._buffer: list[Sample] = []
        self._chunks = 0
        self._alive_at = 0.0
        self._warned = False
        self._finished = False
        self.samples_stored = 0
        self.samples_taken = 0

    def _call(self, what: str, action: Callable[[], object]) -> bool:
        try:
            action()
        except _STORE_ERRORS as exc:
            if not self._warned:
                self._warned = True
                log.warning("wattwise: rank %d could not %s rank 0: %s", self._topology.rank, what, exc)
            return False
        return True

    def begin(self, run: Run) -> None:
        self._post(run, final=False)

    def add(self, samples: list[Sample]) -> None:
        now = time.time()
        with self._lock:
            self._buffer.extend(samples)
            self.samples_taken += len(samples)
            due = now - self._alive_at >= 1.0 and not self._finished
            if due:
                self._alive_at = now
        if due:
            self._call("tell", lambda: self._kv.set(f"{self._prefix}alive/{self._topology.rank}", repr(now)))

    def checkpoint(self, run: Run) -> bool:
        with self._lock:
            if self._finished:
                return False
        return self._post(run, final=False)

    def complete(self, run: Run) -> Run:
        return run

    def final(self, run: Run) -> None:
        with self._lock:
            self._finished = True
        self._post(run, final=True)

    def _post(self, run: Run, *, final: bool) -> bool:
        rank = self._topology.rank
        with self._lock:
            batch, self._buffer = self._buffer, []
            chunk = self._chunks
        if batch:
            rows = [[s.t_s, s.channel, s.power_w, s.energy_j] for s in batch]
            if not self._call(
                "send samples to", lambda: self._kv.set(f"{self._prefix}samples/{rank}/{chunk}", json.dumps(rows))
            ):
                with self._lock:
                    self._buffer = batch + self._buffer
                return False
            with self._lock:
                self._chunks = chunk + 1
                self.samples_stored += len(batch)
        report = {
            "rank": rank,
            "local_rank": self._topology.local_rank,
            "host": self._topology.host,
            "pid": os.getpid(),
            "final": final,
            "started_wall": run.started_at.timestamp(),
            "updated_wall": time.time(),
            "cpu_s": self._cpu(),
            "chunks": self._chunks,
            "run": run.to_dict(),
        }
        text = json.dumps(report, allow_nan=False)
        return self._call("report to", lambda: self._kv.set(f"{self._prefix}report/{rank}", text))


def _report(text: bytes) -> RankReport:
    """A rank's report from its JSON, every field checked (RecordError, ValueError or KeyError if it is not one)."""
    data: dict[str, Any] = json.loads(text)
    run = Run.from_dict(data["run"])
    numbers = {key: float(data[key]) for key in ("started_wall", "updated_wall", "cpu_s")}
    return RankReport(
        rank=int(data["rank"]),
        local_rank=int(data["local_rank"]),
        host=str(data["host"]),
        pid=int(data["pid"]),
        final=bool(data["final"]),
        chunks=int(data["chunks"]),
        run=run,
        **numbers,
    )


class RankCollector:
    """Rank 0's side: the other ranks' latest reports, and their samples not yet taken."""

    def __init__(self, store: KeyValue, prefix: str, topology: Topology) -> None:
        self._kv = store
        self._prefix = prefix
        self._topology = topology
        self.reports: dict[int, RankReport] = {}
        self._taken: dict[int, int] = {}  # rank → sample chunks read
        self._bad: dict[int, str] = {}
        self.lost: frozenset[int] = frozenset()  # ranks found gone before their final report
        self._warned = False
        self._lock = threading.Lock()  # the sampler's checkpoints, a signal handler's and the end poll one at a time

    def _others(self) -> list[int]:
        return [r for r in range(self._topology.world_size) if r != self._topology.rank]

    def poll(self, started_wall: float) -> list[Sample]:
        """Read every rank's latest report; return their new samples on rank 0's clock, names as the run has
        them. A store that fails is warned about once; what was read before stays."""
        with self._lock:
            return self._poll(started_wall)

    def _poll(self, started_wall: float) -> list[Sample]:
        samples: list[Sample] = []
        try:
            for rank in self._others():
                key = f"{self._prefix}report/{rank}"
                if rank in self.reports and self.reports[rank].final:
                    continue
                if not self._kv.check([key]):
                    continue
                try:
                    report = _report(self._kv.get(key))
                except (RecordError, ValueError, KeyError, TypeError) as exc:
                    self._bad[rank] = str(exc)
                    continue
                self.reports[rank] = report
                samples.extend(self._samples(report, started_wall))
            now = time.time()
            self.lost = frozenset(r for r, rep in self.reports.items() if not rep.final and not self.alive(r, now))
        except _STORE_ERRORS as exc:
            if not self._warned:
                self._warned = True
                log.warning("wattwise: rank 0 could not read the other ranks' reports: %s", exc)
        return samples

    def _samples(self, report: RankReport, started_wall: float) -> list[Sample]:
        shift = report.started_wall - started_wall
        found: list[Sample] = []
        first = self._taken.get(report.rank, 0)
        for chunk in range(first, report.chunks):
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
        report = self.reports.get(rank)
        if report is not None and report.host == self._topology.host:
            try:
                os.kill(report.pid, 0)
            except ProcessLookupError:
                return False
            except PermissionError:
                pass
        key = f"{self._prefix}alive/{rank}"
        try:
            last = float(self._kv.get(key)) if self._kv.check([key]) else (report.updated_wall if report else 0.0)
        except (*_STORE_ERRORS, TypeError):
            return False
        return now - last < DEAD_AFTER_S

    def wait_finals(self, started_wall: float, max_wait_s: float = MAX_WAIT_S) -> list[Sample]:
        """Poll until every rank has sent its final report, has died or never reported (see the module
        docstring); the samples read meanwhile."""
        samples = self.poll(started_wall)
        begun = time.time()
        while True:
            now = time.time()
            pending = [r for r in self._others() if not (r in self.reports and self.reports[r].final)]
            waiting = [
                r
                for r in pending
                if (r in self.reports and self.alive(r, now))
                or (r not in self.reports and now - started_wall < NEVER_REPORTED_S)  # a late start, not a no-show
            ]
            if not waiting or now - begun >= max_wait_s:
                return samples
            time.sleep(0.2)
            samples.extend(self.poll(started_wall))

    def notes(self) -> list[str]:
        return [f"rank {rank}'s report could not be read: {why}" for rank, why in sorted(self._bad.items())]


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
        self._cpu = _cpu_reader()

    @property
    def samples_stored(self) -> int:
        return self._inner.samples_stored

    @property
    def samples_taken(self) -> int:
        return self._inner.samples_taken

    def _merge(self, run: Run, *, final: bool) -> Run:
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

    def begin(self, run: Run) -> None:
        self._inner.begin(self._merge(run, final=False))

    def add(self, samples: list[Sample]) -> None:
        if self._topology.multi_node:
            host = self._topology.host
            samples = [Sample(s.t_s, f"{host}/{s.channel}", s.power_w, s.energy_j) for s in samples]
        self._inner.add(samples)

    def checkpoint(self, run: Run) -> bool:
        self._inner.add(self._collector.poll(run.started_at.timestamp()))
        return self._inner.checkpoint(self._merge(run, final=False))

    def complete(self, run: Run) -> Run:
        """The record the run ends with: once the other ranks have sent their final reports (or died)."""
        self._inner.add(self._collector.wait_finals(run.started_at.timestamp()))
        return self._inner.complete(self._merge(run, final=True))

    def final(self, run: Run) -> None:
        self._inner.final(run)
