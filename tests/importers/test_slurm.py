"""Slurm's ConsumedEnergy through a stand-in ``sacct`` on PATH that replays recorded outputs."""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path
from string import Template

import pytest

from tests.importers.runs import T0, gpu_run
from tests.importers.servers import DATA
from wattwise.errors import ConfigError, CounterError
from wattwise.importers import counterpart, sacct_job, slurm_figure
from wattwise.importers.slurm import FIELDS, expand_nodes
from wattwise.records import ExternalFigure

FAKE_SACCT = """#!{python}
import pathlib, sys, time
here = pathlib.Path(__file__).parent
args = sys.argv[1:]
assert args[0] == "-j" and args[2:] == ["--noheader", "--parsable2", "--format={fields}"], args
job = args[1]
(here / "calls").open("a").write(job + "\\n")
if (here / "sleep").exists():
    time.sleep(float((here / "sleep").read_text()))
if (here / "fail").exists():
    sys.stderr.write((here / "fail").read_text())
    sys.exit(1)
recorded = here / f"{{job}}.txt"
if recorded.exists():
    sys.stdout.write(recorded.read_text())
"""


def local(moment: datetime) -> str:
    """A time as sacct prints it: local time of the machine running it, to the second, no zone."""
    return moment.astimezone().replace(tzinfo=None).isoformat(timespec="seconds")


@pytest.fixture
def sacct_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A directory on PATH holding the stand-in sacct (and nothing else of Slurm)."""
    folder = tmp_path / "slurm-bin"
    folder.mkdir()
    script = folder / "sacct"
    script.write_text(FAKE_SACCT.format(python=sys.executable, fields=",".join(FIELDS)))
    script.chmod(0o755)
    monkeypatch.setenv("PATH", f"{folder}{os.pathsep}{os.environ.get('PATH', '')}")
    return folder


def record(folder: Path, job: str, name: str, start: datetime, end: datetime) -> None:
    text = Template((DATA / name).read_text()).substitute(START=local(start), END=local(end))
    (folder / f"{job}.txt").write_text(text)


def test_the_jobs_own_line_is_the_figure(sacct_dir: Path) -> None:
    run = gpu_run()
    record(sacct_dir, "4242", "sacct-energy.txt", T0 - timedelta(seconds=30), T0 + timedelta(seconds=400))
    job = sacct_job("4242")
    assert job.name == "train-llm" and job.state == "COMPLETED" and job.nodes == "gpu-node-07"
    line = (DATA / "sacct-energy.txt").read_text().splitlines()[0]
    assert job.energy_j == float(line.split("|")[4])  # the allocation's figure, not a step's
    assert job.started_at == T0 - timedelta(seconds=30)
    figure = slurm_figure(job, run)
    assert figure.source == "slurm" and figure.scope == "job 4242 on gpu-node-07"
    assert figure.energy_j == job.energy_j and "ConsumedEnergyRaw" in figure.detail
    side = counterpart(run, figure)
    assert side.energy_j == run.machine_energy_j  # one node: Slurm's plugin counts it whole


@pytest.mark.parametrize("name", ["sacct-no-energy.txt", "sacct-no-value.txt"])
def test_no_energy_accounting_is_said_and_never_stored_as_zero(sacct_dir: Path, name: str) -> None:
    job_id = (DATA / name).read_text().split("|", 1)[0]
    record(sacct_dir, job_id, name, T0 - timedelta(seconds=30), T0 + timedelta(seconds=400))
    job = sacct_job(job_id)
    assert job.energy_j is None
    with pytest.raises(CounterError, match=r"recorded no energy .*no energy accounting \(AcctGatherEnergyType"):
        slurm_figure(job, gpu_run())


def test_a_running_job_is_refused(sacct_dir: Path) -> None:
    record(sacct_dir, "4245", "sacct-running.txt", T0, T0)
    with pytest.raises(CounterError, match=r"job 4245 is RUNNING: .* final only once it has ended"):
        slurm_figure(sacct_job("4245"), gpu_run())


def test_a_job_name_with_a_pipe_is_read(sacct_dir: Path) -> None:
    run = gpu_run()
    record(sacct_dir, "4246", "sacct-pipe-name.txt", T0 - timedelta(seconds=1), T0 + timedelta(seconds=301))
    job = sacct_job("4246")
    assert job.name == "sweep|lr=3e-4" and job.state == "TIMEOUT" and job.nodes == "gpu-node-[07-08]"
    figure = slurm_figure(job, run)
    assert counterpart(run, figure).energy_j is None  # two nodes: wattwise measured one


def test_a_run_outside_the_job_is_refused(sacct_dir: Path) -> None:
    record(sacct_dir, "4242", "sacct-energy.txt", T0 + timedelta(hours=2), T0 + timedelta(hours=3))
    with pytest.raises(CounterError, match="is not within Slurm job 4242"):
        slurm_figure(sacct_job("4242"), gpu_run())


def test_an_unknown_job_is_one_line(sacct_dir: Path) -> None:
    with pytest.raises(ConfigError, match=r"sacct knows no job 999: check the id"):
        sacct_job("999")


def test_a_failing_sacct_is_one_line(sacct_dir: Path) -> None:
    (sacct_dir / "fail").write_text("sacct: error: slurmdbd: Connection refused\nsacct: error: more detail\n")
    expected = r"sacct failed \(exit code 1\): sacct: error: slurmdbd: Connection refused;"
    with pytest.raises(CounterError, match=expected):
        sacct_job("4242")


def test_disabled_accounting_storage_says_there_is_no_energy_accounting(sacct_dir: Path) -> None:
    (sacct_dir / "fail").write_text("Slurm accounting storage is disabled\n")
    with pytest.raises(CounterError, match="Slurm has no energy accounting here: its accounting storage is disabled"):
        sacct_job("4242")


def test_a_hanging_sacct_is_cut_off(sacct_dir: Path) -> None:
    (sacct_dir / "sleep").write_text("30")
    with pytest.raises(CounterError, match=r"sacct did not answer within 0\.5 s"):
        sacct_job("4242", timeout_s=0.5)


def test_a_missing_sacct_is_one_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    with pytest.raises(ConfigError, match="sacct is not on PATH"):
        sacct_job("4242")


@pytest.mark.parametrize("job_id", ["", "abc", "4242.batch", "12;rm -rf /", "-j", "1" * 11, "42_", "٤٢"])
def test_a_bad_job_id_never_reaches_sacct(sacct_dir: Path, job_id: str) -> None:
    with pytest.raises(ConfigError, match="must be a Slurm job id"):
        sacct_job(job_id)
    assert not (sacct_dir / "calls").exists()


@pytest.mark.parametrize("job_id", ["4242", "4242_7", "4242+0"])
def test_array_and_heterogeneous_ids_are_asked_as_given(sacct_dir: Path, job_id: str) -> None:
    with pytest.raises(ConfigError, match="knows no job"):
        sacct_job(job_id)
    assert (sacct_dir / "calls").read_text().split() == [job_id]


@pytest.fixture
def india_time(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """The process's local time zone is UTC+05:30 (sacct prints local times), restored afterwards."""
    monkeypatch.setenv("TZ", "IST-5:30")
    time.tzset()
    yield
    monkeypatch.undo()
    time.tzset()


