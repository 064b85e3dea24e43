"""``run --deadline`` and ``--interruptible``: the waiting policy on a fake clock, pausing a real process tree
at a seconds scale, the emissions avoided, and the CLI end to end where the plan starts at once."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest

from tests.schedule.conftest import write_trace
from wattwise.carbon.service import IntensityService
from wattwise.cli.main import main
from wattwise.config import Settings
from wattwise.errors import ConfigError
from wattwise.measure.pauses import PauseController
from wattwise.schedule.deferred import avoided, wait_for_start
from wattwise.schedule.planner import Job

T0 = datetime(2024, 5, 1, 10, 37, tzinfo=UTC)


def trace_around(path: Path, anchor: datetime, cheap: dict[int, float]) -> Path:
    """40 days before the anchor hour and 3 after, flat at 300 g/kWh except ``cheap`` hour offsets."""
    start = anchor.replace(minute=0, second=0, microsecond=0) - timedelta(days=40)
    values = np.full(24 * 43, 300.0)
    for offset, value in cheap.items():
        values[24 * 40 + offset] = value
    return write_trace(path, values, start)


class FakeClock:
    def __init__(self, at: datetime) -> None:
        self.now = at
        self.slept = 0.0

    def __call__(self) -> datetime:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += timedelta(seconds=max(seconds, 1e-3))
        self.slept += seconds


def test_waits_for_the_planned_hour_replanning_every_hour(tmp_path: Path) -> None:
    trace = trace_around(tmp_path / "t.csv", T0, {2: 40.0})
    service = IntensityService(Settings.load({"trace": str(trace)}))
    clock = FakeClock(T0)
    updates: list[datetime] = []
    state = wait_for_start(
        service,
        Job(1, 6, "deadline"),
        clock=clock,
        sleep=clock.sleep,
        on_update=lambda s, now: updates.append(now),
        tick_s=600,
    )
    assert state.windows[0][0] == datetime(2024, 5, 1, 12, tzinfo=UTC)
    assert clock.now == datetime(2024, 5, 1, 12, tzinfo=UTC)
    assert state.replans == 1  # at 11:00, on the outlook issued then
    assert state.waited_s == pytest.approx(83 * 60)
    assert state.decision.expected_g_per_kwh == 40.0 and updates
    record = state.as_record()
    assert record["semantics"] == "deadline" and record["forecast_method"] == "the trace's values for the hours ahead"


def test_never_waits_past_the_last_start_that_meets_the_deadline(tmp_path: Path) -> None:
    trace = trace_around(tmp_path / "t.csv", T0, {5: 1.0})  # cheap only after the deadline allows
    service = IntensityService(Settings.load({"trace": str(trace)}))
    clock = FakeClock(T0)
    state = wait_for_start(service, Job(2, 4, "deadline"), clock=clock, sleep=clock.sleep, tick_s=600)
    assert clock.now <= T0 + timedelta(hours=2) and state.windows[0][1] <= state.deadline_at


def test_a_flat_outlook_starts_at_once_and_says_why(tmp_path: Path) -> None:
    service = IntensityService(Settings.load({"region": "FR"}))
    clock = FakeClock(T0)
    state = wait_for_start(service, Job(1, 6, "deadline"), clock=clock, sleep=clock.sleep)
    assert clock.now == T0 and "annual average" in state.outlook.warning


def _state(pid: int) -> str:
    return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="reads process states from /proc")
def test_pause_controller_stops_and_resumes_the_whole_tree() -> None:
    child = subprocess.Popen(["sh", "-c", "sleep 30 & wait"])
    try:
        time.sleep(0.3)
        tree = [child.pid, *map(int, Path(f"/proc/{child.pid}/task/{child.pid}/children").read_text().split())]
        now = datetime.now(UTC)
        controller = PauseController([(now + timedelta(seconds=0.5), now + timedelta(seconds=1.5))])
        controller.start(lambda: tree)
        time.sleep(1.0)
        assert all(_state(pid) == "T" for pid in tree)  # every process of the tree is stopped
        time.sleep(1.0)
        assert all(_state(pid) in "SR" for pid in tree)
        controller.stop()
        assert controller.pause_count == 1 and controller.paused_s == pytest.approx(1.0, abs=0.3)
        assert len(controller.running) == 2
    finally:
        child.kill()
        child.wait()


def test_release_resumes_a_paused_tree_at_once() -> None:
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        now = datetime.now(UTC)
        controller = PauseController([(now, now + timedelta(hours=1))])
        controller.start(lambda: [child.pid])
        time.sleep(0.5)
        assert _state(child.pid) == "T"
        controller.release()  # what the signal relay does before forwarding SIGTERM
        time.sleep(0.2)
        assert _state(child.pid) in "SR"
        controller.stop()
        assert controller.pause_count == 1
    finally:
        child.kill()
        child.wait()


def test_avoided_is_scored_on_what_occurred(tmp_path: Path) -> None:
    trace = trace_around(tmp_path / "t.csv", T0, {2: 100.0})
    service = IntensityService(Settings.load({"trace": str(trace)}))
    clock = FakeClock(T0)
    state = wait_for_start(service, Job(1, 6, "deadline"), clock=clock, sleep=clock.sleep, tick_s=600)
    start = state.windows[0][0]
    result = avoided(service, state.submitted_at, [(start, start + timedelta(hours=1))], 3.6e6, 1.0)  # 1 kWh
    # at submission: 23 min at 300 and 37 min at 300 -> 300 g; as run: 100 g
    assert result["baseline_co2e_g"] == pytest.approx(300.0)
    assert result["as_run_co2e_g"] == pytest.approx(100.0)
    assert result["avoided_co2e_g"] == pytest.approx(200.0)
    flat = IntensityService(Settings.load({"region": "FR"}))
    assert avoided(flat, state.submitted_at, [(start, start + timedelta(hours=1))], 3.6e6, 1.0)["avoided_co2e_g"] == 0.0


def test_run_with_a_deadline_records_its_plan(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("WATTWISE_HOME", str(tmp_path / "home"))
    trace = trace_around(tmp_path / "t.csv", datetime.now(UTC), {0: 50.0})  # now is the cleanest hour
    code = main(
        [
            "run",
            "--trace",
            str(trace),
            "--deadline",
            "6h",
            "--duration",
            "30m",
            "-q",
            "--json",
            "--",
            sys.executable,
            "-c",
            "pass",
        ]
    )
    assert code == 0
    record = json.loads(capsys.readouterr().out)
    sched = record["schedule"]
    assert sched["semantics"] == "deadline" and sched["window_h"] == 6 and sched["waited_s"] < 60
    assert sched["expected_g_per_kwh"] == 50.0 and sched["avoided_co2e_g"] is not None
    assert datetime.fromisoformat(sched["planned_slices"][0]["end_at"]) > datetime.fromisoformat(sched["started_at"])
    assert main(["runs", "show", record["id"], "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["schedule"]["replans"] == 0  # stored, and read back


def test_deferred_flags_need_a_deadline(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("WATTWISE_HOME", str(tmp_path / "home"))
    assert main(["run", "--duration", "1h", "--", "true"]) == 2
    assert "give --deadline too" in capsys.readouterr().err
    assert main(["run", "--deadline", "2h", "--pause-signal", "SIGNOPE", "--interruptible", "--", "true"]) == 2
    assert "not a signal name" in capsys.readouterr().err
    assert main(["run", "--deadline", "1h", "--duration", "2h", "--", "true"]) == 2
    assert "shorter than the job" in capsys.readouterr().err


def _launch(args: list[str], env: dict[str, str], *, ignore_hup: bool = False) -> subprocess.Popen[str]:
    cmd = [sys.executable, "-m", "wattwise", *args]
    if ignore_hup:  # what nohup does: SIGHUP ignored, inherited across exec
        cmd = ["sh", "-c", 'trap "" HUP; exec "$@"', "sh", *cmd]
    return subprocess.Popen(cmd, env=env, text=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def test_sigterm_during_a_deferred_run_is_forwarded_and_the_run_kept(tmp_path: Path) -> None:
    env = {**os.environ, "WATTWISE_HOME": str(tmp_path / "home")}
    trace = trace_around(tmp_path / "t.csv", datetime.now(UTC), {0: 50.0})
    proc = _launch(
        [
            "run",
            "--quiet",
            "--trace",
            str(trace),
            "--deadline",
            "3h",
            "--duration",
            "30m",
            "--name",
            "deferred-term",
            "--",
            "sleep",
            "30",
        ],
        env,
    )
    time.sleep(4)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 143, err
    shown = subprocess.run(
        [sys.executable, "-m", "wattwise", "runs", "show", "latest", "--json"],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    run = json.loads(shown.stdout)
    assert run["name"] == "deferred-term" and run["status"] == "incomplete" and run["duration_s"] > 2
    assert run["energy_j"] > 0 and run["schedule"]["semantics"] == "deadline"


def test_an_ignored_hangup_stays_ignored_while_waiting(tmp_path: Path) -> None:
    env = {**os.environ, "WATTWISE_HOME": str(tmp_path / "home")}
    trace = trace_around(tmp_path / "t.csv", datetime.now(UTC), {2: 10.0})  # the plan waits for hour +2
    proc = _launch(
        ["run", "--trace", str(trace), "--deadline", "6h", "--duration", "30m", "--", "true"], env, ignore_hup=True
    )
    time.sleep(4)
    proc.send_signal(signal.SIGHUP)
    time.sleep(1)
    assert proc.poll() is None  # nohup's promise holds
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 143 and "nothing ran, nothing was recorded" in err
    assert "planned for" in err  # the plan was shown before the countdown


def test_a_plan_file_of_an_interruptible_job_pauses_between_its_slices(tmp_path: Path) -> None:
    from wattwise.cli.deferred_run import from_plan_file

    now = datetime.now(UTC)
    plan = {
        "submitted_at": (now - timedelta(minutes=5)).isoformat(),
        "deadline_at": (now + timedelta(hours=5)).isoformat(),
        "interruptible": True,
        "planned_slices": [
            {"start_at": now.isoformat(), "end_at": (now + timedelta(hours=1)).isoformat()},
            {"start_at": (now + timedelta(hours=3)).isoformat(), "end_at": (now + timedelta(hours=4)).isoformat()},
        ],
    }
    path = tmp_path / "plan.json"
    path.write_text(json.dumps(plan))
    prepared = from_plan_file(str(path))
    assert prepared.pauses is not None and prepared.plan["waited_s"] >= 300
    assert prepared.pauses._pauses == [(now + timedelta(hours=1), now + timedelta(hours=3))]
    path.write_text("{")
    with pytest.raises(ConfigError, match="not a plan written by"):
        from_plan_file(str(path))
