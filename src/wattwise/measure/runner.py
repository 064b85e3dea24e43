"""``wattwise run -- COMMAND``: run a command, measure it and its children until they exit, keep the record.

The tracker measures this process's tree, which holds the command and everything it starts. Signals are relayed
by :class:`~wattwise.measure.signals.SignalRelay` (forward what was sent to wattwise, never repeat what the
terminal already delivered; SIGKILL the tree ``kill_grace_s`` after a SIGTERM or SIGHUP it ignores). The command is
started with ``posix_spawn`` so that it gets a clean signal mask. However the command ends, the run is stored
(``incomplete`` when interrupted or killed by a signal, ``failed`` on a non-zero exit), and wattwise exits with the
command's own code (128 + N for a command killed by signal N, as shells do; 128 + N too when wattwise got signal
N and had to kill a command that ignored it).

**Background processes.** With ``supervise=True`` (what the CLI passes: wattwise owns its process), wattwise is a
child subreaper and waits until *every* process of the tree has exited, including those the command left running
in the background: they are measured until they end. ``wait_descendants=False`` stops with the command instead,
and the record names the processes still running. A watchdog ends the tree if wattwise itself is killed
(:mod:`wattwise.measure.supervise`). In-process callers (tests, notebooks) keep ``supervise=False``: a library must
not reap its host's other children.
"""

from __future__ import annotations

import contextlib
import os
import select
import shutil
import signal
import socket
import sys
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from wattwise.devices.host import descendants
from wattwise.errors import CommandError, StoreError
from wattwise.measure.epochs import EpochListener
from wattwise.measure.pauses import PauseController
from wattwise.measure.signals import SignalRelay
from wattwise.measure.supervise import Watchdog, clean_stale_temp, set_child_subreaper
from wattwise.validate import EPOCHS

if TYPE_CHECKING:
    from wattwise.measure.tracker import Tracker
    from wattwise.records import Run, RunStatus

# Python ignores these at start-up; a command must not inherit that (`yes | head` would print "Broken pipe"), so
# they go back to their default, as the subprocess module's restore_signals does
_RESTORED = frozenset(int(getattr(signal, n)) for n in ("SIGPIPE", "SIGXFSZ", "SIGXFZ") if hasattr(signal, n))
_PARTIAL_FLUSH_S = 0.5  # show a line without its newline (a prompt, a progress bar) after this long
_MAX_PENDING = 64 * 1024


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


def _visible(line: bytes) -> str:
    """What a terminal leaves on screen for one line: the text after its last carriage return. A pty turns
    every newline into CR LF, so a trailing CR is not one of those."""
    return line.rstrip(b"\r").rsplit(b"\r", 1)[-1].decode(errors="replace")


def _relay(fd: int, write: Callable[[str], None]) -> None:
    """Copy a pty's output to ``write`` line by line (what a terminal shows after carriage returns). A partial
    line (a prompt, a progress bar) is shown once the command has been quiet for half a second."""
    pending = b""
    while True:
        ready, _, _ = select.select([fd], [], [], _PARTIAL_FLUSH_S if pending else None)
        if not ready:
            write(_visible(pending) + "\n")
            pending = b""
            continue
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
        if len(pending) > _MAX_PENDING:
            write(_visible(pending) + "\n")
            pending = b""
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
    """Listen for ``wattwise.report_epoch()`` and ``wattwise.report_work()`` calls from the command (Unix only)."""
    if not hasattr(socket, "AF_UNIX"):
        return None

    def on_epoch(planned: int | None) -> None:
        if planned is not None and not EPOCHS.contains(planned):
            tracker.note(f"ignored a planned epoch count of {planned}: it must be {EPOCHS.describe()}")
            planned = None
        if planned is not None and tracker.epochs_planned is None:
            tracker.epochs_planned = planned
        if tracker.running:
            tracker.epoch_end()

    def on_work(tokens: float, requests: float, prompt_tokens: float) -> None:
        tracker.count(tokens=tokens, requests=requests, prompt_tokens=prompt_tokens)

    return EpochListener(on_epoch, on_work)


@dataclass(frozen=True)
class CommandResult:
    exit_code: int
    run: Run


