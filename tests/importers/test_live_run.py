"""``wattwise run --dcgm URL --kepler URL --pod NS/NAME -- COMMAND``: the exporters read as the run starts and ends,
their figures in the stored record and in the JSON the command prints; an exporter that is down costs one warning."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from tests.importers.servers import Server, page, pages
from tests.importers.test_dcgm import metrics
from tests.importers.test_kepler import old_page
from tests.test_cli_run import show_latest, wattwise

pytestmark = pytest.mark.slow


def test_run_with_live_counters_stores_them_beside_its_figures(isolated_env: Path) -> None:
    dcgm = Server(pages(metrics(0, 0), metrics(4000.0, 6000.0)))
    kepler = Server(pages(old_page(), old_page(TD=700.0, TI=300.0)))
    with dcgm.running() as dcgm_url, kepler.running() as kepler_url:
        out = wattwise(
            isolated_env,
            "run",
            "--quiet",
            "--json",
            "--dcgm",
            f"{dcgm_url}/metrics",
            "--kepler",
            f"{kepler_url}/metrics",
            "--pod",
            "ml/train-7f9c",
            "--",
            sys.executable,
            "-c",
            "import time; time.sleep(0.3)",
        )
    assert out.returncode == 0, out.stderr
    assert "observer" not in out.stderr
    printed = json.loads(out.stdout)
    stored = show_latest(isolated_env)
    assert printed["external"] == stored["external"]
    by_source = {f["source"]: f for f in stored["external"] if f["source"] == "kepler"}
    assert by_source["kepler"]["energy_j"] == pytest.approx(1000.0)
    assert sorted(f["energy_j"] for f in stored["external"] if f["source"] == "dcgm") == [
        pytest.approx(4.0),
        pytest.approx(6.0),
    ]
    assert len(dcgm.requests) == 2 and len(kepler.requests) == 2


def test_an_exporter_that_is_down_is_one_warning_and_the_run_is_stored(isolated_env: Path) -> None:
    with Server(pages(page("dcgm-exporter.txt", E0=1, E1=2))).running() as url:
        closed = url
    out = wattwise(isolated_env, "run", "--quiet", "--dcgm", f"{closed}/metrics", "--", sys.executable, "-c", "pass")
    assert out.returncode == 0, out.stderr
    warnings = [line for line in out.stderr.splitlines() if "DcgmCounters" in line]
    assert len(warnings) == 1 and "cannot reach the DCGM exporter" in warnings[0], out.stderr
    stored = show_latest(isolated_env)
    assert stored["status"] == "complete" and stored["external"] == []


def test_bad_live_flags_fail_before_the_command_runs(isolated_env: Path, tmp_path: Path) -> None:
    marker = tmp_path / "ran"
    command = ["--", sys.executable, "-c", f"open({str(marker)!r}, 'w')"]
    for flags, message in (
        (["--dcgm", "localhost:9400"], "--dcgm must be an http:// or https:// URL"),
        (["--kepler", "http://127.0.0.1:9102/metrics"], "--kepler needs --pod"),
        (["--pod", "ml/x"], "--pod and --kepler-metric go with --kepler URL"),
    ):
        out = wattwise(isolated_env, "run", *flags, *command)
        assert out.returncode == 2 and message in out.stderr, out.stderr
    assert not marker.exists()
