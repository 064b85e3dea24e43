"""A tracker's part in a distributed job: finding the job, what its node-wide sources are attributed to, and where
its records go (see :mod:`wattwise.measure.ranks` and :mod:`wattwise.measure.rank_exchange`)."""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from wattwise.measure.emissions import CarbonAccount, CarbonPlan
    from wattwise.measure.persist import RecordSink, RunWriter
    from wattwise.measure.rank_exchange import KeyValue
    from wattwise.measure.ranks import Topology
    from wattwise.records import Prediction

__all__ = ["find_job", "host_root", "job_sink"]

log = logging.getLogger(__name__)  # one line on stderr by Python's last-resort handler


def find_job(notes: list[str]) -> tuple[Topology, KeyValue] | None:
    """This process's rank in a distributed job and the job's store, or None to measure it on its own (no job, or
    a job whose store cannot be reached: said in ``notes`` and on stderr)."""
    from wattwise.errors import ConfigError
    from wattwise.measure.ranks import detect

    try:
        topology = detect()
    except ConfigError as exc:  # the launcher's environment, not the user's settings: measure, and say so
        note = f"measured on its own: {exc}"
        notes.append(note)
        log.warning("wattwise: %s", note)
        return None
    if topology is None:
        _unannounced_group(notes)
        return None
    from wattwise.measure.rank_exchange import open_exchange

    store, how = open_exchange(topology)
    if store is None:
        note = f"rank {topology.rank} of {topology.world_size} measured on its own ({how})"
        notes.append(note)
        log.warning("wattwise: %s", note)
        return None
    notes.append(f"a job of {topology.world_size} ranks; they reach rank 0 through {how}")
    return topology, store


def _unannounced_group(notes: list[str]) -> None:
    """A process group initialised without torchrun's variables (``mp.spawn`` with ``init_method=tcp://``): each
    process is measured on its own, which counts a node once per process; say so rather than stay silent."""
    import sys

    dist = sys.modules.get("torch.distributed")
    try:
        if dist is None or not dist.is_available() or not dist.is_initialized() or dist.get_world_size() <= 1:
            return
        rank, world = dist.get_rank(), dist.get_world_size()
    except (RuntimeError, ValueError):
        return
    note = (
        f"rank {rank} of {world} of a process group, but RANK, WORLD_SIZE and LOCAL_RANK are not set: measured on "
        "its own, so its node's CPU and memory are counted once per process; launch with torchrun, or set them"
    )
    notes.append(note)
    log.warning("wattwise: %s", note)


_AGENT_MARKS = (b"torchrun", b"torch.distributed.run", b"torch/distributed/run.py", b"torch.distributed.launch")


def agent_pid(proc_root: Path = Path("/proc"), *, start: int | None = None) -> int | None:
    """torchrun's agent among this process's ancestors (a wrapper script may stand between), or None."""
    pid = os.getppid() if start is None else start
    for _ in range(8):
        if pid <= 1:
            return None
        try:
            command = (proc_root / str(pid) / "cmdline").read_bytes()
            stat = (proc_root / str(pid) / "stat").read_text()
        except OSError:
            return None
        if any(mark in command for mark in _AGENT_MARKS):
            return pid
        pid = int(stat[stat.rfind(")") + 2 :].split()[1])  # the parent's pid
    return None


def host_root(topology: Topology | None, notes: list[str]) -> int:
    """The process whose tree the node-wide sources are attributed to: under torchrun, on local rank 0, the agent
    (its tree holds every local rank of the node); otherwise this process."""
    if topology is None or not topology.node_wide:
        return os.getpid()
    agent = agent_pid() if topology.elastic else None
    if agent is not None:
        notes.append(
            f"node-wide energy of {topology.host} attributed to every local rank (torchrun's process tree) and split "
            "among them by CPU time"
        )
        return agent
    notes.append(
        f"node-wide energy of {topology.host} attributed to local rank 0's process tree only (torchrun's agent is not "
        "among its ancestors): the other local ranks' CPU use is not in it"
    )
    return os.getpid()


def job_sink(
    name: str,
    distributed: tuple[Topology, KeyValue],
    writer: RunWriter | None,
    plan: CarbonPlan,
    account: CarbonAccount,
    epochs_planned: int | None,
) -> RecordSink:
    """Rank 0: its store's ``writer`` with every rank reduced into the record; another rank: a poster to rank 0."""
    from wattwise.measure.rank_collect import RankCollector, RankReducer
    from wattwise.measure.rank_exchange import RankPoster, run_prefix

    topology, kv = distributed
    prefix = run_prefix(kv, topology, name)
    if not topology.main:
        return RankPoster(kv, prefix, topology)
    assert writer is not None

    def predict_epochs(
        energies: list[float], durations: list[float], so_far_j: float, elapsed_s: float
    ) -> Prediction | None:
        if not epochs_planned:
            return None
        from wattwise.measure.prediction import predict

        return predict(
            energies, durations, epochs_planned, so_far_j, elapsed_s, account.pue, account.effective_intensity()
        )

    return RankReducer(
        writer, RankCollector(kv, prefix, topology), topology, water_l=plan.water_l, predict_epochs=predict_epochs
    )
