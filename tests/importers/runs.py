"""Stored runs for the importers' tests: a GPU run on the recorded DCGM node, with samples, in a SQLite file."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from tests.store.builders import make_run
from wattwise.records import ComponentEnergy, Run, Sample
from wattwise.store import SQLiteStore

GPU0 = "GPU-34319582-d595-d1c7-d1d2-179bcfa61660"  # the GPUs of tests/data/cluster/dcgm-exporter.txt
GPU1 = "GPU-8c16e996-bd76-aa91-17e7-b48bcd0208ba"
T0 = datetime(2025, 3, 1, 12, 0, 7, tzinfo=UTC)  # not on a scrape boundary


def gpu_run(run_id: str = "20250301-120007-a1b2c3", *, uuids: tuple[str, ...] = (GPU0,), seconds: float = 300.0) -> Run:
    """A finished run that measured these GPUs (their UUIDs in the channels' detail, as the NVML source writes)."""
    gpus = tuple(
        ComponentEnergy(
            f"gpu:{i}",
            "gpu",
            400.0 * seconds,
            420.0 * seconds,
            "measured",
            "nvml-energy-counter",
            f"NVIDIA H100 80GB HBM3 ({uuid}): total-energy counter",
        )
        for i, uuid in enumerate(uuids)
    )
    cpu = ComponentEnergy("cpu:package-0", "cpu", 60.0 * seconds, 90.0 * seconds, "measured", "rapl")
    dram = ComponentEnergy("dram:package-0", "dram", 8.0 * seconds, 12.0 * seconds, "measured", "rapl")
    parts = (*gpus, cpu, dram)
    return make_run(
        run_id,
        started_at=T0,
        duration_s=seconds,
        components=parts,
        energy_j=sum(c.energy_j for c in parts),
        machine_energy_j=sum(c.machine_energy_j for c in parts),
        host="gpu-node-07",
    )


def samples(seconds: int = 10) -> list[Sample]:
    return [Sample(float(t), "gpu:0", 400.0, 400.0 * t) for t in range(1, seconds + 1)]


def store_run(path: Path, run: Run) -> tuple[Run, list[Sample]]:
    """``run`` and its samples stored in the SQLite file at ``path``; both as read back."""
    with SQLiteStore(path) as store:
        store.save(run)
        store.append_samples(run.id, samples())
        return store.get(run.id), list(store.iter_samples(run.id))


def unchanged(path: Path, run: Run, kept: list[Sample]) -> bool:
    """Whether the stored record and its samples are exactly as they were."""
    with SQLiteStore(path, read_only=True) as store:
        return store.get(run.id) == run and list(store.iter_samples(run.id)) == kept


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)
