"""The real NVML path (nvidia-ml-py and wattwise's backend) against a stand-in libnvidia-ml.so.1 of two GPUs.

The stand-in (tests/fakes/libnvml/standin_nvml.c) is compiled here as a current driver, as one older than R510
(no ``_v3`` process calls, no nvmlInitWithFlags, no instantaneous power field) and as one older than R470 (only
the first process-list version), and loaded by pynvml through LD_LIBRARY_PATH in place of the driver. GPU 0 has
an energy counter stepping every 100 ms and logs every value it returns; GPU 1 reports neither power nor energy.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.test_cli_run import cli_env, show_latest, wattwise

SOURCE = Path(__file__).parent.parent / "fakes" / "libnvml" / "standin_nvml.c"
COMPILER = shutil.which("cc") or shutil.which("gcc")

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the stand-in is a Linux shared library"),
    pytest.mark.skipif(COMPILER is None, reason="no C compiler to build the stand-in NVML library"),
]


DRIVERS = {"550": [], "470": ["-DOLD_DRIVER"], "450": ["-DOLD_DRIVER", "-DR450"]}


def build(tmp_path_factory: pytest.TempPathFactory, driver: str) -> Path:
    """A folder holding libnvidia-ml.so.1 built as the given driver generation."""
    folder = tmp_path_factory.mktemp(f"nvml-{driver}")
    assert COMPILER is not None
    subprocess.run(
        [COMPILER, "-shared", "-fPIC", "-O1", *DRIVERS[driver], "-o", str(folder / "libnvidia-ml.so.1"), str(SOURCE)],
        check=True,
        capture_output=True,
    )
    return folder


@pytest.fixture(scope="module", params=sorted(DRIVERS))
def standin(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build(tmp_path_factory, request.param)


@pytest.fixture(scope="module")
def current_standin(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build(tmp_path_factory, "550")


def counter_log(path: Path) -> list[int]:
    return [int(line) for line in path.read_text().split()]


def test_run_keeps_exit_code_and_records_the_counter_delta_exactly(
    standin: Path, isolated_env: Path, tmp_path: Path
) -> None:
    log = tmp_path / "counter.log"
    env = {
        "LD_LIBRARY_PATH": str(standin),
        "STANDIN_NVML_LOG": str(log),
        "STANDIN_NVML_GARBAGE_PID": "1",  # GPU 0 also lists pid 4294967295
        "WATTWISE_GPU": "1",
    }
    out = wattwise(isolated_env, "run", "--quiet", "--", "sh", "-c", "sleep 1; exit 3", **env)
    assert out.returncode == 3, out.stderr
    assert "Traceback" not in out.stderr
    run = show_latest(isolated_env)
    gpus = {c["name"]: c for c in run["components"] if c["component"] == "gpu"}
    assert set(gpus) == {"gpu:0"}, run["components"]  # the GeForce is never a measured zero
    gpu0 = gpus["gpu:0"]
    assert gpu0["source"] == "measured" and gpu0["method"] == "nvml-energy-counter"
    values = counter_log(log)
    # values[0] is read when the GPU is probed at open; the run spans the first to the last reading after it
    assert gpu0["energy_j"] == pytest.approx((values[-1] - values[1]) / 1000.0, abs=1e-9)
    assert gpu0["energy_j"] >= 0.9 * 300.0  # a 300 W counter over at least one second
    notes = " ".join(run["notes"])
    assert "gpu:1" in notes and "not measured" in notes
    assert "NVML listed 1 implausible process id(s) (4294967295; a driver bug)" in notes


def test_doctor_lists_each_gpu_and_what_it_can_measure(standin: Path, isolated_env: Path) -> None:
    out = wattwise(isolated_env, "doctor", LD_LIBRARY_PATH=str(standin), WATTWISE_GPU="1")
    assert out.returncode == 0, out.stderr
    text = out.stdout
    assert "NVIDIA H100 80GB HBM3" in text and "NVIDIA GeForce RTX 2080" in text
    assert "energy counter" in text and "nothing: neither energy nor power" in text
    assert any(f"driver {v}" in text for v in ("450.248.02", "470.199.02", "550.54.15"))
    assert "process list: yes" in text and "MIG off" in text


def test_doctor_json_carries_per_gpu_details(standin: Path, isolated_env: Path) -> None:
    out = wattwise(isolated_env, "doctor", "--json", LD_LIBRARY_PATH=str(standin), WATTWISE_GPU="1")
    assert out.returncode == 0, out.stderr
    nvml = next(s for s in json.loads(out.stdout)["sources"] if s["source"] == "nvml")
    details = nvml["details"]
    assert details["bindings"].startswith("nvidia-ml-py ")
    by_index = {g["index"]: g for g in details["gpus"]}
    assert by_index[1]["measures"].startswith("nothing")
    old = not details["driver"].startswith("550.")
    assert by_index[0]["measures"] == ("energy counter" if old else "energy counter + instantaneous power")
    assert [c["name"] for c in nvml["channels"]] == ["gpu:0"]


def unshare_works() -> bool:
    unshare = shutil.which("unshare")
    if unshare is None:
        return False
    probe = subprocess.run([unshare, "--pid", "--fork", "true"], capture_output=True, check=False)
    return probe.returncode == 0


@pytest.mark.skipif(not unshare_works(), reason="needs unshare --pid (root or user namespaces)")
@pytest.mark.parametrize(
    ("how", "charged_note"),
    [
        ([], None),  # /proc is the outer namespace's: the tree is read in its numbering, which NVML's pids match
        (["--mount-proc"], "in a container with its own /proc"),  # Docker-like: pids cannot be matched
    ],
    ids=["outer-proc", "own-proc"],
)
def test_in_a_pid_namespace_the_gpu_is_charged_and_the_record_says_how(
    current_standin: Path, isolated_env: Path, how: list[str], charged_note: str | None
) -> None:
    command = [sys.executable, "-m", "wattwise", "run", "--quiet", "--", "sh", "-c", "sleep 0.6 & sleep 0.3"]
    env = cli_env(isolated_env, LD_LIBRARY_PATH=str(current_standin), WATTWISE_GPU="1")
    # sh first: wattwise is not process 1 of the namespace, so /proc/<its pid> names another process outside
    wrapped = ["unshare", "--pid", "--fork", *how, "sh", "-c", '"$@"; exit $?', "sh", *command]
    out = subprocess.run(wrapped, env=env, capture_output=True, text=True, timeout=60, check=False)
    assert out.returncode == 0, out.stderr
    run = show_latest(isolated_env)
    gpu0 = next(c for c in run["components"] if c["name"] == "gpu:0")
    assert gpu0["energy_j"] >= 0.5 * 300.0  # charged (it used the GPU from the start), not a silent 0
    assert run["duration_s"] >= 0.55  # the background sleep was found and waited for
    notes = " ".join(run["notes"])
    assert "was not used by the run" not in notes
    if charged_note is not None:
        assert charged_note in notes


BENCHMARKS = Path(__file__).parent.parent.parent / "benchmarks"


def test_the_gpu_accuracy_benchmark_runs_end_to_end_against_the_standin(current_standin: Path) -> None:
    env = {**os.environ, "LD_LIBRARY_PATH": str(current_standin), "PYTHONPATH": str(BENCHMARKS)}
    command = [sys.executable, str(BENCHMARKS / "gpu_accuracy.py"), "--no-load", "--seconds", "2"]
    out = subprocess.run(command, env=env, capture_output=True, text=True, timeout=120, check=False)
    assert out.returncode in (0, 1), out.stderr  # 1: the stand-in's instant power is 310 W, its counter 300 W
    text = out.stdout
    assert "driver 550.54.15, nvidia-ml-py" in text and "self-consistency only" in text
    assert "energy counter update period at idle: 100 ms" in text  # the stand-in steps every 100 ms
    twenty = next(line for line in text.splitlines() if line.strip().startswith("20 ms"))
    assert twenty.split()[4].startswith("0/")  # wattwise never reads 0 J over a 20 ms window


def test_a_recorded_trace_replays_through_the_fake(current_standin: Path, tmp_path: Path) -> None:
    from tests.fakes.nvml import Trace

    trace_file = tmp_path / "standin_h100.csv"
    env = {**os.environ, "LD_LIBRARY_PATH": str(current_standin), "PYTHONPATH": str(BENCHMARKS)}
    command = [sys.executable, str(BENCHMARKS / "record_nvml_trace.py"), "--seconds", "1", "--out", str(trace_file)]
    out = subprocess.run(command, env=env, capture_output=True, text=True, timeout=60, check=False)
    assert out.returncode == 0, out.stderr
    assert "GPU 1 (NVIDIA GeForce RTX 2080) gives neither energy nor power: not recorded" in out.stdout
    header = trace_file.read_text().splitlines()[:3]
    assert "energy counter: yes; power: instantaneous field" in header[1] and "driver 550.54.15" in header[2]
    trace = Trace.load(trace_file)
    assert trace.energy_mj is not None and set(trace.power_mw) == {310_000}
    assert trace.energy_at(trace.duration_s) - trace.energy_at(0.0) == pytest.approx(
        300 * trace.duration_s * 1000, abs=30_000
    )
