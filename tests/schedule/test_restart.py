"""A job that checkpoints and exits on the pause signal is started again at the next slice (``--resume-signal
restart``), within one measured run; a SIGSTOP-paused one is never left stopped."""

from __future__ import annotations

import signal
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

from tests.fakes.power import ConstantPowerSource, FakeHost
from wattwise.config import Settings
from wattwise.measure.pauses import PauseController
from wattwise.measure.runner import run_command
from wattwise.measure.tracker import Tracker

JOB = """
import pathlib, signal, sys, time
state = pathlib.Path(sys.argv[1])
done = int(state.read_text()) if state.exists() else 0
def checkpoint(signum, frame):
    state.write_text(str(done))
    with open(sys.argv[2], "a") as log:
        log.write(f"checkpoint at {done}\\n")
    sys.exit(0)
signal.signal(signal.SIGUSR1, checkpoint)
with open(sys.argv[2], "a") as log:
    log.write(f"start at {done}\\n")
while done < 30:
    time.sleep(0.1)
    done += 1
state.write_text(str(done))
"""


def test_a_checkpointing_job_is_restarted_at_the_next_slice(isolated_env: Path, tmp_path: Path) -> None:
    settings = Settings.load({"gpu": False, "rapl_root": str(isolated_env / "none")})
    tracker = Tracker("restart", settings=settings, sources=[ConstantPowerSource({"cpu": 1.0})], host=FakeHost())
    now = datetime.now(UTC)
    pauses = PauseController(
        [(now + timedelta(seconds=1), now + timedelta(seconds=2))], pause_signal=signal.SIGUSR1, resume_signal=None
    )
    state, log = tmp_path / "state", tmp_path / "log"
    result = run_command([sys.executable, "-c", JOB, str(state), str(log)], tracker, pauses=pauses)
    assert result.exit_code == 0 and result.run.status == "complete"
    lines = log.read_text().splitlines()
    assert lines[0] == "start at 0" and lines[1].startswith("checkpoint at ") and lines[2].startswith("start at ")
    assert lines[1].split()[-1] == lines[2].split()[-1]  # resumed from its checkpoint
    assert state.read_text() == "30"
    assert pauses.pause_count == 1 and pauses.restart_count == 1 and 0.7 < pauses.paused_s < 1.6
    assert any("started again at the next slice" in n for n in result.run.notes)


def test_a_stopped_job_is_resumed_when_it_must_end(isolated_env: Path, tmp_path: Path) -> None:
    settings = Settings.load({"gpu": False, "rapl_root": str(isolated_env / "none")})
    tracker = Tracker("stopped", settings=settings, sources=[ConstantPowerSource({"cpu": 1.0})], host=FakeHost())
    now = datetime.now(UTC)
    pauses = PauseController([(now + timedelta(seconds=0.5), now + timedelta(seconds=1.5))])
    code = "import time\nfor _ in range(20): time.sleep(0.1)"
    result = run_command([sys.executable, "-c", code], tracker, pauses=pauses)
    assert result.exit_code == 0 and pauses.pause_count == 1 and 0.7 < pauses.paused_s < 1.4
    assert result.run.duration_s > 2.5  # two seconds of work and one paused