def run_command(
    argv: Sequence[str],
    tracker: Tracker,
    *,
    relay: SignalRelay | None = None,
    output: Callable[[str], None] | None = None,
    on_tick: Callable[[], None] | None = None,
    tick_s: float = 0.5,
    supervise: bool = False,
    wait_descendants: bool = True,
    pauses: PauseController | None = None,
) -> CommandResult:
    """Run ``argv`` under ``tracker`` (not yet started) and return its exit code and stored run.

    ``relay``: a SignalRelay the caller entered before starting any thread (the CLI does); without one, signals
    are left alone. ``output``: the command writes to a pty whose lines go to ``output`` (for the live panel);
    otherwise it inherits this process's stdout and stderr. A store failure at the end is printed, not raised:
    the command's exit code is what counts, and the record is kept in a file (see ``Tracker.stop``).
    ``pauses``: pauses and resumes the command's tree at planned times (``run --interruptible``).
    """
    executable = resolve_command(argv)
    if output is not None and pauses is not None and pauses.restarts:
        raise ValueError("a command restarted at each slice cannot write to the live panel's terminal")
    watchdog: Watchdog | None = None
    subreaper = False
    if supervise:
        clean_stale_temp()
        watchdog = Watchdog.start(tracker.settings.kill_grace_s)  # detaches while the tracker starts
    try:
        tracker.start()
    finally:
        if watchdog is not None:
            watchdog.reap()  # before becoming a subreaper: the watchdog must not be adopted (and measured)
    if supervise:
        subreaper = set_child_subreaper()
        if not subreaper:
            tracker.note("processes the command leaves in the background are measured only while it runs here")
    if relay is not None and relay.interrupted:
        if watchdog is not None:
            watchdog.done()
        run = _stop(tracker, "incomplete", f"interrupted by {relay.describe()} before the command started", 130)
        return CommandResult(exit_code=130, run=run)
    master = slave = -1
    pump: threading.Thread | None = None
    listener: EpochListener | None = None
    env = dict(os.environ)
    try:
        listener = _epoch_listener(tracker)
        if listener is not None:
            env.update(listener.env())
    except OSError as exc:  # e.g. AF_UNIX path too long under a deep TMPDIR
        tracker.note(f"epoch reports from the command are off: {exc}")
    file_actions: list[tuple[int, int, int] | tuple[int, int]] = []
    try:
        if output is not None:
            import pty

            master, slave = pty.openpty()
            _copy_window_size(slave)
            file_actions = [(os.POSIX_SPAWN_DUP2, slave, 1), (os.POSIX_SPAWN_DUP2, slave, 2)]
        started = time.monotonic()
        ticker = _Ticker(on_tick, tick_s) if on_tick is not None else None

        def command_exited() -> None:
            if pauses is not None:
                pauses.command_exited()  # what the command left behind must not stay stopped
            if relay is not None:
                relay.mark_command_done()

        try:
            while True:
                pid, tree = _spawn(executable, argv, env, file_actions, relay, subreaper, tracker)
                if slave >= 0:
                    os.close(slave)
                    slave = -1
                    pump = threading.Thread(target=_relay, args=(master, output), name="wattwise-output", daemon=True)
                    pump.start()
                if relay is not None:
                    relay.attach(tree)
                    if pauses is not None:
                        relay.on_stop = pauses.release
                if watchdog is not None:
                    watchdog.watch(tree)
                if pauses is not None:
                    if pauses.restart_count == 0 and pauses.pause_count == 0:
                        pauses.start(tree)
                    else:
                        pauses.attach(tree)
                status, waited_s, adopted = _wait(pid, subreaper and wait_descendants, on_command_exit=command_exited)
                if pauses is None or not pauses.exited_on_pause() or (relay is not None and relay.interrupted):
                    break
                if relay is not None:
                    relay.command_done = False
                if not pauses.wait_for_restart(lambda: relay is not None and relay.interrupted):
                    break
                tracker.note(
                    f"the command exited at the plan's pause ({signal.Signals(pauses.pause_signal).name}) and was "
                    f"started again at the next slice (restart {pauses.restart_count})"
                )
        finally:
            if ticker is not None:
                ticker.stop()
            if pauses is not None:
                pauses.stop()
        if adopted:
            tracker.note(
                f"the command left {adopted} process(es) running in the background; they were measured until the "
                f"last one exited, {waited_s:.1f} s after the command"
            )
        survivors = descendants(os.getpid())
        if survivors:
            shown = ", ".join(str(p) for p in survivors[:10])
            tracker.note(
                f"{len(survivors)} process(es) the command started were still running when it exited "
                f"(pids {shown}); they were not measured after that"
            )
        if relay is not None:
            relay.detach()
            for name, at in relay.passed:
                tracker.note(f"{name} was passed on to the command at +{max(0.0, at - started):.1f} s")
        if pump is not None:
            pump.join(timeout=2.0)
    finally:
        if watchdog is not None:
            watchdog.done()
        if listener is not None:
            listener.close()
            if listener.errors:
                tracker.note(
                    f"ignored {len(listener.errors)} report(s) from the command (wattwise.report_epoch/report_work); "
                    f"the first: {listener.errors[0]}"
                )
        for fd in (slave, master):
            if fd >= 0:
                os.close(fd)
    code = os.waitstatus_to_exitcode(status)
    exit_code = 128 - code if code < 0 else code
    received = relay.describe() if relay is not None and relay.interrupted else ""
    if relay is not None and relay.escalated is not None:
        within = f"within {relay.grace_s:g} s of {relay.escalated}"
        if code == -signal.SIGKILL:  # the command itself ignored the signal
            exit_code = 128 + int(getattr(signal, relay.escalated))
            why = f"the command did not exit {within} and was killed (SIGKILL); wattwise got {received}"
        else:  # the command ended; what it left in the background did not
            why = (
                f"processes the command left in the background did not exit {within} and were killed (SIGKILL); "
                f"the command itself exited with code {exit_code}; wattwise got {received}"
            )
        run = _stop(tracker, "incomplete", why, exit_code)
        return CommandResult(exit_code=exit_code, run=run)
    if code < 0:
        why = f"command killed by {signal.Signals(-code).name}" + (
            f" after wattwise got {received}" if received else ""
        )
        run = _stop(tracker, "incomplete", why, exit_code)
    elif received:
        run = _stop(tracker, "incomplete", f"interrupted by {received}", exit_code)
    elif code != 0:
        run = _stop(tracker, "failed", f"command exited with code {code}", exit_code)
    else:
        run = _stop(tracker, "complete", None, 0)
    return CommandResult(exit_code=exit_code, run=run)


