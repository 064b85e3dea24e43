"""Signals for ``wattwise run``: forward what was meant for the command, never deliver anything twice.

A terminal sends Ctrl-C (and Ctrl-\\, and a hang-up) to its whole foreground process group: the command gets it
straight from the terminal, so wattwise must not send it again. A signal sent with ``kill`` to wattwise alone must
be forwarded. On Linux the two are told apart exactly: the forwarded signals are blocked in every thread and one
thread takes them with ``sigtimedwait``, whose ``si_code`` says whether the kernel (a terminal) or a process sent
them. Where ``sigtimedwait`` does not exist (macOS) a handler forwards a SIGINT only when wattwise is not the
terminal's foreground group.

Forwarding goes to the command and every process it started (what a terminal's Ctrl-C reaches), so children
do not outlive an interrupted run. Signals that were ignored when wattwise started (``nohup``, ``&`` in a script)
stay ignored, for wattwise and for the command. The third interrupt kills the command's whole tree.

SIGUSR1, SIGUSR2 and SIGALRM are passed on to the command's tree too (a batch system's "checkpoint now" signal
must reach the job, not end wattwise), and noted in the run, which goes on. Once the command has exited and
wattwise only waits for what it left in the background, a Ctrl-C (or hang-up) from the terminal is sent on as
SIGTERM: background processes ignore the terminal's SIGINT, and the user wants them stopped.

A command that ignores SIGTERM or SIGHUP is not waited for forever (Slurm and Kubernetes would kill the job
anyway, and wattwise's record with it): ``grace_s`` (``kill_grace_s``, 10 s by default, as ``docker stop``) after
wattwise forwarded the first of them, whatever is left of the tree gets SIGKILL, and :attr:`SignalRelay.escalated`
says so for the run's record.
"""

from __future__ import annotations

import contextlib
import os
import signal
import threading
import time
from collections.abc import Callable
from types import FrameType

_NAMES = ("SIGINT", "SIGTERM", "SIGHUP", "SIGQUIT", "SIGUSR1", "SIGUSR2", "SIGALRM")
# passed on to the command and noted, but not an interruption: Slurm's --signal=B:USR1@N asks a job to checkpoint
PASSED = frozenset(int(getattr(signal, n)) for n in ("SIGUSR1", "SIGUSR2", "SIGALRM") if hasattr(signal, n))
_SI_KERNEL = 0x80  # siginfo si_code of a signal the kernel generated (terminal keys, hang-up)
_SI_TKILL = -6  # siginfo si_code of tgkill/pthread_kill: a signal aimed at one thread
_KILL_AFTER = 3
_ESCALATE = frozenset(int(getattr(signal, n)) for n in ("SIGTERM", "SIGHUP") if hasattr(signal, n))


def forwardable() -> set[int]:
    """The signals wattwise relays: those that exist here and were not ignored when it started."""
    found = set()
    for name in _NAMES:
        signum = getattr(signal, name, None)
        if signum is not None and signal.getsignal(signum) is not signal.SIG_IGN:
            found.add(int(signum))
    return found


def _terminal_is_ours() -> bool:
    """True when we are the terminal's foreground process group (Ctrl-C then reaches the command directly)."""
    try:
        fd = os.open("/dev/tty", os.O_RDONLY | getattr(os, "O_NOCTTY", 0))
    except OSError:
        return False
    try:
        return os.tcgetpgrp(fd) == os.getpgrp()
    except OSError:
        return False
    finally:
        os.close(fd)


