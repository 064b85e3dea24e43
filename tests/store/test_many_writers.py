"""Eight processes measuring into one store at once (SQLite and PostgreSQL), checkpointing fast: nothing is lost,
nothing is locked."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from wattwise.store import open_store

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
WRITER = """
import json, sys, time, warnings
sys.path.insert(0, sys.argv[1])
from tests.fakes.power import ConstantPowerSource, FakeHost
from wattwise.config import Settings
from wattwise.measure.tracker import Tracker
warnings.simplefilter("always")
settings = Settings.load({"gpu": False, "interval_s": 0.01, "flush_s": 0.02, "rapl_root": "/nonexistent"})
sources = [ConstantPowerSource({"gpu:0": 100.0, "cpu": 20.0, "memory": 3.0})]
with warnings.catch_warnings(record=True) as caught:
    with Tracker(f"writer-{sys.argv[2]}", settings=settings, sources=sources, host=FakeHost()) as t:
        time.sleep(float(sys.argv[3]))
report = {"id": t.result.id, "samples": t.samples_stored, "taken": t.samples_taken}
print(json.dumps({**report, "warnings": [str(w.message) for w in caught]}))
"""


def test_eight_concurrent_writers_lose_nothing(isolated_env: Path, engine: str, store_url: str) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("WATTWISE_")}
    env["WATTWISE_HOME"] = str(isolated_env)
    url = f"sqlite:///{isolated_env / 'wattwise.db'}"
    if engine == "postgresql":
        env["WATTWISE_DB"] = url = store_url
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", WRITER, str(ROOT), str(i), "2.0"],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for i in range(8)
    ]
    outcomes = [(proc, *proc.communicate(timeout=120)) for proc in procs]  # every pipe read and closed first
    reports = []
    for proc, out, err in outcomes:
        assert proc.returncode == 0, err
        assert "locked" not in err and "Traceback" not in err and "checkpoint" not in err, err
        reports.append(json.loads(out))
    assert all(not r["warnings"] for r in reports), [r["warnings"] for r in reports]
    with open_store(url, read_only=True) as store:
        runs = {run.id: run for run in store.list_runs(limit=None)}
        assert len(runs) == 8 and all(run.status == "complete" for run in runs.values())
        for report in reports:
            stored = sum(1 for _ in store.iter_samples(report["id"]))
            assert stored == report["samples"] == report["taken"] > 100  # every sample produced arrived


def test_eight_cli_runs_create_and_fill_a_new_store_at_once(isolated_env: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("WATTWISE_")}
    env.update(WATTWISE_HOME=str(isolated_env), WATTWISE_GPU="0", WATTWISE_INTERVAL_S="0.02", WATTWISE_FLUSH_S="0.05")
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "wattwise", "run", "--quiet", "--name", f"cli-{i}", "--", "sleep", "0.5"],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for i in range(8)
    ]
    outcomes = [(proc, proc.communicate(timeout=120)[1]) for proc in procs]  # every pipe read and closed first
    for proc, err in outcomes:
        assert proc.returncode == 0 and "locked" not in err and "error" not in err, err
    with open_store(f"sqlite:///{isolated_env / 'wattwise.db'}", read_only=True) as store:
        runs = store.list_runs(limit=None)
    assert sorted(r.name for r in runs) == [f"cli-{i}" for i in range(8)]
    assert all(r.status == "complete" for r in runs)
