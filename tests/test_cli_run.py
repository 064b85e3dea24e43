"""``wattwise run`` end to end, with real child processes."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

pytestmark = pytest.mark.slow


def cli_env(home: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("WATTWISE_")}
    env.update(
        WATTWISE_HOME=str(home),
        WATTWISE_RAPL_ROOT=str(home / "no-powercap"),
        WATTWISE_GPU="0",
        WATTWISE_INTERVAL_S="0.1",
        WATTWISE_FLUSH_S="0.5",
    )
    env.update(extra)
    return env


def wattwise(home: Path, *args: str, **extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "wattwise", *args],
        env=cli_env(home, **extra),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def show_latest(home: Path) -> dict[str, Any]:
    out = wattwise(home, "runs", "show", "latest", "--json")
    assert out.returncode == 0, out.stderr
    data: dict[str, Any] = json.loads(out.stdout)
    return data


BURN = "import time\nt=time.time()\nwhile time.time()-t<{s}: pass\n"


def test_run_measures_a_command_and_its_children(isolated_env: Path) -> None:
    child = (
        "import subprocess, sys\n"
        f"p = subprocess.Popen([sys.executable, '-c', {BURN.format(s=0.8)!r}])\n"
        f"exec({BURN.format(s=0.8)!r})\n"
        "p.wait()\nprint('child done')\n"
    )
    out = wattwise(isolated_env, "run", "--name", "burn", "--region", "FR", "--", sys.executable, "-c", child)
    assert out.returncode == 0, out.stderr
    assert "child done" in out.stdout
    run = show_latest(isolated_env)
    assert run["name"] == "burn" and run["status"] == "complete" and run["exit_code"] == 0
    assert run["region"] == "FR" and run["command"][:1] == [sys.executable]
    components = {c["name"]: c for c in run["components"]}
    cpu = components["cpu"]
    assert cpu["source"] == "estimated" and cpu["energy_j"] > 0
    assert 0 < cpu["energy_j"] <= cpu["machine_energy_j"] + 1e-9
    for key in ("id", "started_at", "duration_s", "energy_j", "co2e_g", "intensity_g_per_kwh", "pue"):
        assert key in run
    assert float(run["duration_s"]) >= 0.8
    samples = wattwise(isolated_env, "runs", "show", "latest", "--json", "--samples")
    assert len(json.loads(samples.stdout)["samples"]) > 0


def test_exit_code_is_the_commands_own_and_failure_is_recorded(isolated_env: Path) -> None:
    out = wattwise(isolated_env, "run", "--quiet", "--", sys.executable, "-c", "import sys; sys.exit(3)")
    assert out.returncode == 3
    run = show_latest(isolated_env)
    assert run["status"] == "failed" and run["exit_code"] == 3


def test_command_not_found_is_one_line_and_keeps_existing_runs(isolated_env: Path) -> None:
    ok = wattwise(isolated_env, "run", "--quiet", "--", sys.executable, "-c", "pass")
    assert ok.returncode == 0
    before = show_latest(isolated_env)
    out = wattwise(isolated_env, "run", "--", "no-such-command-xyz", "--flag")
    assert out.returncode == 127
    assert out.stderr.strip().count("\n") == 0
    assert "command not found: no-such-command-xyz" in out.stderr
    assert show_latest(isolated_env) == before


@pytest.mark.parametrize(("signum", "status"), [(signal.SIGINT, "incomplete"), (signal.SIGTERM, "incomplete")])
def test_signals_are_forwarded_and_the_run_is_still_recorded(
    isolated_env: Path, signum: signal.Signals, status: str
) -> None:
    marker = isolated_env / "started"
    isolated_env.mkdir(parents=True, exist_ok=True)
    child = f"import pathlib, time\npathlib.Path({str(marker)!r}).write_text('x')\ntime.sleep(30)\n"
    proc = subprocess.Popen(
        [sys.executable, "-m", "wattwise", "run", "--quiet", "--", sys.executable, "-c", child],
        env=cli_env(isolated_env),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 20
    while not marker.exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert marker.exists()
    proc.send_signal(signum)
    _, err = proc.communicate(timeout=20)
    assert proc.returncode == 128 + signum, err
    run = show_latest(isolated_env)
    assert run["status"] == status
    assert float(run["duration_s"]) > 0


@pytest.mark.parametrize(
    ("env", "args", "message"),
    [
        ({"WATTWISE_DB": "mysql://nope"}, [], "WATTWISE_DB"),
        ({}, ["--region", "Atlantis"], "unknown region 'Atlantis'"),
        ({"WATTWISE_PUE": "0.5"}, [], "pue must be between"),
        ({}, ["--pue", "x"], "invalid float value"),
    ],
)
def test_bad_input_is_one_line_and_nonzero(
    isolated_env: Path, env: dict[str, str], args: list[str], message: str
) -> None:
    out = wattwise(isolated_env, "run", *args, "--", sys.executable, "-c", "pass", **env)
    assert out.returncode == 2, out.stderr
    assert message in out.stderr
    assert out.stderr.strip().count("\n") == 0, out.stderr


def test_unwritable_store_directory(isolated_env: Path, tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("x")
    out = wattwise(
        isolated_env,
        "run",
        "--",
        sys.executable,
        "-c",
        "print('should not run')",
        WATTWISE_HOME=str(blocker / "home"),
    )
    assert out.returncode == 1
    assert "should not run" not in out.stdout
    assert out.stderr.strip().count("\n") == 0 and "WATTWISE_HOME" in out.stderr


def test_epochs_reported_by_the_command_give_a_prediction(isolated_env: Path) -> None:
    child = "import time, wattwise\nfor _ in range(3):\n    time.sleep(0.2)\n    wattwise.report_epoch()\n"
    out = wattwise(isolated_env, "run", "--epochs", "10", "--", sys.executable, "-c", child)
    assert out.returncode == 0, out.stderr
    run = show_latest(isolated_env)
    assert [w["name"] for w in run["windows"]] == ["epoch-1", "epoch-2", "epoch-3"]
    prediction = run["prediction"]
    assert prediction["epochs_done"] == 3 and prediction["epochs_planned"] == 10
    assert prediction["energy_j"]["low"] <= prediction["energy_j"]["value"] <= prediction["energy_j"]["high"]
    assert "predicted for 10 epochs" in out.stderr


def test_work_reported_by_the_command_is_in_the_record_with_energy_per_token(isolated_env: Path) -> None:
    child = (
        "import os, socket, subprocess, sys, time, wattwise\n"
        "for _ in range(4):\n"
        "    time.sleep(0.1)\n"
        "    assert wattwise.report_work(tokens=32, requests=1, prompt_tokens=16)\n"
        "subprocess.run([sys.executable, '-c', 'import wattwise; wattwise.report_work(tokens=72)'], check=True)\n"
        "with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as s:\n"
        "    s.sendto(b'work 1 nan', os.environ['WATTWISE_EPOCH_SOCKET'])\n"
        "    s.sendto(b'work -5 0 0', os.environ['WATTWISE_EPOCH_SOCKET'])\n"
    )
    out = wattwise(isolated_env, "run", "--name", "serve", "--", sys.executable, "-c", child)
    assert out.returncode == 0, out.stderr
    run = show_latest(isolated_env)
    assert run["work"] == {"output_tokens": 200.0, "requests": 4.0, "prompt_tokens": 64.0}
    per = run["per_work"]
    assert per["j_per_output_token"] == run["energy_j"] / 200.0 and per["j_per_output_token"] > 0
    assert per["wh_per_request"] == run["energy_j"] / 4.0 / 3600.0
    assert per["source"] == run["source"] == "estimated"  # no RAPL here: the CPU is modelled
    assert any(n.startswith("ignored 2 report(s) from the command") for n in run["notes"]), run["notes"]
    assert "per output token" in out.stderr and "per 1,000 requests" in out.stderr  # the end summary


def test_output_through_a_pty_keeps_every_line_and_progress_bars_final_state(isolated_env: Path) -> None:
    from tests.fakes.power import ConstantPowerSource, FakeHost
    from wattwise.config import Settings
    from wattwise.measure.runner import run_command
    from wattwise.measure.tracker import Tracker

    got: list[str] = []
    code = "import sys\nprint('hello')\nsys.stdout.write('10%\\r50%\\r100%\\n')\nprint('no newline at end', end='')\n"
    settings = Settings.load({"gpu": False, "rapl_root": str(isolated_env / "none")})
    tracker = Tracker("pty", settings=settings, sources=[ConstantPowerSource({"cpu": 1.0})], host=FakeHost())
    result = run_command([sys.executable, "-c", code], tracker, output=got.append)
    assert result.exit_code == 0
    assert "".join(got) == "hello\n100%\nno newline at end\n"


def test_run_without_a_command_is_a_usage_error(isolated_env: Path) -> None:
    out = wattwise(isolated_env, "run", "--quiet")
    assert out.returncode == 2 and "no command given" in out.stderr


def test_a_store_that_fails_at_the_end_still_returns_the_commands_code(isolated_env: Path) -> None:
    from tests.fakes.power import ConstantPowerSource, FakeHost
    from tests.fakes.store import FailingStore
    from wattwise.config import Settings
    from wattwise.measure.runner import run_command
    from wattwise.measure.tracker import Tracker
    from wattwise.store import open_store

    settings = Settings.load({"gpu": False, "rapl_root": str(isolated_env / "none")})
    inner = open_store(settings.db_url)
    tracker = Tracker(
        "x", settings=settings, sources=[ConstantPowerSource({"cpu": 1.0})], host=FakeHost(), store=FailingStore(inner)
    )
    result = run_command([sys.executable, "-c", "raise SystemExit(4)"], tracker)
    assert result.exit_code == 4 and result.run.status == "failed"
    assert (settings.home / "unsaved" / f"{result.run.id}.json").is_file()
    inner.close()
