"""The reduction of ranks' records into one (pure): nothing counted twice, nothing lost, every figure explained."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from wattwise.measure.rank_reduce import RankReport, reduce_run
from wattwise.measure.ranks import Topology
from wattwise.record_schema import check_run
from wattwise.records import ComponentEnergy, Run, WindowRecord

START = datetime(2026, 1, 1, tzinfo=UTC)


def run(parts: dict[str, float], *, status: str = "complete", windows: tuple[WindowRecord, ...] = ()) -> Run:
    components = tuple(
        ComponentEnergy(name, name.split(":")[0], energy, energy, "measured", "fake") for name, energy in parts.items()
    )
    total = sum(parts.values())
    return Run(
        id="20260101-000000-abcdef",
        name="job",
        status=status,  # type: ignore[arg-type]
        started_at=START,
        ended_at=None if status == "running" else START,
        duration_s=10.0,
        energy_j=total,
        machine_energy_j=total,
        co2e_g=total / 1000,
        region="DE",
        intensity_g_per_kwh=300.0,
        intensity_source="test",
        pue=1.0,
        attribution="process",
        components=components,
        windows=windows,
        host="h",
        pid=1,
    )


def report(rank: int, record: Run, *, host: str = "h", cpu_s: float = 1.0, final: bool = True) -> RankReport:
    return RankReport(rank, rank, host, 100 + rank, final, START.timestamp(), START.timestamp() + 10, cpu_s, 0, record)


def water(energy_j: float) -> tuple[float, float]:
    return energy_j * 1e-6, 0.0


def test_a_gpu_two_ranks_measured_counts_once_for_the_lower_rank() -> None:
    topology = Topology(0, 2, 0, 2, "h", "pg")
    own = run({"cpu": 100.0, "gpu:0": 500.0})
    merged = reduce_run(own, 1.0, topology, {1: report(1, run({"gpu:0": 480.0}))}, final=True, water_l=water)
    check_run(merged)
    assert [c.name for c in merged.components] == ["cpu", "gpu:0"]
    assert merged.energy_j == pytest.approx(600.0)
    assert any("gpu:0 was measured by ranks 0 and 1" in n for n in merged.notes)
    zero, one = merged.ranks
    assert zero.energy_j == pytest.approx(500.0 + 50.0) and one.energy_j == pytest.approx(50.0)  # CPU split 1:1
    assert merged.co2e_g == pytest.approx(0.6)  # rank 1's emissions for its dropped GPU are not added


def test_node_wide_energy_is_split_by_cpu_time_and_windows_add_up() -> None:
    topology = Topology(0, 2, 0, 2, "h", "pg")
    epoch = WindowRecord("epoch-1", START, 5.0, 150.0, 0.15, {"cpu": 50.0, "gpu:0": 100.0})
    other_epoch = WindowRecord("epoch-1", START, 5.0, 80.0, 0.08, {"gpu:1": 80.0})
    own = run({"cpu": 100.0, "gpu:0": 200.0}, windows=(epoch,))
    other = report(1, run({"gpu:1": 160.0}, windows=(other_epoch,)), cpu_s=3.0)
    merged = reduce_run(own, 1.0, topology, {1: other}, final=True, water_l=water)
    check_run(merged)
    assert [f.node_share_j for f in merged.ranks] == pytest.approx([25.0, 75.0])
    assert sum(f.energy_j for f in merged.ranks) == pytest.approx(merged.energy_j)
    (window,) = merged.windows
    assert window.energy_j == pytest.approx(230.0) and window.components == {"cpu": 50.0, "gpu:0": 100.0, "gpu:1": 80.0}
    assert merged.water_onsite_l == pytest.approx(460e-6)


def test_a_failed_rank_makes_the_run_incomplete_and_says_so() -> None:
    topology = Topology(0, 3, 0, 3, "h", "pg")
    merged = reduce_run(
        run({"cpu": 10.0}),
        1.0,
        topology,
        {
            1: report(1, run({"gpu:1": 5.0}, status="failed")),
            2: report(2, run({"gpu:2": 7.0}, status="running"), final=False),
        },
        final=True,
        water_l=water,
    )
    check_run(merged)
    assert [f.status for f in merged.ranks] == ["complete", "failed", "lost"]
    assert merged.status == "incomplete" and merged.error == "2 of 3 ranks did not complete (see the ranks)"
    assert merged.energy_j == pytest.approx(22.0)  # the lost rank's figures to its last report are kept


def test_a_checkpoint_marks_a_rank_known_to_be_gone_and_nothing_else() -> None:
    topology = Topology(0, 3, 0, 3, "h", "pg")
    reports = {1: report(1, run({"gpu:1": 5.0}, status="running"), final=False)}
    merged = reduce_run(
        run({"cpu": 10.0}, status="running"), 1.0, topology, reports, final=False, water_l=water, lost=frozenset({1})
    )
    assert [(f.rank, f.status) for f in merged.ranks] == [(0, "running"), (1, "lost")]  # rank 2 not yet heard of
    assert merged.status == "running" and merged.error is None


def test_the_run_spans_every_rank_and_an_early_start_is_said() -> None:
    from dataclasses import replace

    topology = Topology(0, 2, 0, 2, "h", "pg")
    later = replace(report(1, run({"gpu:1": 10.0})), started_wall=START.timestamp() + 1.0)
    longer = replace(later, run=later.run.replace(duration_s=14.0))  # ends 5 s after rank 0
    merged = reduce_run(run({"cpu": 10.0}), 1.0, topology, {1: longer}, final=True, water_l=water)
    assert merged.duration_s == pytest.approx(15.0)
    assert merged.ended_at is not None and (merged.ended_at - merged.started_at).total_seconds() == pytest.approx(15.0)
    early = replace(later, started_wall=START.timestamp() - 3.0)
    merged = reduce_run(run({"cpu": 10.0}), 1.0, topology, {1: early}, final=True, water_l=water)
    assert any("rank 1 began measuring more than 2 s before rank 0" in n for n in merged.notes)


def test_the_work_ranks_counted_adds_up() -> None:
    from wattwise.records import Work

    topology = Topology(0, 3, 0, 3, "h", "pg")
    own = run({"cpu": 100.0, "gpu:0": 300.0}).replace(work=Work(1000.0, 10.0, 400.0))
    reports = {
        1: report(1, run({"gpu:1": 300.0}).replace(work=Work(600.0, 6.0, 0.0))),
        2: report(2, run({"gpu:2": 300.0})),  # counted nothing
    }
    merged = reduce_run(own, 1.0, topology, reports, final=True, water_l=water)
    check_run(merged)
    assert merged.work == Work(1600.0, 16.0, 400.0)
    assert merged.per_work is not None and merged.per_work.j_per_output_token == merged.energy_j / 1600.0
    quiet = reduce_run(run({"cpu": 1.0}), 1.0, topology, {1: report(1, run({"gpu:1": 1.0}))}, final=True, water_l=water)
    assert quiet.work is None  # no rank counted: no work, not zero work
    only_other = reduce_run(run({"cpu": 1.0}), 1.0, topology, reports, final=True, water_l=water)
    assert only_other.work == Work(600.0, 6.0, 0.0)