def test_sacct_local_times_are_read_in_the_local_zone(sacct_dir: Path, india_time: None) -> None:
    start = T0 - timedelta(seconds=30)
    record(sacct_dir, "4242", "sacct-energy.txt", start, T0 + timedelta(seconds=400))
    assert "$START" not in (sacct_dir / "4242.txt").read_text()
    assert local(start).startswith("2025-03-01T17:29:37")  # 11:59:37 UTC on a clock at UTC+05:30
    job = sacct_job("4242")
    assert job.started_at == start
    assert slurm_figure(job, gpu_run()).started_at == start


def line(job: str, *, start: str, end: str, energy: str = "1843211", nodes: str = "gpu-node-07") -> str:
    return f"{job}|train|{start}|{end}|{energy}|{nodes}|COMPLETED\n"


def around(run_seconds: float = 300.0) -> tuple[str, str]:
    """sacct's Start and End of a job that holds the test run."""
    return local(T0 - timedelta(seconds=30)), local(T0 + timedelta(seconds=run_seconds + 100))


@pytest.mark.parametrize("start", ["Unknown", "None"])
def test_a_job_without_a_start_time_is_refused(sacct_dir: Path, start: str) -> None:
    (sacct_dir / "4250.txt").write_text(line("4250", start=start, end=around()[1]))
    with pytest.raises(CounterError, match=r"no start time for Slurm job 4250 \(Start is Unknown or None\)"):
        slurm_figure(sacct_job("4250"), gpu_run())


def test_a_job_on_other_nodes_than_the_runs_host_is_refused(sacct_dir: Path) -> None:
    start, end = around()
    (sacct_dir / "4251.txt").write_text(line("4251", start=start, end=end, nodes="gpu-node-[01-06,08]"))
    with pytest.raises(CounterError, match=r"measured on gpu-node-07, which is not among Slurm job 4251's nodes"):
        slurm_figure(sacct_job("4251"), gpu_run())
    (sacct_dir / "4252.txt").write_text(line("4252", start=start, end=end, nodes="gpu-node-[05-07]"))
    assert slurm_figure(sacct_job("4252"), gpu_run()).energy_j == 1843211.0  # among them: attached


def test_a_single_other_node_is_not_compared_with_the_runs_host() -> None:
    figure = ExternalFigure("slurm", "job 4242 on gpu-node-09", 1_000_000.0)
    side = counterpart(gpu_run(), figure)
    assert side.energy_j is None and "gpu-node-09" in side.note and "gpu-node-07" in side.note


@pytest.mark.parametrize(("nodes", "names"), [("n[1-2]", ["n1", "n2"]), ("a[08-10],b", ["a08", "a09", "a10", "b"])])
def test_slurm_host_lists_expand(nodes: str, names: list[str]) -> None:
    assert expand_nodes(nodes) == names


def test_an_energy_with_a_unit_prefix_is_read_in_powers_of_1000(sacct_dir: Path) -> None:
    start, end = around()
    (sacct_dir / "4253.txt").write_text(line("4253", start=start, end=end, energy="3.60M"))
    figure = slurm_figure(sacct_job("4253"), gpu_run())
    assert figure.energy_j == pytest.approx(3.6e6) and "sacct printed 3.60M: rounded" in figure.detail


def test_an_energy_that_is_no_number_is_said_to_be_so(sacct_dir: Path) -> None:
    start, end = around()
    (sacct_dir / "4254.txt").write_text(line("4254", start=start, end=end, energy="n/a"))
    with pytest.raises(CounterError, match=r"ConsumedEnergyRaw of job 4254 is 'n/a', not a number of joules"):
        slurm_figure(sacct_job("4254"), gpu_run())


def test_an_array_job_asks_for_one_of_its_tasks(sacct_dir: Path) -> None:
    start, end = around()
    tasks = [line(f"123_{i}", start=start, end=end) + line(f"123_{i}.batch", start=start, end=end) for i in (1, 2)]
    (sacct_dir / "123.txt").write_text("".join(tasks))
    with pytest.raises(
        ConfigError, match=r"job 123 is an array job .* its tasks, .*--slurm 123_1; sacct lists 123_1, 123_2\)"
    ):
        sacct_job("123")