class SignalRelay:
    """Use as a context manager around everything ``wattwise run`` does, before any thread is started.

    ``targets`` returns the pids to signal (the command and its descendants); ``received`` lists the signals
    wattwise got, so the run can be recorded as interrupted.
    """

    def __init__(self, grace_s: float = 10.0) -> None:
        self.signals = forwardable()
        self.grace_s = grace_s
        self.escalated: str | None = None  # "SIGTERM": the tree was killed grace_s after it was forwarded
        self._timer: threading.Timer | None = None
        self.received: list[int] = []
        self.from_terminal: list[bool] = []
        self.passed: list[tuple[str, float]] = []  # (signal name, time.monotonic()) passed on without interrupting
        self.command_done = False  # the command exited; only what it left in the background is being waited for
        self.on_stop: Callable[[], None] | None = None  # called before a stopping signal is forwarded (resume first)
        self._targets: Callable[[], list[int]] = list
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._previous: dict[int, object] = {}
        self.exact = hasattr(signal, "sigtimedwait") and hasattr(signal, "pthread_sigmask")

    def __enter__(self) -> SignalRelay:
        if not self.signals:  # every one of them ignored (nohup and &): nothing to relay
            return self
        if self.exact:
            signal.pthread_sigmask(signal.SIG_BLOCK, self.signals)
            self._thread = threading.Thread(target=self._wait_loop, name="wattwise-signals", daemon=True)
            self._thread.start()
        else:
            for signum in self.signals:
                self._previous[signum] = signal.signal(signum, self._on_handler)
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._timer is not None:
            self._timer.cancel()
        if self._thread is not None:
            if self._thread.ident is not None and self._thread.is_alive():
                # wake the waiting thread now (a signal aimed at that thread alone), rather than at its next timeout
                with contextlib.suppress(OSError, ProcessLookupError):
                    signal.pthread_kill(self._thread.ident, next(iter(self.signals)))
            self._thread.join()
            with contextlib.suppress(OSError, ValueError):  # drain what arrived after the loop: nothing to do
                while signal.sigtimedwait(self.signals, 0) is not None:
                    pass
            signal.pthread_sigmask(signal.SIG_UNBLOCK, self.signals)
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)  # type: ignore[arg-type]

    def attach(self, targets: Callable[[], list[int]]) -> None:
        """From now on, forward to ``targets()`` (the command's process tree)."""
        with self._lock:
            self._targets = targets

    def mark_command_done(self) -> None:
        """The command has exited: from now on only processes it left in the background are waited for."""
        with self._lock:
            self.command_done = True

    def detach(self) -> None:
        with self._lock:
            self._targets = list

    @property
    def interrupted(self) -> bool:
        return bool(self.received)

    def _wait_loop(self) -> None:
        while not self._stop.is_set():
            try:
                info = signal.sigtimedwait(self.signals, 1.0)
            except (OSError, InterruptedError):
                continue
            if info is None:
                continue
            if self._stop.is_set() and info.si_code == _SI_TKILL and info.si_pid == os.getpid():
                break  # our own wake-up call from __exit__
            self._handle(info.si_signo, from_terminal=info.si_code == _SI_KERNEL)

    def _on_handler(self, signum: int, frame: FrameType | None) -> None:
        self._handle(signum, from_terminal=signum == signal.SIGINT and _terminal_is_ours())

    def _handle(self, signum: int, *, from_terminal: bool) -> None:
        if signum in PASSED:
            with self._lock:
                self.passed.append((signal.Signals(signum).name, time.monotonic()))
                targets = self._targets()
            _send(targets, signum)
            return
        with self._lock:
            self.received.append(signum)
            self.from_terminal.append(from_terminal)
            targets = self._targets()
            orphans_only = self.command_done
            on_stop = self.on_stop
        if on_stop is not None:
            on_stop()  # a paused tree must be running to act on what it is sent
        if len(self.received) >= _KILL_AFTER:
            _send(targets, signal.SIGKILL)
        elif orphans_only:  # background processes ignore the terminal's SIGINT: ask them to stop
            _send(targets, signal.SIGTERM)
        elif not from_terminal:
            _send(targets, signum)
        escalate = signum in _ESCALATE or orphans_only
        if escalate and targets and self._timer is None and not self._stop.is_set():
            self._timer = threading.Timer(
                self.grace_s, self._escalate, args=(signal.SIGTERM if orphans_only else signum,)
            )
            self._timer.daemon = True
            self._timer.start()

    def _escalate(self, signum: int) -> None:
        """The grace period after SIGTERM/SIGHUP is over: SIGKILL whatever is left of the command's tree."""
        with self._lock:
            targets = self._targets()
        if targets and not self._stop.is_set():
            self.escalated = signal.Signals(signum).name
            _send(targets, signal.SIGKILL)

    def describe(self) -> str:
        """'SIGINT (terminal), SIGTERM' — for the run's error line."""
        parts = [
            signal.Signals(s).name + (" (terminal)" if t else "")
            for s, t in zip(self.received, self.from_terminal, strict=True)
        ]
        return ", ".join(dict.fromkeys(parts))


def _send(pids: list[int], signum: int) -> None:
    for pid in pids:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, signum)
