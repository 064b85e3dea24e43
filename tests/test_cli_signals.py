"""Signals under ``wattwise run`` when it owns a terminal, as in a user's shell (a real pty, real processes)."""

from __future__ import annotations

import os
import pty
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.test_cli_run import cli_env, show_latest

pytestmark = [pytest.mark.slow, pytest.mark.skipif(not hasattr(signal, "sigtimedwait"), reason="Linux signals")]

CHILD = """
import os, pathlib, signal, sys, time
out = pathlib.Path(sys.argv[1])
count = 0
def on_int(signum, frame):
    global count
    count += 1
    out.write_text(str(count))
signal.signal(signal.SIGINT, on_int)
out.write_text("0")
deadline = time.time() + 2.0
while time.time() < deadline:
    time.sleep(0.01)
sys.exit(0)
"""


def start_in_terminal(home: Path, *args: str) -> tuple[int, int]:
    """wattwise as the foreground job of a new terminal (a pty it controls). Returns (pid, pty master fd)."""
    pid, master = pty.fork()
    if pid == 0:  # the child: session leader with the pty as controlling terminal
        os.execve(sys.executable, [sys.executable, "-m", "wattwise", "run", "--quiet", *args], cli_env(home))
    return pid, master


def wait_for(path: Path, text: str, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if path.exists() and path.read_text() == text:
            return
        time.sleep(0.02)
    raise AssertionError(f"{path} never read {text!r} (last: {path.read_text() if path.exists() else None!r})")


def finish(pid: int, master: int) -> int:
    _, status = os.waitpid(pid, 0)
    os.close(master)
    return os.waitstatus_to_exitcode(status)


def test_ctrl_c_from_the_terminal_reaches_the_command_once(isolated_env: Path, tmp_path: Path) -> None:
    counter = tmp_path / "count"
    pid, master = start_in_terminal(isolated_env, "--", sys.executable, "-c", CHILD, str(counter))
    wait_for(counter, "0")
    os.write(master, b"\x03")  # Ctrl-C typed at the terminal: the kernel signals the whole foreground group
    wait_for(counter, "1")
    time.sleep(0.3)
    assert counter.read_text() == "1"  # not forwarded a second time
    assert finish(pid, master) == 0
    assert show_latest(isolated_env)["status"] == "incomplete"


def test_sigint_sent_with_kill_is_forwarded_even_from_the_foreground(isolated_env: Path, tmp_path: Path) -> None:
    counter = tmp_path / "count"
    pid, master = start_in_terminal(isolated_env, "--", sys.executable, "-c", CHILD, str(counter))
    wait_for(counter, "0")
    os.kill(pid, signal.SIGINT)  # to wattwise alone, as `kill -INT` from another shell
    wait_for(counter, "1")
    assert finish(pid, master) == 0
    run = show_latest(isolated_env)
    assert run["status"] == "incomplete" and "SIGINT" in run["error"]


def test_ignored_signals_stay_ignored(isolated_env: Path) -> None:
    code = "import time; time.sleep(1.0)"
    proc = subprocess.Popen(
        [sys.executable, "-m", "wattwise", "run", "--quiet", "--", sys.executable, "-c", code],
        env=cli_env(isolated_env),
        preexec_fn=lambda: signal.signal(signal.SIGHUP, signal.SIG_IGN),  # as nohup does  # noqa: PLW1509
    )
    time.sleep(0.5)
    proc.send_signal(signal.SIGHUP)
    assert proc.wait(timeout=20) == 0
    assert show_latest(isolated_env)["status"] == "complete"


def test_sigterm_reaches_grandchildren_too(isolated_env: Path, tmp_path: Path) -> None:
    pidfile = tmp_path / "grandchild"
    script = f"sleep 30 & echo $! > {pidfile}; wait"
    proc = subprocess.Popen(
        [sys.executable, "-m", "wattwise", "run", "--quiet", "--", "sh", "-c", script], env=cli_env(isolated_env)
    )
    deadline = time.monotonic() + 20
    while not (pidfile.exists() and pidfile.read_text().strip()) and time.monotonic() < deadline:
        time.sleep(0.02)
    grandchild = int(pidfile.read_text())
    time.sleep(0.2)
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=20) == 128 + signal.SIGTERM
    time.sleep(0.2)
    assert not alive(grandchild)


def alive(pid: int) -> bool:
    """Running, not a zombie waiting for a reaper (an orphan's reaper here may be slow or absent)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat[stat.rfind(")") + 2] != "Z"