def _spawn(
    executable: str,
    argv: Sequence[str],
    env: dict[str, str],
    file_actions: list[tuple[int, int, int] | tuple[int, int]],
    relay: SignalRelay | None,
    subreaper: bool,
    tracker: Tracker,
) -> tuple[int, Callable[[], list[int]]]:
    """Start the command with a clean signal mask; its pid and a function listing its process tree."""
    try:
        pid = os.posix_spawn(
            executable,
            [executable, *argv[1:]],
            env,
            file_actions=file_actions,
            setsigmask=set(),
            setsigdef=(relay.signals if relay is not None else set()) | _RESTORED,
        )
    except OSError as exc:
        run = _stop(tracker, "failed", f"could not start {argv[0]}: {exc.strerror}", 126)
        raise CommandError(f"cannot execute {argv[0]}: {exc.strerror} (run {run.id} recorded as failed)") from exc
    if subreaper:
        return pid, lambda: descendants(os.getpid())
    return pid, lambda: [pid, *descendants(pid)]


def _wait(pid: int, whole_tree: bool, on_command_exit: Callable[[], None] | None = None) -> tuple[int, float, int]:
    """Wait for the command; with ``whole_tree`` (wattwise is a subreaper) also for every process adopted from it.

    Returns the command's wait status, how long after it the last adopted process exited, and how many were
    adopted. Only a subreaper may wait for any child: its children are the command and what it left behind.
    """
    if not whole_tree:
        while True:
            try:
                return os.waitpid(pid, 0)[1], 0.0, 0
            except InterruptedError:  # pragma: no cover - PEP 475 retries, kept for safety
                continue
    status: int | None = None
    ended_at = last_exit = 0.0
    outlived = 0
    notice: threading.Timer | None = None
    try:
        while True:
            try:
                child, child_status = os.waitpid(-1, 0)
            except InterruptedError:  # pragma: no cover
                continue
            except ChildProcessError:  # no children left: the whole tree has exited
                break
            if child == pid:
                status = child_status
                ended_at = time.monotonic()
                if on_command_exit is not None:
                    on_command_exit()
                notice = threading.Timer(_NOTICE_AFTER_S, _say_waiting)
                notice.daemon = True
                notice.start()
            elif status is not None:  # an adopted process that outlived the command
                outlived += 1
                last_exit = time.monotonic()
    finally:
        if notice is not None:
            notice.cancel()
    assert status is not None  # the command is our child: waitpid(-1) returned it before ECHILD
    return status, max(0.0, last_exit - ended_at) if outlived else 0.0, outlived


_NOTICE_AFTER_S = 2.0


def _say_waiting() -> None:
    """Once, when the command has exited but processes it left in the background still run: say what we wait for."""
    left = descendants(os.getpid())
    if not left:
        return
    shown = ", ".join(str(p) for p in left[:5]) + (", …" if len(left) > 5 else "")
    print(
        f"wattwise: the command exited; measuring the {len(left)} process(es) it left running until they exit "
        f"(pids {shown}); Ctrl-C stops them, --leave-descendants does not wait",
        file=sys.stderr,
        flush=True,
    )


def _stop(tracker: Tracker, status: RunStatus, error: str | None, exit_code: int) -> Run:
    """Stop the tracker; a store that refuses the record is reported in one line, not raised."""
    try:
        return tracker.stop(status, error=error, exit_code=exit_code)
    except StoreError as exc:
        from wattwise.report.safe import printable

        print(f"wattwise: error: {printable(exc)}", file=sys.stderr)
        assert tracker.result is not None
        return tracker.result


def _copy_window_size(fd: int) -> None:
    """Give the pty the size of the real terminal, so the command formats for it."""
    with contextlib.suppress(OSError, ImportError, AttributeError):
        import fcntl
        import termios

        size = fcntl.ioctl(sys.stderr.fileno(), termios.TIOCGWINSZ, b"\0" * 8)
        fcntl.ioctl(fd, termios.TIOCSWINSZ, size)
