"""What ``wattwise run`` does as the supervisor of a command's process tree (Linux; elsewhere it does without).

* **Subreaper.** ``wattwise run`` marks itself a child subreaper (``prctl(PR_SET_CHILD_SUBREAPER)``), so a process
  the command starts in the background and leaves behind (``sh -c 'job & echo started'``) is adopted by wattwise
  instead of init: it stays in the measured tree, and wattwise waits for it, until every descendant has exited.
* **Watchdog.** If ``wattwise run`` itself is killed with SIGKILL (or the OOM killer), nothing of it runs any more:
  no record can be finalised (readers mark the run ``incomplete`` at its last checkpoint), and the command would
  go on unobserved. A small watchdog process, started first and detached from wattwise (its own session, not a
  child), holds the read end of a pipe whose write end only wattwise holds, and is told the tree's pids (with their
  start times, so a reused pid is never signalled) four times a second. When the pipe closes without wattwise
  having said ``done``, the watchdog sends SIGTERM to every process of the tree still alive, waits the grace
  period (``kill_grace_s``), sends SIGKILL to those left, says so on stderr and exits. So a killed ``wattwise run``
  never leaves its command running unmeasured.
* **Temporary files.** The epoch socket's directory is named ``wattwise-<pid>-…``; at every start, such directories
  of this user whose process is gone (a ``kill -9`` left them) are removed.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import os
import re
import stat
import sys
import tempfile
import threading
from collections.abc import Callable
from pathlib import Path

__all__ = ["TEMP_PREFIX", "Watchdog", "clean_stale_temp", "set_child_subreaper", "start_time"]

TEMP_PREFIX = "wattwise-"
_TEMP_NAME = re.compile(r"wattwise-([0-9]{1,10})-[A-Za-z0-9_]+")
_PR_SET_CHILD_SUBREAPER = 36  # linux/prctl.h
# how often the watchdog learns the tree: a process started and orphaned in the last quarter second before a
# kill -9 may escape it (the watchdog also follows the children of the processes it knows)
_FEED_S = 0.25

# The watchdog, run as ``python -I -S -c`` (standard library only). argv: owner pid, grace seconds.
_WATCHDOG = r"""
import os, signal, sys, time
if os.fork():
    os._exit(0)
os.setsid()
for name in ("SIGINT", "SIGHUP", "SIGQUIT", "SIGTSTP", "SIGTTIN", "SIGTTOU"):
    signal.signal(getattr(signal, name), signal.SIG_IGN)
owner, grace = int(sys.argv[1]), float(sys.argv[2])
tree, buf = {}, b""
while True:
    try:
        chunk = os.read(0, 65536)
    except InterruptedError:
        continue
    except OSError:
        chunk = b""
    if not chunk:
        break
    buf += chunk
    *lines, buf = buf.split(b"\n")
    for line in lines:
        if line == b"done":
            os._exit(0)
        words = line.split()
        if words[:1] == [b"pids"]:
            tree = {int(p): int(s) for p, s in (w.split(b":") for w in words[1:])}
def start(pid):
    try:
        text = open("/proc/%d/stat" % pid, "rb").read()
    except OSError:
        return None
    fields = text[text.rfind(b")") + 2:].split()
    return None if fields[0] == b"Z" else int(fields[19])
def children(pid):
    found = []
    try:
        tids = os.listdir("/proc/%d/task" % pid)
    except OSError:
        return found
    for tid in tids:
        try:
            found += [int(c) for c in open("/proc/%d/task/%s/children" % (pid, tid)).read().split()]
        except (OSError, ValueError):
            pass
    return found
def alive():
    return [p for p, s in tree.items() if start(p) == s]
stack = alive()
while stack:  # processes started since the last update: descendants of the ones we know
    for child in children(stack.pop()):
        if child not in tree:
            first = start(child)
            if first is not None:
                tree[child] = first
                stack.append(child)
targets = alive()
if targets:
    for pid in targets:
        try:
            os.kill(pid, signal.SIGTERM)
        except OSError:
            pass
    deadline = time.monotonic() + grace
    while alive() and time.monotonic() < deadline:
        time.sleep(0.05)
    left = alive()
    for pid in left:
        try:
            os.kill(pid, signal.SIGKILL)
        except OSError:
            pass
    how = "SIGTERM" + (", then SIGKILL for %d" % len(left) if left else "")
    sys.stderr.write(
        "wattwise: watchdog: wattwise run (pid %d) ended without finishing its run; its command's %d process(es) "
        "were ended (%s)\n" % (owner, len(targets), how)
    )
"""


def set_child_subreaper() -> bool:
    """Make this process a child subreaper (Linux ≥ 3.4); False where that is not possible."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        return int(libc.prctl(_PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)) == 0
    except (OSError, AttributeError):
        return False


