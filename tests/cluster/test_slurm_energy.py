"""``wattwise runs attach --slurm`` against the real sacct of the single-node Slurm the test starts, which (like
many clusters) keeps no energy accounting: the one line says so, and the stored run is not changed."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.cluster.slurmctl import missing, slurm
from tests.importers.runs import gpu_run, store_run, unchanged
from wattwise.errors import CounterError
from wattwise.importers import sacct_job

pytestmark = [pytest.mark.slow, pytest.mark.skipif(missing() is not None, reason=missing() or "")]


def test_real_sacct_without_energy_accounting_is_one_clear_line(tmp_path: Path) -> None:
    with slurm(tmp_path / "slurm") as cluster:
        submitted = subprocess.run(
            ["sbatch", "--parsable", "--wrap", "true", "-o", str(tmp_path / "job.out")],
            env=cluster,
            capture_output=True,
            text=True,
            check=True,
            timeout=60,
        )
        job_id = submitted.stdout.strip().split(";")[0]
        with pytest.raises(CounterError, match="no energy accounting"):
            sacct_job(job_id, env=cluster)

        db = tmp_path / "home" / "wattwise.db"
        stored, kept = store_run(db, gpu_run())
        env = {**cluster, "WATTWISE_HOME": str(tmp_path / "home")}
        out = subprocess.run(
            [sys.executable, "-m", "wattwise", "runs", "attach", stored.id, "--slurm", job_id],
            env=env,
            capture_output=True,
            text=True,
            check=False,
            timeout=120,
        )
    assert out.returncode == 1, out.stderr
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("wattwise: error: Slurm has no energy accounting here"), lines
    assert unchanged(db, stored, kept)
