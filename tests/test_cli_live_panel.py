"""`wattwise run` in a terminal: the live panel, drawn by an observer of the run, shows power and energy so far."""

from __future__ import annotations

import os
import pty
import select
import subprocess
import sys
import time
from pathlib import Path

import pytest

from wattwise.measure.live import LiveStatus
from wattwise.report.terminal import LivePanel


@pytest.mark.slow
def test_the_panel_is_drawn_while_the_command_runs(tmp_path: Path) -> None:
    master, slave = pty.openpty()
    env = {
        **os.environ,
        "WATTWISE_HOME": str(tmp_path),
        "WATTWISE_INTERVAL_S": "0.2",
        "TERM": "xterm",
        "COLUMNS": "100",
    }
    env.update(WATTWISE_RAPL_ROOT=str(tmp_path / "none"), WATTWISE_GPU="false")
    command = [sys.executable, "-m", "wattwise", "run", "--name", "panel", "--", sys.executable, "-c"]
    child = subprocess.Popen(
        [*command, "import time; time.sleep(2)"], stdin=slave, stdout=slave, stderr=slave, env=env, close_fds=True
    )
    os.close(slave)
    seen = b""
    deadline = time.monotonic() + 60
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([master], [], [], 0.5)
            if ready:
                try:
                    chunk = os.read(master, 65536)
                except OSError:  # the child closed the terminal
                    break
                if not chunk:
                    break
                seen += chunk
            elif child.poll() is not None:
                break
    finally:
        os.close(master)
        child.wait(timeout=30)
    text = seen.decode(errors="replace")
    assert child.returncode == 0, text[-2000:]
    assert "energy so far" in text and "wattwise · panel" in text  # the panel, drawn during the run
    assert "cpu power" in text


class FakeDisplay:
    def __init__(self) -> None:
        self.shown: list[object] = []

    def update(self, renderable: object, *, refresh: bool = False) -> None:
        self.shown.append(renderable)


def test_the_panel_draws_only_once_a_display_is_attached() -> None:
    panel = LivePanel("x")
    status = LiveStatus(1.0, {"cpu": 5.0}, 5.0, 0.001, "estimated", None, {})
    panel.live("run-1", status)
    assert panel.updates == 0
    display = FakeDisplay()
    panel.display = display  # type: ignore[assignment]
    panel.live("run-1", status)
    assert panel.updates == 1 and len(display.shown) == 1
