"""``wattwise run -- COMMAND``: run a command, measure it and its children until they exit, keep the record.

The tracker measures this process's tree, which holds the command and everything it starts. Signals: SIGTERM,
SIGHUP and SIGQUIT sent to wattwise are forwarded to the command. Ctrl-C in a terminal already reaches the
command (same foreground process group), so it is not sent twice; a SIGINT from elsewhere is forwarded. A third
interrupt kills the command. However the command ends, the run is stored (``incomplete`` when interrupted or
killed by a signal, ``failed`` on a non-zero exit), and wattwise exits with the command's own code (128 + N for
a command killed by signal N, as shells do).
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING

from wattwise.errors import CommandError
from wattwise.measure.epochs import EpochListener

if TYPE_CHECKING:
    from wattwise.measure.tracker import Tracker
    from wattwise.records import Run

_FORWARDED = tuple(
    getattr(signal, name) for name in ("SIGINT", "SIGTERM", "SIGHUP", "SIGQUIT") if hasattr(signal, name)
)


def resolve_command(argv: Sequence[str]) -> str:
    """The executable ``argv[0]`` names, or a CommandError that says what to check."""
    if not argv:
        raise CommandError("no command given; usage: wattwise run [options] -- COMMAND [ARGS...]")
    program = argv[0]
    if os.sep in program or (os.altsep and os.altsep in program):
        path = Path(program)
        if not path.exists():
            raise CommandError(f"command not found: {program} (no such file)")
        if path.is_dir() or not os.access(path, os.X_OK):
            raise CommandError(f"cannot execute {program}: not an executable file (chmod +x it?)")
        return program
    found = shutil.which(program)
    if found is None:
        raise CommandError(f"command not found: {program} (check the spelling, or that it is on PATH)")
    return found


def _terminal_delivers_sigint() -> bool:
    """True when we are the terminal's foreground process group: Ctrl-C then reaches the command directly."""
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


@dataclass
class _Signals:
    """Forwards signals to the child; counts interrupts."""

    proc: subprocess.Popen[bytes] | None = None
    sigint_from_terminal: bool = False
    received: list[int] = field(default_factory=list)
    _previous: dict[int, object] = field(default_factory=dict)

    def install(self) -> None:
        for signum in _FORWARDED:
            self._previous[signum] = signal.signal(signum, self._handle)

    def restore(self) -> None:
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)  # type: ignore[arg-type]

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        self.received.append(signum)
        proc = self.proc
        if proc is None or proc.poll() is not None:
            return
        if len(self.received) >= 3:
            proc.kill()
        elif not (signum == signal.SIGINT and self.sigint_from_terminal):
            proc.send_signal(signum)


def _visible(line: bytes) -> str:
    """What a terminal leaves on screen for one line: the text after its last carriage return. A pty turns
    every newline into CR LF, so a trailing CR is not one of those."""
    return line.rstrip(b"\r").rsplit(b"\r", 1)[-1].decode(errors="replace")


def _relay(fd: int, write: Callable[[str], None]) -> None:
    """Copy a pty's output to ``write`` line by line, keeping what a terminal shows after carriage returns."""
    pending = b""
    while True:
        try:
            chunk = os.read(fd, 65536)
        except OSError:
            break
        if not chunk:
            break
        pending += chunk
        *lines, pending = pending.split(b"\n")
        for line in lines:
            write(_visible(line) + "\n")
    if pending:
        write(_visible(pending) + "\n")


class _Ticker:
    """Calls ``on_tick`` every ``tick_s`` seconds from a thread, so the main thread can block on the child."""

    def __init__(self, on_tick: Callable[[], None], tick_s: float) -> None:
        self._on_tick = on_tick
        self._tick_s = tick_s
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="wattwise-live", daemon=True)
        self._thread.start()

    def _loop(self) -> None:
        while not self._stop.wait(self._tick_s):
            self._on_tick()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()


def _epoch_listener(tracker: Tracker) -> EpochListener | None:
    """Listen for ``wattwise.report_epoch()`` calls from the command (Unix only)."""
    if not hasattr(socket, "AF_UNIX"):
        return None

    def on_epoch(planned: int | None) -> None:
        if planned is not None and tracker.epochs_planned is None:
            tracker.epochs_planned = planned
        if tracker.running:
            tracker.epoch_end()

    return EpochListener(on_epoch)


@dataclass(frozen=True)
class CommandResult:
    exit_code: int
    run: Run


def run_command(
    argv: Sequence[str],
    tracker: Tracker,
    *,
    output: Callable[[str], None] | None = None,
    on_tick: Callable[[], None] | None = None,
    tick_s: float = 0.5,
) -> CommandResult:
    """Run ``argv`` under ``tracker`` (not yet started). ``output`` set: the command writes to a pty whose
    lines go to ``output`` (for the live panel); otherwise it inherits this process's stdout and stderr."""
    executable = resolve_command(argv)
    tracker.start()
    signals = _Signals(sigint_from_terminal=_terminal_delivers_sigint())
    signals.install()
    relay: threading.Thread | None = None
    master = -1
    listener = _epoch_listener(tracker)
    env = {**os.environ, **(listener.env() if listener is not None else {})}
    try:
        try:
            if output is not None:
                import pty

                master, slave = pty.openpty()
                try:
                    proc = subprocess.Popen([executable, *argv[1:]], stdout=slave, stderr=slave, env=env)
                finally:
                    os.close(slave)
                relay = threading.Thread(target=_relay, args=(master, output), daemon=True)
                relay.start()
            else:
                proc = subprocess.Popen([executable, *argv[1:]], env=env)
        except OSError as exc:
            run = tracker.stop("failed", error=f"could not start {argv[0]}: {exc.strerror}", exit_code=126)
            raise CommandError(f"cannot execute {argv[0]}: {exc.strerror} (run {run.id} recorded as failed)") from exc
        signals.proc = proc
        ticker = _Ticker(on_tick, tick_s) if on_tick is not None else None
        try:
            proc.wait()  # blocks until exit (signal handlers still run: PEP 475 retries the wait)
        finally:
            if ticker is not None:
                ticker.stop()
        if relay is not None:
            relay.join(timeout=2.0)
    finally:
        signals.restore()
        if listener is not None:
            listener.close()
        if master >= 0:
            os.close(master)
    code = proc.returncode
    exit_code = 128 - code if code < 0 else code
    received = ", ".join(dict.fromkeys(signal.Signals(s).name for s in signals.received))
    if code < 0:
        name = signal.Signals(-code).name
        why = f"command killed by {name}" + (f" after wattwise received {received}" if received else "")
        run = tracker.stop("incomplete", error=why, exit_code=exit_code)
    elif signals.received:
        run = tracker.stop("incomplete", error=f"interrupted by {received}", exit_code=exit_code)
    elif code != 0:
        run = tracker.stop("failed", error=f"command exited with code {code}", exit_code=exit_code)
    else:
        run = tracker.stop("complete", exit_code=0)
    return CommandResult(exit_code=exit_code, run=run)
