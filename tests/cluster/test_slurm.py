"""``wattwise schedule submit --executor slurm`` against a real single-node Slurm started by the test."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest

from tests.cluster.slurmctl import missing, slurm
from tests.schedule.conftest import write_trace

pytestmark = [pytest.mark.slow, pytest.mark.skipif(missing() is not None, reason=missing() or "")]


def _trace(path: Path, cheap_in_h: int | None) -> Path:
    now = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
    values = np.full(24 * 43, 300.0)
    if cheap_in_h is not None:
        values[24 * 40 + cheap_in_h] = 30.0
    return write_trace(path, values, now - timedelta(days=40))


def _wattwise(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "wattwise", *args], env=env, capture_output=True, text=True, check=False, timeout=120
    )


def test_submit_runs_the_job_in_slurm_and_records_it(tmp_path: Path) -> None:
    with slurm(tmp_path / "slurm") as cluster:
        env = {**cluster, "WATTWISE_HOME": str(tmp_path / "home")}
        trace = _trace(tmp_path / "t.csv", 0)
        out = _wattwise(
            env,
            "schedule",
            "submit",
            "--executor",
            "slurm",
            "--deadline",
            "6h",
            "--duration",
            "10m",
            "--trace",
            str(trace),
            "--name",
            "slurm-job",
            "--json",
            "--",
            "sh",
            "-c",
            "echo ran; sleep 1",
        )
        assert out.returncode == 0, out.stderr
        sub = json.loads(out.stdout)
        assert sub["executor"] == "slurm" and sub["job_id"].isdigit()
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            queue = subprocess.run(
                ["squeue", "-h", "-j", sub["job_id"], "-o", "%T"], env=env, capture_output=True, text=True, check=False
            )
            if not queue.stdout.strip():
                break
            time.sleep(1)
        shown = _wattwise(env, "runs", "show", "latest", "--json")
        assert shown.returncode == 0, shown.stderr
        run = json.loads(shown.stdout)
        assert run["name"] == "slurm-job" and run["status"] == "complete"
        assert run["schedule"]["executor"] == "slurm" and run["schedule"]["job_id"] == sub["job_id"]
        assert run["schedule"]["avoided_co2e_g"] is not None
        log = next((tmp_path / "home" / "jobs").glob("*.out")).read_text()
        assert "ran" in log


def test_a_later_start_is_held_by_slurm(tmp_path: Path) -> None:
    with slurm(tmp_path / "slurm") as cluster:
        env = {**cluster, "WATTWISE_HOME": str(tmp_path / "home")}
        trace = _trace(tmp_path / "t.csv", 3)  # the cleanest hour is 3 hours away
        out = _wattwise(
            env,
            "schedule",
            "submit",
            "--executor",
            "slurm",
            "--deadline",
            "8h",
            "--duration",
            "1h",
            "--trace",
            str(trace),
            "--json",
            "--",
            "true",
        )
        assert out.returncode == 0, out.stderr
        sub = json.loads(out.stdout)
        begin = datetime.fromisoformat(sub["begin_at"])
        assert begin - datetime.now(UTC) > timedelta(hours=2)
        queue = subprocess.run(
            ["squeue", "-h", "-j", sub["job_id"], "-o", "%T %r %S"], env=env, capture_output=True, text=True, check=True
        )
        state, reason, _start = queue.stdout.split()
        assert state == "PENDING" and reason == "BeginTime"
        subprocess.run(["scancel", sub["job_id"]], env=env, check=True)
