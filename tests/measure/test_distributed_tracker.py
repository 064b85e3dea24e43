"""Trackers as ranks of one job (threads sharing an in-memory key-value store): one record on rank 0, each node-wide
source counted once, every rank's figures and samples in it, and a rank that dies or never comes does not lose the
others' figures."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from tests.fakes.keyvalue import MemoryKeyValue, RankView
from tests.fakes.power import ConstantPowerSource, FakeHost
from wattwise.config import Settings
from wattwise.measure import rank_collect as rank_exchange
from wattwise.measure.ranks import Topology
from wattwise.measure.tracker import Tracker
from wattwise.store.sqlite import SQLiteStore


def topo(
    rank: int, world: int = 2, host: str = "node-a", local_world: int | None = 2, local: int | None = None
) -> Topology:
    return Topology(
        rank=rank,
        world_size=world,
        local_rank=rank if local is None else local,
        local_world_size=local_world,
        host=host,
        scope="test/0",
    )


def rank_tracker(
    settings: Settings, rank: int, kv: object, power: dict[str, float], store: SQLiteStore | None = None, **kw: object
) -> Tracker:
    return Tracker(
        "job",
        settings=settings,
        store=store,
        sources=[ConstantPowerSource(power, name=f"rank{rank}")],
        host=FakeHost(),
        distributed=(kw.pop("topology", None) or topo(rank), kv),  # type: ignore[arg-type]
        epochs=2,
    )


@pytest.fixture
def store(tmp_path: Path) -> SQLiteStore:
    return SQLiteStore(tmp_path / "runs.db")


def test_ranks_reduce_to_one_record_with_each_node_wide_source_once(settings: Settings, store: SQLiteStore) -> None:
    kv = MemoryKeyValue()
    main = rank_tracker(settings, 0, kv, {"cpu": 20.0, "gpu:0": 100.0}, store)
    other = rank_tracker(settings, 1, kv, {"gpu:1": 50.0})
    main.start()
    other.start()
    for _ in range(2):
        time.sleep(0.3)
        other.epoch_end()
        main.epoch_end()
    time.sleep(0.3)
    mine = other.stop()
    run = main.stop()
    assert mine.id != run.id and store.list_runs() and len(store.list_runs()) == 1  # rank 1 stored nothing itself
    stored = store.get(run.id)
    assert stored == run and stored.status == "complete"
    names = sorted(c.name for c in stored.components)
    assert names == ["cpu", "gpu:0", "gpu:1"]
    parts = {c.name: c.energy_j for c in stored.components}
    assert parts["gpu:1"] == pytest.approx(50.0 * mine.duration_s, rel=0.05)
    assert [f.rank for f in stored.ranks] == [0, 1]
    zero, one = stored.ranks
    assert zero.status == one.status == "complete"
    assert sum(f.energy_j for f in stored.ranks) == pytest.approx(stored.energy_j, rel=1e-9)
    assert zero.node_share_j + one.node_share_j == pytest.approx(parts["cpu"], rel=1e-9)
    assert one.energy_j == pytest.approx(parts["gpu:1"] + one.node_share_j, rel=1e-9)
    # the epochs of both ranks are added up, and the prediction made from them
    epochs = [w for w in stored.windows if w.name.startswith("epoch-")]
    assert [w.name for w in epochs] == ["epoch-1", "epoch-2"]
    assert set(epochs[0].components) == {"cpu", "gpu:0", "gpu:1"}
    assert epochs[0].energy_j == pytest.approx(sum(epochs[0].components.values()), rel=1e-9)
    assert stored.prediction is not None
    assert stored.prediction.energy_j.value == pytest.approx(sum(w.energy_j for w in epochs), rel=1e-6)
    # rank 1's samples reached the store beside rank 0's
    channels = {s.channel for s in store.iter_samples(run.id)}
    assert channels == {"cpu", "gpu:0", "gpu:1"}
    assert stored.co2e_g > 0 and stored.co2e_g == pytest.approx(run.co2e_g)


def test_a_rank_that_dies_keeps_its_figures_to_its_last_report(
    settings: Settings, store: SQLiteStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(rank_exchange, "DEAD_AFTER_S", 0.8)
    shared = MemoryKeyValue()
    dying = RankView(shared)
    main = rank_tracker(settings, 0, shared, {"cpu": 20.0}, store)
    other = rank_tracker(settings, 1, dying, {"gpu:1": 50.0})
    main.start()
    other.start()
    time.sleep(0.6)  # a few checkpoints (flush_s 0.2)
    dying.broken = True  # the rank is gone: nothing more from it
    began = time.monotonic()
    run = main.stop()
    waited = time.monotonic() - began
    other.stop()
    assert waited < 5.0
    stored = store.get(run.id)
    assert stored.status == "incomplete"
    assert stored.error is not None and "1 of 2 ranks" in stored.error
    lost = stored.ranks[1]
    assert lost.status == "lost" and lost.energy_j > 50.0 * 0.3
    assert any("rank 1" in note and "no final report" in note for note in stored.notes)
    assert stored.energy_j == pytest.approx(sum(f.energy_j for f in stored.ranks), rel=1e-9)


def test_a_rank_that_never_reports_is_missing(
    settings: Settings, store: SQLiteStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(rank_exchange, "NEVER_REPORTED_S", 0.5)
    kv = MemoryKeyValue()
    main = rank_tracker(settings, 0, kv, {"cpu": 20.0}, store, topology=topo(0, world=3, local_world=3))
    other = rank_tracker(settings, 1, kv, {"gpu:1": 5.0}, topology=topo(1, world=3, local_world=3))
    main.start()
    other.start()
    time.sleep(0.2)
    other.stop()
    run = main.stop()
    assert [(f.rank, f.status) for f in run.ranks] == [(0, "complete"), (1, "complete"), (2, "missing")]
    assert run.status == "incomplete"
    assert any("rank 2" in note and "never reported" in note for note in run.notes)


def test_rank_zero_tracking_alone_is_said_and_not_waited_for(
    settings: Settings, store: SQLiteStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``if rank == 0: track()``: the run is rank 0's GPUs and node, said so, without waiting for ranks that never
    come once the start's grace is over."""
    monkeypatch.setattr(rank_exchange, "NEVER_REPORTED_S", 0.6)
    main = rank_tracker(settings, 0, MemoryKeyValue(), {"cpu": 20.0}, store, topology=topo(0, world=4, local_world=4))
    main.start()
    time.sleep(0.7)
    began = time.monotonic()
    run = main.stop()
    assert time.monotonic() - began < 0.5
    assert run.status == "complete"
    assert [(f.rank, f.status) for f in run.ranks] == [(0, "complete"), (1, "missing"), (2, "missing"), (3, "missing")]
    assert any("only rank 0 tracked this run" in note for note in run.notes)


