"""``benchmarks/serving_sweep.py`` runs end to end at tiny sizes (the real sweep is a script, not a test)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow
pytest.importorskip("torch")

SCRIPT = Path(__file__).resolve().parent.parent / "benchmarks" / "serving_sweep.py"


def test_the_sweep_prints_energy_per_output_token_for_each_batch(isolated_env: Path, tmp_path: Path) -> None:
    env = {**os.environ, "WATTWISE_RAPL_ROOT": str(tmp_path / "no-powercap"), "WATTWISE_GPU": "0"}
    db = tmp_path / "sweep.db"
    argv = ["--batches", "1,2", "--tokens", "4", "--prompt-tokens", "4", "--layers", "1", "--d-model", "64"]
    argv += ["--heads", "4", "--vocab", "256", "--min-seconds", "0.2", "--threads", "1", "--db", str(db)]
    out = subprocess.run(
        [sys.executable, str(SCRIPT), *argv], env=env, capture_output=True, text=True, timeout=120, check=False
    )
    assert out.returncode == 0, out.stderr
    rows = re.findall(r"^\s+(\d+)\s+(\S+ [µm]?J)\s+(estimated|measured|mixed)\s+([\d,]+)\s", out.stdout, re.MULTILINE)
    assert [int(batch) for batch, *_ in rows] == [1, 2], out.stdout
    assert all(label == "estimated" for *_, label, _ in rows)  # no RAPL here: the CPU is modelled, and said so
    assert "cpu is modelled, not measured" in out.stdout
    assert re.search(r"^estimator: ", out.stdout, re.MULTILINE)
    from wattwise.store import open_store

    with open_store(str(db)) as store:
        runs = store.list_runs()
    assert sorted(run.name for run in runs) == ["serving-sweep batch 1", "serving-sweep batch 2"]
    for run in runs:
        batch = int(run.name.rsplit(" ", 1)[1])
        assert (
            run.work is not None and run.work.requests % batch == 0 and run.work.output_tokens == 4 * run.work.requests
        )
        assert run.per_work is not None and run.per_work.j_per_output_token == run.energy_j / run.work.output_tokens
