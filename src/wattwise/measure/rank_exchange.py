"""How the ranks of a distributed run reach rank 0: reports and samples through the job's key-value store.

wattwise never initialises a process group and never calls a collective (a collective hangs when a peer died, and
would interleave with the user's own). It uses the key-value store the job already has: under ``torchrun`` the
agent's store (``MASTER_ADDR:MASTER_PORT``, hosted by torchrun itself, so it outlives a worker that dies);
otherwise the store of the process group the user initialised (call ``wattwise.track()`` after
``init_process_group``).

Ranks pair their runs by name: the n-th run named ``train`` on every rank is one run, whatever else each rank
tracked in between (a run rank 0 alone tracks, an evaluation, pairs with nothing). Every rank other than 0 posts,
under ``wattwise/<job>/<name>/<n>/``:

* ``report/<rank>``: its record so far (``Run.to_dict()``), its CPU time and whether it is final, at the start,
  at every checkpoint (``flush_s``) and at the end;
* ``samples/<rank>/<k>``: its samples since the last chunk;
* ``alive/<rank>``: the time, at most once a second, while it measures.

Rank 0's side is :mod:`wattwise.measure.rank_collect`.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
import socket
import threading
import time
from collections.abc import Callable
from datetime import timedelta
from typing import Any, Protocol

from wattwise import validate
from wattwise.errors import RecordError
from wattwise.measure.rank_reduce import RankReport
from wattwise.measure.ranks import Topology
from wattwise.records import Run, Sample

__all__ = [
    "PARSE_ERRORS",
    "STORE_ERRORS",
    "KeyValue",
    "RankPoster",
    "cpu_reader",
    "open_exchange",
    "parse_report",
    "run_prefix",
]

log = logging.getLogger(__name__)

STORE_TIMEOUT_S = 10.0  # one store operation (torch's TCPStore retries within it)
CONNECT_CHECK_S = 3.0  # torchrun's store must answer a TCP connection this fast, or the ranks measure on their own
MAX_REPORT_WINDOWS = 10_000  # a rank's report carries at most this many windows (its latest)
STORE_ERRORS = (RuntimeError, OSError, ValueError, TimeoutError)  # torch's store errors are RuntimeErrors
PARSE_ERRORS = (RecordError, ValueError, KeyError, TypeError)  # a report that is not one


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
        try:  # a plain connection first: torch's client retries for long, printing C++ traces, when nobody answers
            socket.create_connection((host, port), timeout=CONNECT_CHECK_S).close()
            store = dist.TCPStore(  # type: ignore[attr-defined]
                host, port, is_master=False, timeout=timedelta(seconds=STORE_TIMEOUT_S)
            )
        except STORE_ERRORS as exc:
            return None, f"cannot reach torchrun's store at {host}:{port} ({exc})"
        return store, "torchrun's store"
    if dist.is_available() and dist.is_initialized():
        default = getattr(dist.distributed_c10d, "_get_default_store", None)
        if default is not None:
            return default(), "the process group's store"
    return None, (
        "torch.distributed is not initialised: call wattwise.track() after init_process_group(), or launch with "
        "torchrun"
    )


def run_prefix(store: KeyValue, topology: Topology, name: str) -> str:
    """The keys of this rank's next run named ``name``: the n-th run of a name on each rank is one run."""
    tag = hashlib.sha256(name.encode("utf-8", "surrogatepass")).hexdigest()[:16]
    base = f"wattwise/{topology.scope}/{tag}"
    number = store.add(f"{base}/seq/{topology.rank}", 1)
    return f"{base}/{number}/"


def cpu_reader() -> Callable[[], float]:
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
    """The writer of a rank other than 0: posts its record and samples for rank 0 (and stores nothing itself).

    Posts are serialised (the sampler's checkpoints, a signal's, the end), and nothing is posted after the final
    report, so a late checkpoint never replaces it and two posts never write the same sample chunk."""

    def __init__(self, store: KeyValue, prefix: str, topology: Topology) -> None:
        self._kv = store
        self._prefix = prefix
        self._topology = topology
        self._cpu = cpu_reader()
        self._lock = threading.Lock()  # the sample buffer
        self._post_lock = threading.Lock()  # one post at a time
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
        except STORE_ERRORS as exc:
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
        return self._post(run, final=False)

    def complete(self, run: Run, *, hurry: bool = False) -> Run:
        return run

    def final(self, run: Run) -> None:
        self._post(run, final=True)

    def _post(self, run: Run, *, final: bool) -> bool:
        rank = self._topology.rank
        with self._post_lock:
            if self._finished:
                return False
            if final:
                self._finished = True
            with self._lock:
                batch, self._buffer = self._buffer, []
            if batch:
                rows = json.dumps([[s.t_s, s.channel, s.power_w, s.energy_j] for s in batch], allow_nan=False)
                key = f"{self._prefix}samples/{rank}/{self._chunks}"
                if not self._call("send samples to", lambda: self._kv.set(key, rows)):
                    with self._lock:
                        self._buffer = batch + self._buffer
                    return False
                self._chunks += 1
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
                "run": run.replace(windows=run.windows[-MAX_REPORT_WINDOWS:]).to_dict(),
            }
            text = json.dumps(report, allow_nan=False)
            return self._call("report to", lambda: self._kv.set(f"{self._prefix}report/{rank}", text))


def _finite(value: Any, bounds: validate.Bounds, what: str) -> float:
    number = float(value)
    if not math.isfinite(number) or not bounds.contains(number):
        raise ValueError(f"{what} is {value!r}: {bounds.describe()}")
    return number


def parse_report(text: bytes, world_size: int) -> RankReport:
    """A rank's report from its JSON, every field checked: ValueError, KeyError, TypeError or RecordError name
    what is wrong (a report from another version, or tampered with, is never merged into a run)."""
    data: dict[str, Any] = json.loads(text, parse_constant=lambda c: float("nan"))
    run = Run.from_dict(data["run"])
    rank = int(data["rank"])
    if not 0 < rank < world_size:
        raise ValueError(f"rank {rank} is not a rank of this job of {world_size}")
    for i, part in enumerate(run.components):
        for name in ("energy_j", "machine_energy_j"):
            _finite(getattr(part, name), validate.ENERGY_J, f"components[{i}].{name}")
    for name in ("energy_j", "machine_energy_j"):
        _finite(getattr(run, name), validate.ENERGY_J, name)
    _finite(run.co2e_g, validate.CO2E_G, "co2e_g")
    _finite(run.duration_s, validate.DURATION_S, "duration_s")
    for i, window in enumerate(run.windows):
        _finite(window.energy_j, validate.ENERGY_J, f"windows[{i}].energy_j")
        _finite(window.duration_s, validate.DURATION_S, f"windows[{i}].duration_s")
        _finite(window.co2e_g, validate.CO2E_G, f"windows[{i}].co2e_g")
        for key, value in window.components.items():
            _finite(value, validate.ENERGY_J, f"windows[{i}].components.{key}")
    wall = validate.Bounds("time", "s", 0.0, 1e11)
    return RankReport(
        rank=rank,
        local_rank=int(data["local_rank"]),
        host=str(data["host"]),
        pid=int(data["pid"]),
        final=bool(data["final"]),
        started_wall=_finite(data["started_wall"], wall, "started_wall"),
        updated_wall=_finite(data["updated_wall"], wall, "updated_wall"),
        cpu_s=_finite(data["cpu_s"], validate.DURATION_S, "cpu_s"),
        chunks=int(data["chunks"]),
        run=run,
    )