def test_ranks_on_two_hosts_keep_their_components_apart(settings: Settings, store: SQLiteStore) -> None:
    kv = MemoryKeyValue()
    a = rank_tracker(settings, 0, kv, {"cpu": 10.0, "gpu:0": 100.0}, store, topology=topo(0, host="a", local_world=1))
    b = rank_tracker(settings, 1, kv, {"cpu": 10.0, "gpu:0": 100.0}, topology=topo(1, host="b", local_world=1, local=0))
    a.start()
    b.start()
    time.sleep(0.4)
    b.stop()
    run = a.stop()
    assert sorted(c.name for c in run.components) == ["a/cpu", "a/gpu:0", "b/cpu", "b/gpu:0"]
    assert {f.host for f in run.ranks} == {"a", "b"}
    assert {s.channel for s in store.iter_samples(run.id)} == {"a/cpu", "a/gpu:0", "b/cpu", "b/gpu:0"}
    for figure in run.ranks:  # each host's node-wide energy goes to its own rank only
        cpu = next(c for c in run.components if c.name == f"{figure.host}/cpu")
        assert figure.node_share_j == pytest.approx(cpu.energy_j, rel=1e-9)


def test_a_store_that_fails_loses_nothing_already_read(
    settings: Settings, store: SQLiteStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Rank 0 cannot read the job's store at its end: it keeps what it read and stores the run."""
    monkeypatch.setattr(rank_exchange, "DEAD_AFTER_S", 0.5)
    shared = MemoryKeyValue()
    mine = RankView(shared)
    main = rank_tracker(settings, 0, mine, {"cpu": 20.0}, store)
    other = rank_tracker(settings, 1, shared, {"gpu:1": 50.0})
    main.start()
    other.start()
    time.sleep(0.6)
    mine.broken = True
    run = main.stop()
    other.stop()
    assert store.get(run.id).ranks[1].energy_j > 0


def test_a_signal_while_rank_zero_waits_stores_the_run_at_once(settings: Settings, store: SQLiteStore) -> None:
    """torchrun's SIGTERM (or a scheduler's) arrives while rank 0 waits for a rank that is still running: the
    finaliser must not wait behind it, and must not lose rank 0's final record."""
    import threading

    kv = MemoryKeyValue()
    main = rank_tracker(settings, 0, kv, {"cpu": 20.0}, store)
    other = rank_tracker(settings, 1, kv, {"gpu:1": 50.0})
    main.start()
    other.start()
    time.sleep(0.4)
    waiting = threading.Thread(target=main.stop)  # rank 1 is alive: rank 0 waits for its final report
    waiting.start()
    time.sleep(0.5)
    assert waiting.is_alive() and main.result is None
    began = time.monotonic()
    main.finalise("terminated by SIGTERM")  # what the signal guard calls
    assert time.monotonic() - began < 4.0
    run = main.result
    assert run is not None and run.status == "incomplete" and run.error == "terminated by SIGTERM"
    assert [f.status for f in run.ranks] == ["incomplete", "lost"] and run.ranks[1].energy_j > 0
    assert store.get(run.id) == run
    other.stop()
    waiting.join(timeout=130)
    assert not waiting.is_alive() and main.result is run


def test_a_failed_rank_zero_does_not_wait_long_for_ranks_stuck_with_it(settings: Settings, store: SQLiteStore) -> None:
    kv = MemoryKeyValue()
    main = rank_tracker(settings, 0, kv, {"cpu": 20.0}, store)
    other = rank_tracker(settings, 1, kv, {"gpu:1": 50.0})
    other.start()
    with pytest.raises(RuntimeError), main:
        time.sleep(0.3)
        began = time.monotonic()
        raise RuntimeError("bug on this rank")
    assert time.monotonic() - began < 4.0
    assert (
        main.result is not None and main.result.status == "failed" and "bug on this rank" in (main.result.error or "")
    )
    other.stop()


def test_runs_pair_by_name_so_a_run_of_rank_zero_alone_takes_nobody_s_figures(
    settings: Settings, store: SQLiteStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(rank_exchange, "NEVER_REPORTED_S", 0.3)
    kv = MemoryKeyValue()
    evaluation = Tracker(
        "eval",
        settings=settings,
        store=store,
        sources=[ConstantPowerSource({"cpu": 5.0})],
        host=FakeHost(),
        distributed=(topo(0), kv),
    )
    evaluation.start()
    other = rank_tracker(settings, 1, kv, {"gpu:1": 50.0})  # rank 1's next run is "job", not "eval"
    other.start()
    time.sleep(0.4)
    alone = evaluation.stop()
    main = rank_tracker(settings, 0, kv, {"cpu": 20.0}, store)
    main.start()
    time.sleep(0.3)
    other.stop()
    run = main.stop()
    assert [f.status for f in alone.ranks] == ["complete", "missing"] and "gpu:1" not in {
        c.name for c in alone.components
    }
    assert [f.status for f in run.ranks] == ["complete", "complete"] and "gpu:1" in {c.name for c in run.components}
    assert run.duration_s >= 0.3


def test_a_gpu_two_ranks_measured_is_stored_once_in_the_series(settings: Settings, store: SQLiteStore) -> None:
    kv = MemoryKeyValue()
    main = rank_tracker(settings, 0, kv, {"cpu": 20.0, "gpu:0": 100.0}, store)
    other = rank_tracker(settings, 1, kv, {"gpu:0": 100.0})  # CUDA_VISIBLE_DEVICES=0 on both ranks
    main.start()
    other.start()
    time.sleep(0.6)
    other.stop()
    run = main.stop()
    counts: dict[str, int] = {}
    for sample in store.iter_samples(run.id):
        counts[sample.channel] = counts.get(sample.channel, 0) + 1
    assert counts["gpu:0"] == counts["cpu"]  # rank 1's samples of the GPU rank 0 kept are not added
    assert any("gpu:0 was measured by ranks 0 and 1" in n for n in run.notes)


def test_a_report_that_is_not_one_is_refused_and_the_run_still_stored(settings: Settings, store: SQLiteStore) -> None:
    import json

    kv = MemoryKeyValue()
    main = rank_tracker(settings, 0, kv, {"cpu": 20.0}, store)
    other = rank_tracker(settings, 1, kv, {"gpu:1": 50.0})
    main.start()
    other.start()
    time.sleep(0.3)
    other.stop()
    (key,) = [k for k in kv.data if "/report/1" in k]
    report = json.loads(kv.data[key])
    report["cpu_s"] = float("nan")
    kv.data[key] = json.dumps(report).encode()  # NaN: JSON that Python reads, a number no record may hold
    run = main.stop()
    assert store.get(run.id) == run
    assert any("rank 1's report could not be read: cpu_s is nan" in n for n in run.notes)


def test_rank_zero_leaves_nothing_behind_in_the_job_store(settings: Settings, store: SQLiteStore) -> None:
    kv = MemoryKeyValue()
    for _ in range(3):
        main = rank_tracker(settings, 0, kv, {"cpu": 20.0}, store)
        other = rank_tracker(settings, 1, kv, {"gpu:1": 50.0})
        main.start()
        other.start()
        time.sleep(0.3)
        other.stop()
        main.stop()
    left = sorted(k for k in kv.data if "/seq/" not in k)
    assert left == []  # reports, heartbeats and samples are removed once a run is stored
