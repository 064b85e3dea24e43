"""``wattwise schedule submit --executor ray`` against a local Ray cluster that the test starts (in-process, stopped
with ray.shutdown, which ends the processes it started)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest

from tests.schedule.conftest import write_trace

ray = pytest.importorskip("ray")
pytestmark = pytest.mark.slow


def test_submit_runs_the_job_on_ray_and_records_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    home = tmp_path / "home"
    now = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
    values = np.full(24 * 43, 300.0)
    values[24 * 40] = 30.0  # this hour is the cleanest: start at once
    trace = write_trace(tmp_path / "t.csv", values, now - timedelta(days=40))
    short = Path(tempfile.mkdtemp(prefix="wwray-"))  # Ray's socket paths must stay under 107 bytes
    context = ray.init(
        num_cpus=2,
        object_store_memory=80 * 1024**2,
        include_dashboard=False,
        log_to_driver=False,
        _temp_dir=str(short),
    )
    try:
        address = context.address_info["gcs_address"]
        env = {**os.environ, "WATTWISE_HOME": str(home)}
        out = subprocess.run(
            [
                sys.executable,
                "-m",
                "wattwise",
                "schedule",
                "submit",
                "--executor",
                "ray",
                "--ray-address",
                address,
                "--deadline",
                "6h",
                "--duration",
                "10m",
                "--trace",
                str(trace),
                "--name",
                "ray-job",
                "--json",
                "--",
                "sh",
                "-c",
                "echo on-ray",
            ],
            env=env,
            capture_output=True,
            text=True,
            check=False,
            timeout=180,
        )
        assert out.returncode == 0, out.stderr
        sub = json.loads(out.stdout)
        assert sub["executor"] == "ray" and sub["job_id"].startswith("wattwise-ray-job")
        deadline = time.monotonic() + 120
        shown = None
        while time.monotonic() < deadline:
            shown = subprocess.run(
                [sys.executable, "-m", "wattwise", "runs", "show", "latest", "--json"],
                env=env,
                capture_output=True,
                text=True,
                check=False,
            )
            if shown.returncode == 0 and json.loads(shown.stdout).get("schedule"):
                break  # stored, and its schedule part added once the command ended
            time.sleep(1)
        assert shown is not None and shown.returncode == 0, shown.stderr if shown else "no run"
        run = json.loads(shown.stdout)
        assert run["name"] == "ray-job" and run["status"] == "complete"
        assert run["schedule"]["executor"] == "ray" and run["schedule"]["job_id"] == sub["job_id"]
        log = next((home / "jobs").glob("*-ray.out")).read_text()
        assert "on-ray" in log
    finally:
        ray.shutdown()
        shutil.rmtree(short, ignore_errors=True)
