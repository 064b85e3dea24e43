"""Runs end with their process: a signal or the interpreter's exit finalises every tracker still running.

Slurm, Kubernetes and ``docker stop`` end a job with SIGTERM; a closed terminal sends SIGHUP; Ctrl-C sends SIGINT.
A tracker running when one arrives must not be lost or stored as 0 J. While at least one tracker runs in a process,
:class:`ProcessGuard` has a handler on each of these signals, and an ``atexit`` hook, and does what the signal
would have done without wattwise, after saving the runs:

* **the signal's default action** (SIGTERM and SIGHUP unless the program set a handler): every running tracker is
  stopped (status ``incomplete``, error ``terminated by SIGTERM``), its record stored, then the default disposition
  is restored and the signal raised again, so the process ends exactly as it would have (killed by the signal,
  exit status 128 + N seen by the shell);
* **a handler the program installed**: each running tracker notes the signal and writes a checkpoint at once, then
  the program's handler runs. If it ends the program (SystemExit, KeyboardInterrupt, an exception), the tracker's
  ``__exit__`` or the exit hook stores the run as ``incomplete`` with the signal named; if the program goes on, so
  does the run, with a note;
* **Python's own SIGINT handler** (KeyboardInterrupt) is left in place, so a Ctrl-C traceback is the program's own,
  with no wattwise frame in it: ``__exit__`` or the exit hook stores the run as ``incomplete``, "interrupted";
* **an ignored signal** (``nohup``, ``SIG_IGN``) stays ignored: no handler is installed for it.

**A main thread stuck in C.** Python runs a signal handler only when the main thread returns to the interpreter, and
a long C call (a CUDA kernel launch queue, a big NumPy or hashing call) may take minutes; Kubernetes and Slurm
SIGKILL a job that does not end within their grace period. So, where no one else uses it (asyncio does), the guard
sets Python's *wakeup fd*: the C-level handler writes the signal's number to a pipe, a watcher thread reads it at
once and, for a signal whose action is the default one, finalises the runs and ends the process itself. A forked
child drops the wakeup fd (``os.register_at_fork``): its signals are its own.

Finalising runs in a helper thread that the handler waits for, at most :data:`FINALISE_WAIT_S`: Python runs the
handler in the main thread between two bytecodes, possibly while that thread holds a lock the tracker needs, and
a handler must never deadlock the process it is asked to end. If the wait runs out, the run keeps its last
checkpoint (at most ``flush_s`` old) and a later reader marks it incomplete.

Handlers can only be set from the main thread; a tracker started elsewhere relies on the exit hook and on its
checkpoints. When the last tracker stops, the previous handlers are put back (unless the program has replaced
ours in the meantime: then its own stay). The guard is created per process on first use and keeps no state once
no tracker runs, so nothing needs resetting between tests.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import signal
import sys
import threading
from collections.abc import Callable
from types import FrameType
from typing import Any, Protocol

__all__ = ["FINALISE_WAIT_S", "HANDLED_SIGNALS", "Finalisable", "ProcessGuard", "guard"]

FINALISE_WAIT_S = 5.0  # how long a signal handler waits for the runs to be stored (Slurm's default KillWait is 30 s)
HANDLED_SIGNALS: tuple[str, ...] = ("SIGTERM", "SIGHUP", "SIGINT")
_Handler = Callable[[int, FrameType | None], Any] | int | signal.Handlers | None


class Finalisable(Protocol):
    """What the guard needs of a tracker."""

    def on_signal(self, signum: int) -> None:
        """A signal arrived that the program handles itself: note it and checkpoint now."""
        ...

    def finalise(self, why: str) -> None:
        """Stop and store the run as incomplete, ``why`` being its error line; never raise."""
        ...


class ProcessGuard:
    """The handlers and exit hook that finalise running trackers (see the module docstring)."""

    def __init__(self) -> None:
        self._pid = os.getpid()  # a forked child inherits the handlers, not the runs: it must not finalise them
        self._lock = threading.RLock()
        self._running: list[Finalisable] = []
        self._previous: dict[int, _Handler] = {}
        self._exit_hook = False
        self._wakeup: tuple[int, int] | None = None  # (read, write) ends of the wakeup pipe, when ours is set

    # -- registration ---------------------------------------------------------------------------------------

    def enter(self, tracker: Finalisable) -> bool:
        """Watch ``tracker`` until :meth:`leave`. Returns whether signal handlers are in place for it."""
        with self._lock:
            self._running.append(tracker)
            if not self._exit_hook:
                atexit.register(self._at_exit)
                self._exit_hook = True
            if threading.current_thread() is not threading.main_thread():
                return bool(self._previous)
            for name in HANDLED_SIGNALS:
                signum = getattr(signal, name, None)
                if signum is None:
                    continue
                current = signal.getsignal(signum)
                if current == self._on_signal:
                    continue  # ours already (a program may have chained to it: _previous is kept for that)
                owner = getattr(current, "__self__", None)
                if isinstance(owner, ProcessGuard):  # a forked child inherited its parent's guard: look through it
                    current = owner._previous.get(signum, signal.SIG_DFL)
                if current in (signal.SIG_IGN, None, signal.default_int_handler):
                    continue  # ignored stays ignored; a C-level handler is not ours; KeyboardInterrupt needs no help
                with contextlib.suppress(ValueError, OSError):
                    signal.signal(signum, self._on_signal)
                    self._previous[signum] = current
            if self._previous and self._wakeup is None:
                self._start_watcher()
            return bool(self._previous)

    def _start_watcher(self) -> None:
        """Set the wakeup fd to a pipe of ours and read it from a thread (main thread only; see the docstring)."""
        previous_fd = signal.set_wakeup_fd(-1)
        if previous_fd != -1:  # someone else's (an asyncio loop): leave it; the Python-level handlers still work
            signal.set_wakeup_fd(previous_fd)
            return
        read_fd, write_fd = os.pipe()
        os.set_blocking(write_fd, False)
        signal.set_wakeup_fd(write_fd, warn_on_full_buffer=False)
        self._wakeup = (read_fd, write_fd)
        _forget_wakeup_in_children()
        threading.Thread(target=self._watch, args=(read_fd,), name="wattwise-signal-watcher", daemon=True).start()

    def _stop_watcher(self) -> None:
        if self._wakeup is None:
            return
        _, write_fd = self._wakeup  # the watcher closes the read end
        self._wakeup = None
        current = signal.set_wakeup_fd(-1)
        if current not in (-1, write_fd):  # replaced by someone since: theirs stays
            signal.set_wakeup_fd(current)
        with contextlib.suppress(OSError):
            os.write(write_fd, b"\0")  # wakes the watcher, which closes the read end
        os.close(write_fd)

    def _watch(self, read_fd: int) -> None:
        """Act on signals whose default action ends the process, even while the main thread is stuck in C."""
        try:
            while True:
                try:
                    data = os.read(read_fd, 64)
                except InterruptedError:
                    continue
                if not data or 0 in data:
                    return
                for signum in data:
                    if os.getpid() == self._pid and self._previous.get(signum) == signal.SIG_DFL and self.running():
                        self._on_signal(signum, None)  # finalise, then the default action: the process ends here
        except OSError:
            return
        finally:
            with contextlib.suppress(OSError):
                os.close(read_fd)

    def leave(self, tracker: Finalisable) -> None:
        """Stop watching ``tracker``; the last one out puts the previous handlers back."""
        with self._lock:
            with contextlib.suppress(ValueError):
                self._running.remove(tracker)
            if self._running or not self._previous:
                return
            if threading.current_thread() is not threading.main_thread():
                return  # handlers can only change in the main thread; ours stay, and do nothing with no run
            self._stop_watcher()
            for signum, previous in list(self._previous.items()):
                # put the previous handler back only where ours is still the one installed; where the program has
                # installed its own since, it may chain to ours: we keep the previous handler, so that a call that
                # reaches us later still does what it would have done (with no run to finalise)
                if signal.getsignal(signum) == self._on_signal:
                    with contextlib.suppress(ValueError, OSError, TypeError):
                        signal.signal(signum, previous)
                    del self._previous[signum]

    def running(self) -> list[Finalisable]:
        with self._lock:
            return list(self._running)

    # -- what happens when a signal comes ---------------------------------------------------------------------

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        previous = self._previous.get(signum, signal.SIG_DFL)
        name = signal.Signals(signum).name
        trackers = self.running() if os.getpid() == self._pid else []
        if callable(previous):
            if trackers:
                self._bounded(lambda: _each(trackers, lambda t: t.on_signal(signum)))
            previous(signum, frame)  # the program's own handler: it decides what happens next
            return
        if previous == signal.SIG_IGN:  # pragma: no cover - ignored signals get no handler
            return
        if trackers:
            self._bounded(lambda: _each(trackers, lambda t: t.finalise(f"terminated by {name}")))
        with contextlib.suppress(ValueError, OSError):
            signal.signal(signum, signal.SIG_DFL)
        os.kill(os.getpid(), signum)  # the default action: the process ends as it would have without wattwise

    def _at_exit(self) -> None:
        if os.getpid() != self._pid:  # a forked child exiting: the runs are its parent's
            return
        why = "the process exited before the run was stopped"
        last = getattr(sys, "last_type", None)  # set when the interpreter printed an uncaught exception
        if last is not None:
            why = (
                f"interrupted ({last.__name__})" if issubclass(last, KeyboardInterrupt) else f"{why} ({last.__name__})"
            )
        for tracker in self.running():
            tracker.finalise(why)

    @staticmethod
    def _bounded(work: Callable[[], object]) -> None:
        """``work`` in a helper thread, waited for at most FINALISE_WAIT_S (see the module docstring)."""
        done = threading.Event()

        def run() -> None:
            try:
                work()
            finally:
                done.set()

        helper = threading.Thread(target=run, name="wattwise-finalise", daemon=True)
        helper.start()
        done.wait(FINALISE_WAIT_S)


def _each(trackers: list[Finalisable], action: Callable[[Finalisable], None]) -> None:
    for tracker in trackers:
        action(tracker)


_GUARDS: dict[int, ProcessGuard] = {}  # one per process id: a forked child gets its own
_AT_FORK = [False]  # the at-fork hook is registered once per interpreter


def _forget_wakeup_in_children() -> None:
    """In a forked child, the parent's wakeup pipe is not the child's: drop it (its own guard may set one)."""
    if _AT_FORK[0] or not hasattr(os, "register_at_fork"):
        return
    _AT_FORK[0] = True

    def in_child() -> None:
        for inherited in list(_GUARDS.values()):
            if inherited._wakeup is not None:
                with contextlib.suppress(ValueError, OSError):
                    signal.set_wakeup_fd(-1)
                for fd in inherited._wakeup:
                    with contextlib.suppress(OSError):
                        os.close(fd)
                inherited._wakeup = None

    os.register_at_fork(after_in_child=in_child)


def guard() -> ProcessGuard:
    """This process's guard, created on first use (a forked child starts with none of its parent's runs)."""
    pid = os.getpid()
    found = _GUARDS.get(pid)
    if found is None:
        found = _GUARDS.setdefault(pid, ProcessGuard())
    return found
