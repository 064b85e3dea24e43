from __future__ import annotations

import itertools
import json
import re
from pathlib import Path

import numpy as np
import pytest

from tests.schedule.conftest import synthetic
from wattwise.cli.main import main
from wattwise.errors import ConfigError
from wattwise.schedule.batch import BatchJob, emissions, greedy, plan_batch, queue
from wattwise.schedule.jobsfile import load


def _load_ok(jobs: list[BatchJob], starts: dict[str, int], capacity: int, hours: int) -> bool:
    load_per_hour = np.zeros(hours + 1)
    for job in jobs:
        s = starts[job.name]
        assert s in job.starts()
        load_per_hour[s : s + job.span] += job.units
    return bool(load_per_hour.max() <= capacity)


def _brute(jobs: list[BatchJob], outlook: np.ndarray, capacity: int) -> float:
    best = np.inf
    for combo in itertools.product(*(job.starts() for job in jobs)):
        starts = {job.name: s for job, s in zip(jobs, combo, strict=True)}
        if _load_ok(jobs, starts, capacity, len(outlook)):
            best = min(best, emissions(jobs, starts, outlook))
    return float(best)


@pytest.mark.parametrize("seed", range(10))
def test_milp_is_optimal_and_greedy_feasible_on_small_batches(seed: int) -> None:
    rng = np.random.default_rng(seed)
    outlook = synthetic(24, seed=seed)
    jobs = [
        BatchJob(
            f"j{i}",
            float(rng.integers(1, 4)),
            float(rng.integers(6, 12)),
            float(rng.uniform(0.5, 3)),
            int(rng.integers(1, 3)),
            float(rng.integers(0, 3)),
        )
        for i in range(4)
    ]
    best = _brute(jobs, outlook, 2)
    if not np.isfinite(best):  # no plan exists: said so, naming a job
        with pytest.raises(ConfigError, match=r"job 'j\d' cannot finish by its deadline"):
            plan_batch(jobs, outlook, 2, method="milp")
        return
    plan = plan_batch(jobs, outlook, 2, method="milp")
    assert plan.method == "milp (optimal)"
    assert _load_ok(jobs, plan.starts, 2, len(outlook))
    assert plan.emissions_g == pytest.approx(best)
    assert plan.gap_to_optimum_pct is not None and plan.gap_to_optimum_pct >= -1e-9
    fast = greedy(jobs, outlook, 2)
    assert _load_ok(jobs, fast, 2, len(outlook))
    assert plan.emissions_g <= plan.queue_emissions_g + 1e-6


def test_capacity_is_respected_and_savings_reported() -> None:
    outlook = np.array([9.0] * 6 + [1.0] * 3 + [9.0] * 15)
    jobs = [BatchJob(f"j{i}", 3, 24, 1.0) for i in range(3)]
    plan = plan_batch(jobs, outlook, 2)
    # only two fit in the clean hours; the third takes the next cheapest
    assert sorted(plan.starts.values()).count(6) == 2
    assert plan.savings_pct > 0
    assert plan_batch(jobs, outlook, 3).emissions_g == pytest.approx(9.0)


def test_impossible_batches_name_the_job() -> None:
    outlook = np.ones(24)
    with pytest.raises(ConfigError, match="job 'late' cannot run: 5 h do not fit"):
        plan_batch([BatchJob("late", 5, 4, 1.0)], outlook, 1)
    with pytest.raises(ConfigError, match="job 'wide' needs 3 units and the capacity is 2"):
        plan_batch([BatchJob("wide", 1, 4, 1.0, units=3)], outlook, 2)
    jobs = [BatchJob("a", 3, 4, 1.0), BatchJob("b", 3, 5, 1.0)]
    with pytest.raises(ConfigError, match="job 'b' cannot finish by its deadline"):
        queue(jobs, outlook, 1)
    with pytest.raises(ConfigError, match="outlook covers 24 h"):
        plan_batch([BatchJob("far", 1, 48, 1.0)], outlook, 1)


def test_jobs_file_errors_are_one_line_naming_the_job(tmp_path: Path) -> None:
    def write(text: str, name: str = "jobs.yaml") -> Path:
        path = tmp_path / name
        path.write_text(text)
        return path

    ok = load(write("capacity: 2\njobs:\n  - {name: a, duration: 90m, deadline: 1d, power_w: 500}\n"))
    assert ok.capacity == 2 and ok.jobs[0].duration_h == 1.5 and ok.jobs[0].deadline_h == 24
    assert ok.jobs[0].power_kw == 0.5
    cases = {
        "capacity: 2\njobs:\n  - {name: a, deadline: 4h, power_kw: 1}\n": "job 1 (a): missing 'duration'",
        "capacity: 2\njobs:\n  - {name: a, duration: 1h, deadline: 4h}\n": "missing 'power_kw'",
        "capacity: 2\njobs:\n  - {name: a, duration: 1h, deadline: 4h, power_kw: 1, gpu: 1}\n": "unknown field 'gpu'",
        "capacity: 2\njobs:\n  - {name: a, duration: soon, deadline: 4h, power_kw: 1}\n": "duration must be a span",
        "capacity: 0\njobs:\n  - {name: a, duration: 1h, deadline: 4h, power_kw: 1}\n": "capacity",
        "capacity: 2\njobs:\n  - {name: a, duration: 1h, deadline: 4h, power_kw: -1}\n": "power_kw",
        "jobs: []\n": "missing 'capacity'",
        "capacity: 2\njobs: [\n": "not valid YAML",
    }
    for text, expected in cases.items():
        with pytest.raises(ConfigError, match=re.escape(expected)):
            load(write(text))
    with pytest.raises(ConfigError, match="not valid JSON"):
        load(write("{", "jobs.json"))


def test_batch_cli_json(capsys: pytest.CaptureFixture[str], tmp_path: Path, year_trace: Path) -> None:
    spec = {
        "capacity": 2,
        "trace": str(year_trace),
        "at": "2022-04-01T00:00Z",
        "jobs": [{"name": f"j{i}", "duration": "3h", "deadline": "30h", "power_kw": 1 + i} for i in range(4)],
    }
    path = tmp_path / "jobs.json"
    path.write_text(json.dumps(spec))
    assert main(["schedule", "batch", str(path), "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["method"] == "milp (optimal)" and len(data["jobs"]) == 4
    assert data["emissions_g"] <= data["queue_emissions_g"] and data["gap_to_optimum_pct"] >= -1e-9
    assert main(["schedule", "batch", str(path), "--method", "greedy"]) == 0
    assert "greedy, capacity 2" in capsys.readouterr().out
    assert main(["schedule", "batch", str(path), "--capacity", "0"]) == 2
    assert "capacity" in capsys.readouterr().err


def test_without_scipy_the_greedy_plans_and_says_so(monkeypatch: pytest.MonkeyPatch) -> None:
    import wattwise.schedule.batch as batch

    monkeypatch.setattr(batch, "_has_scipy", lambda: False)
    jobs = [BatchJob(f"j{i}", 2, 12, 1.0) for i in range(3)]
    plan = plan_batch(jobs, synthetic(24), 2)
    assert plan.method == "greedy" and any("scipy is not installed" in n for n in plan.notes)
    with pytest.raises(ConfigError, match="--method milp needs scipy"):
        plan_batch(jobs, synthetic(24), 2, method="milp")
