"""Pausing a command's whole process tree during the hours a plan leaves out (``run --interruptible``).

At each planned pause the controller sends the pause signal (SIGSTOP by default; a job that checkpoints can ask
for another, e.g. SIGUSR1, and the resume signal to match) to every process of the tree, and the resume signal
(SIGCONT) at the planned resume. With ``resume_signal=None`` the job is one that checkpoints and *exits* on the
pause signal: the runner waits for the planned resume (:meth:`wait_for_restart`) and starts the command again.
Nothing is ever left stopped: the tree is resumed when the command ends, when wattwise is asked to stop (so a
forwarded SIGTERM can act), and when the controller stops. Running intervals and paused seconds are kept for the
record.
"""

from __future__ import annotations

import contextlib
import os
import signal
import threading
from collections.abc import Callable
from datetime import UTC, datetime

Tree = Callable[[], list[int]]


class PauseController:
    def __init__(
        self,
        pauses: list[tuple[datetime, datetime]],
        *,
        pause_signal: int = signal.SIGSTOP,
        resume_signal: int | None = signal.SIGCONT,
        clock: Callable[[], datetime] | None = None,
    ) -> None:
        self._pauses = sorted(pauses)
        self.pause_signal = pause_signal
        self.resume_signal = resume_signal
        self._clock = clock or (lambda: datetime.now(UTC))
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._tree: Tree | None = None
        self._thread: threading.Thread | None = None
        self.paused_since: datetime | None = None
        self.running: list[tuple[datetime, datetime]] = []
        self._running_since: datetime | None = None
        self.pause_count = 0
        self.released = False  # resumed for good (asked to stop): no more pauses
        self.restarts = resume_signal is None
        self.restart_count = 0
        self._restart_due = threading.Event()

    def start(self, tree: Tree) -> None:
        self._tree = tree
        self._running_since = self._clock()
        self._thread = threading.Thread(target=self._loop, name="wattwise-pauses", daemon=True)
        self._thread.start()

    def _send(self, signum: int) -> None:
        assert self._tree is not None
        for pid in self._tree():
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signum)

    def _loop(self) -> None:
        for pause_at, resume_at in self._pauses:
            while not self.released and self._clock() < pause_at:
                self._wake.wait(min(1.0, max(0.0, (pause_at - self._clock()).total_seconds())))
                self._wake.clear()
            with self._lock:
                if self.released:
                    return
                now = self._clock()
                if now >= resume_at:
                    continue
                self._send(self.pause_signal)
                self.pause_count += 1
                self.paused_since = now
                if self._running_since is not None:
                    self.running.append((self._running_since, now))
                    self._running_since = None
            while not self.released and self._clock() < resume_at:
                self._wake.wait(min(1.0, max(0.0, (resume_at - self._clock()).total_seconds())))
                self._wake.clear()
            self._resume()

    def _resume(self) -> None:
        with self._lock:
            if self.paused_since is None:
                return
            if self.restarts:
                self._restart_due.set()  # the runner starts the command again, if it exited
            else:
                assert self.resume_signal is not None
                self._send(self.resume_signal)
                if self.resume_signal != signal.SIGCONT:
                    self._send(signal.SIGCONT)  # a custom pair may still have left a process stopped
            now = self._clock()
            self._running_since = now
            self.paused_since = None

    def attach(self, tree: Tree) -> None:
        """The tree of a restarted command."""
        self._tree = tree

    def exited_on_pause(self) -> bool:
        """The command ended while paused (the checkpoint-and-exit kind)."""
        with self._lock:
            return self.restarts and self.paused_since is not None and not self.released

    def command_exited(self) -> None:
        """The command ended: resume whatever it left (SIGSTOP kind); the restart kind decides in the runner."""
        if not self.restarts:
            self.release()

    def wait_for_restart(self, give_up: Callable[[], bool]) -> bool:
        """Block until the planned resume (True: start the command again), or until released or ``give_up()``."""
        while not self._restart_due.wait(0.5):
            if self.released or give_up():
                return False
        self._restart_due.clear()
        self.restart_count += 1
        return not self.released

    def release(self) -> None:
        """Resume now and pause no more (the command is ending or wattwise was asked to stop)."""
        self.released = True
        self._resume()
        self._wake.set()

    def stop(self) -> None:
        self.release()
        if self._thread is not None:
            self._thread.join(timeout=5.0)
        with self._lock:
            if self._running_since is not None:
                self.running.append((self._running_since, self._clock()))
                self._running_since = None

    @property
    def paused_s(self) -> float:
        if not self.running:
            return 0.0
        span = (self.running[-1][1] - self.running[0][0]).total_seconds()
        return span - sum((b - a).total_seconds() for a, b in self.running)
