"""A tracker's part in a distributed job: finding the job, what its node-wide sources are attributed to, and where
its records go (see :mod:`wattwise.measure.ranks` and :mod:`wattwise.measure.rank_exchange`)."""

from __future__ import annotations

import logging
import os
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
    from wattwise.measure.ranks import detect

    topology = detect()
    if topology is None:
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


def host_root(topology: Topology | None, notes: list[str]) -> int:
    """The process whose tree the node-wide sources are attributed to: under torchrun, on local rank 0, the agent
    (its tree holds every local rank of the node); otherwise this process."""
    if topology is None or not topology.node_wide:
        return os.getpid()
    if topology.elastic:
        notes.append(
            f"node-wide energy of {topology.host} attributed to every local rank (torchrun's process tree) and split "
            "among them by CPU time"
        )
        return os.getppid()
    notes.append(
        f"node-wide energy of {topology.host} attributed to local rank 0's process tree only (launch with torchrun "
        "to include every local rank)"
    )
    return os.getpid()


def job_sink(
    distributed: tuple[Topology, KeyValue],
    writer: RunWriter | None,
    plan: CarbonPlan,
    account: CarbonAccount,
    epochs_planned: int | None,
) -> RecordSink:
    """Rank 0: its store's ``writer`` with every rank reduced into the record; another rank: a poster to rank 0."""
    from wattwise.measure.rank_exchange import RankCollector, RankPoster, RankReducer, run_prefix

    topology, kv = distributed
    prefix = run_prefix(kv, topology)
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
