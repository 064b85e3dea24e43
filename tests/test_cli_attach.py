"""``wattwise runs attach`` and what ``runs show`` then shows, in-process through ``main()``; every bad input is one
line and leaves the stored run exactly as it was."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pytest

from tests.importers.runs import GPU0, GPU1, gpu_run, store_run, unchanged
from tests.importers.servers import Server, pages
from tests.importers.test_dcgm import prometheus
from tests.importers.test_slurm import FAKE_SACCT, record
from wattwise.cli.main import main
from wattwise.importers.slurm import FIELDS
from wattwise.records import Run, Sample
from wattwise.store import SQLiteStore

DATA_T0 = gpu_run().started_at


@pytest.fixture
def stored(tmp_path: Path) -> tuple[Path, Run, list[Sample]]:
    path = tmp_path / "runs.db"
    run, kept = store_run(path, gpu_run(uuids=(GPU0, GPU1)))
    return path, run, kept


@pytest.fixture
def sacct(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    folder = tmp_path / "bin"
    folder.mkdir()
    (folder / "sacct").write_text(FAKE_SACCT.format(python=sys.executable, fields=",".join(FIELDS)))
    (folder / "sacct").chmod(0o755)
    monkeypatch.setenv("PATH", f"{folder}{os.pathsep}{os.environ.get('PATH', '')}")
    return folder


def attach(path: Path, *args: str) -> int:
    return main(["runs", "attach", *args, "--db", str(path)])


def test_dcgm_from_prometheus_is_attached_and_shown(
    stored: tuple[Path, Run, list[Sample]], capsys: pytest.CaptureFixture[str]
) -> None:
    path, run, kept = stored
    with Server(prometheus().answer).running() as url:
        assert attach(path, run.id[:10], "--dcgm-prometheus", url) == 0
    out, err = capsys.readouterr()
    assert f"dcgm gpu 0 {GPU0}:" in out and "wattwise gpu:0 (whole GPU)" in out
    assert err.strip() == f"attached 2 figure(s) to run {run.id}"
    with SQLiteStore(path, read_only=True) as store:
        after = store.get(run.id)
    assert [f.scope for f in after.external] == [f"gpu 0 {GPU0}", f"gpu 1 {GPU1}"]
    assert after.replace(external=()) == run and unchanged(path, after, kept)

    assert main(["runs", "show", run.id, "--db", str(path)]) == 0
    shown = capsys.readouterr().out
    assert "cluster counter" in shown and f"dcgm gpu 1 {GPU1}" in shown and "never added to them" in shown
    assert "dcgm all 2 figures" in shown  # the source's subtotal beside wattwise's GPUs together
    assert main(["runs", "show", run.id, "--json", "--db", str(path)]) == 0
    data = json.loads(capsys.readouterr().out)
    assert [f["scope"] for f in data["external"]] == [f.scope for f in after.external]
    assert data["energy_j"] == run.energy_j

    with Server(prometheus().answer).running() as url:  # attaching again refreshes, never doubles
        assert attach(path, run.id, "--dcgm-prometheus", url, "--json") == 0
    rows = json.loads(capsys.readouterr().out)
    assert [r["wattwise"]["label"] for r in rows] == ["gpu:0 (whole GPU)", "gpu:1 (whole GPU)"]
    with SQLiteStore(path, read_only=True) as store:
        assert len(store.get(run.id).external) == 2


def test_slurm_and_dcgm_figures_live_side_by_side(
    stored: tuple[Path, Run, list[Sample]], sacct: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path, run, _ = stored
    assert run.ended_at is not None
    record(sacct, "4242", "sacct-energy.txt", run.started_at, run.ended_at)
    assert attach(path, "latest", "--slurm", "4242") == 0
    with Server(prometheus().answer).running() as url:
        assert attach(path, "latest", "--dcgm-prometheus", url, "--gpu", GPU1) == 0
    with SQLiteStore(path, read_only=True) as store:
        after = store.get(run.id)
    assert [(f.source, f.scope) for f in after.external] == [
        ("slurm", "job 4242 on gpu-node-07"),
        ("dcgm", f"gpu 1 {GPU1}"),
    ]
    capsys.readouterr()


def test_attached_figures_can_be_removed_again(
    stored: tuple[Path, Run, list[Sample]], sacct: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path, run, kept = stored
    assert run.ended_at is not None
    record(sacct, "4242", "sacct-energy.txt", run.started_at, run.ended_at)
    assert attach(path, run.id, "--slurm", "4242") == 0
    with Server(prometheus().answer).running() as url:
        assert attach(path, run.id, "--dcgm-prometheus", url) == 0
    capsys.readouterr()
    assert attach(path, run.id, "--remove", f"dcgm:gpu 1 {GPU1}") == 0
    out, err = capsys.readouterr()
    assert out.strip() == f"removed dcgm gpu 1 {GPU1}" and err.strip() == f"removed 1 figure(s) from run {run.id}"
    with SQLiteStore(path, read_only=True) as store:
        assert [f.scope for f in store.get(run.id).external] == ["job 4242 on gpu-node-07", f"gpu 0 {GPU0}"]
    assert attach(path, run.id, "--remove", "slurm", "--json") == 0
    assert [f["scope"] for f in json.loads(capsys.readouterr().out)] == ["job 4242 on gpu-node-07"]
    assert attach(path, run.id, "--remove", "kepler") == 2  # nothing of that source: one line, nothing changed
    err = capsys.readouterr().err.strip()
    assert err.startswith("wattwise: error: ") and "has no cluster figure kepler to remove (it has: dcgm:gpu 0" in err
    assert attach(path, run.id, "--remove", "dcgm") == 0
    capsys.readouterr()
    assert unchanged(path, run, kept)  # the record exactly as it was before anything was attached


def closed_url() -> str:
    with Server(pages("")).running() as url:
        return url


BAD = [
    (["--slurm", "abc"], 2, "--slurm must be a Slurm job id"),
    (["--slurm", "999"], 2, "sacct knows no job 999"),
    (["--slurm", "4243"], 1, "Slurm recorded no energy for job 4243"),
    (["--dcgm-prometheus", "ftp://prom:9090"], 2, "--dcgm-prometheus must be an http:// or https:// URL"),
    (["--dcgm-prometheus", "PROM", "--gpu", "first"], 2, "--gpu must be a GPU index"),
    (["--kepler-prometheus", "PROM"], 2, "--kepler-prometheus needs --pod"),
    (["--slurm", "4242", "--pod", "ml/x"], 2, "--pod and --metric go with --kepler-prometheus"),
    (["--kepler-prometheus", "PROM", "--pod", "ml/x", "--metric", "1bad"], 2, "--metric must be a Prometheus metric"),
    (["--dcgm-prometheus", "DOWN"], 1, "cannot reach Prometheus at"),
    (["--dcgm-prometheus", "PROM/nothing-here"], 1, "answered 404"),
    (["--dcgm-prometheus", "GARBAGE"], 1, "answered something that is not JSON"),
    (["--dcgm-prometheus", "RESET"], 1, "was reset 1 time(s) during the run"),
    (["--kepler-prometheus", "PROM", "--pod", "ml/absent"], 1, "no sample of kepler_container_joules_total"),
    (["--dcgm-prometheus", "PROM", "--timeout", "0"], 2, "--timeout must be above 0"),
    (["--remove", "dcgm:"], 2, "--remove takes SOURCE or SOURCE:SCOPE"),
    (["--remove", "slurm"], 2, "has no cluster figure slurm to remove (it has: none)"),
]


@pytest.mark.parametrize(("args", "code", "message"), BAD)
def test_bad_input_is_one_line_and_the_run_is_unchanged(
    stored: tuple[Path, Run, list[Sample]],
    sacct: Path,
    capsys: pytest.CaptureFixture[str],
    args: list[str],
    code: int,
    message: str,
) -> None:
    path, run, kept = stored
    assert run.ended_at is not None
    record(sacct, "4243", "sacct-no-energy.txt", run.started_at, run.ended_at)
    garbage = Server(lambda p, q: (200, "text/html", b"<html>Grafana</html>"))
    down = closed_url()
    with (
        Server(prometheus().answer).running() as prom,
        Server(prometheus(100.0).answer).running() as reset,
        garbage.running() as junk,
    ):
        urls = {"PROM": prom, "RESET": reset, "GARBAGE": junk, "DOWN": down}
        filled = [next((a.replace(k, v) for k, v in urls.items() if a.startswith(k)), a) for a in args]
        assert attach(path, run.id, *filled) == code
    out, err = capsys.readouterr()
    lines = err.strip().splitlines()
    assert out == "" and len(lines) == 1 and lines[0].startswith("wattwise: error: "), lines
    assert message in lines[0]
    assert unchanged(path, run, kept)


def test_a_running_run_is_refused_before_any_counter_is_read(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "runs.db"
    run, kept = store_run(path, gpu_run().replace(status="running", ended_at=None, host="", pid=0))
    server = Server(prometheus().answer)
    with server.running() as url:
        assert attach(path, run.id, "--dcgm-prometheus", url) == 2
    assert "is still being measured" in capsys.readouterr().err
    assert server.requests == [] and unchanged(path, run, kept)


def test_an_unknown_run_and_an_in_memory_store_are_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["runs", "attach", "nope-nope", "--slurm", "1", "--db", ":memory:"]) == 2
    assert "in memory" in capsys.readouterr().err