def start_time(pid: int, proc_root: Path = Path("/proc")) -> int | None:
    """The process's start time in clock ticks since boot (``/proc/<pid>/stat`` field 22): with the pid, it names
    one process for good, where a pid alone may be reused. None if it is gone or a zombie."""
    try:
        text = (proc_root / str(pid) / "stat").read_bytes()
    except OSError:
        return None
    fields = text[text.rfind(b")") + 2 :].split()
    if len(fields) < 20 or fields[0] == b"Z":
        return None
    return int(fields[19])


class Watchdog:
    """The detached watchdog of the module docstring. ``start`` spawns it; ``watch`` feeds it the tree; ``done``
    tells it the run ended normally. ``intermediate`` is the pid of the short-lived process that detaches it:
    the caller reaps it (``reap``) before becoming a subreaper, so the watchdog is never adopted by wattwise."""

    def __init__(self, write_fd: int, intermediate: int) -> None:
        self._fd = write_fd
        self.intermediate = intermediate
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self._sent = ""

    @classmethod
    def start(cls, grace_s: float) -> Watchdog | None:
        """Spawn the watchdog (Linux with /proc only); None where it cannot run here, or need not: as process 1 of
        a PID namespace (a container without an init), wattwise would adopt the detached watchdog itself, and when
        process 1 dies the kernel ends every process of the namespace anyway. Nor where /proc is an outer PID
        namespace's: the watchdog reads /proc by the pids it is told, which would name other processes there."""
        if not sys.platform.startswith("linux") or not Path("/proc/self/stat").exists() or os.getpid() == 1:
            return None
        from wattwise.devices.pidns import procfs_is_own

        if not procfs_is_own():
            return None
        read_fd, write_fd = os.pipe()
        try:
            pid = os.posix_spawn(
                sys.executable,
                [sys.executable, "-I", "-S", "-c", _WATCHDOG, str(os.getpid()), f"{grace_s:g}"],
                {"PATH": os.environ.get("PATH", "/usr/bin:/bin")},
                file_actions=[(os.POSIX_SPAWN_DUP2, read_fd, 0)],
                setsigmask=set(),
            )
        except OSError:
            os.close(write_fd)
            return None
        finally:
            os.close(read_fd)
        return cls(write_fd, pid)

    def reap(self) -> None:
        """Wait for the detaching process to exit (a few ms after it started)."""
        with contextlib.suppress(ChildProcessError, OSError):
            os.waitpid(self.intermediate, 0)

    def watch(self, tree: Callable[[], list[int]]) -> None:
        """From now on, tell the watchdog ``tree()`` (the pids to end if wattwise dies) every ``_FEED_S``."""

        def loop() -> None:
            while True:
                self.update(tree())
                if self._stop.wait(_FEED_S):
                    return

        self._thread = threading.Thread(target=loop, name="wattwise-watchdog", daemon=True)
        self._thread.start()

    def update(self, pids: list[int]) -> None:
        pairs = [(pid, start_time(pid)) for pid in pids]
        line = "pids " + " ".join(f"{pid}:{start}" for pid, start in pairs if start is not None)
        self._send(line)

    def done(self) -> None:
        """The run ended normally: the watchdog exits without touching anything."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        self._send("done", force=True)
        with self._lock:
            if self._fd >= 0:
                os.close(self._fd)
                self._fd = -1

    def _send(self, line: str, *, force: bool = False) -> None:
        with self._lock:
            if self._fd < 0 or (line == self._sent and not force):
                return
            with contextlib.suppress(OSError):  # the watchdog is gone: nothing to tell
                os.write(self._fd, (line + "\n").encode())
                self._sent = line


def clean_stale_temp(tmp: Path | None = None) -> int:
    """Remove ``wattwise-<pid>-*`` directories of this user whose process is gone; how many were removed."""
    base = Path(tmp) if tmp is not None else Path(tempfile.gettempdir())
    removed = 0
    try:
        entries = list(base.iterdir())
    except OSError:
        return 0
    uid = os.getuid() if hasattr(os, "getuid") else None
    for entry in entries:
        match = _TEMP_NAME.fullmatch(entry.name)
        if match is None:
            continue
        try:
            info = entry.lstat()
            if (uid is not None and info.st_uid != uid) or not stat.S_ISDIR(info.st_mode):
                continue  # another user's, or a link or file planted in a shared /tmp: never touched
            if _alive(int(match[1])):
                continue
            for child in entry.iterdir():
                if child.name == "epochs.sock":
                    child.unlink()
            entry.rmdir()
            removed += 1
        except OSError:
            continue
    return removed


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (OSError, OverflowError, ValueError):
        return True  # another user's process, or no valid pid: leave it alone
    return True
