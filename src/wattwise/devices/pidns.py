"""PID namespaces: which numbering ``/proc`` uses, which one NVML uses, and how to go from ours to theirs.

A process has one pid in each PID namespace it belongs to, from the outermost (the host's) down to its own. The
kernel shows them in ``/proc/<pid>/status`` as ``NSpid``, leftmost the pid in the namespace of whoever mounted
that procfs (proc(5)). Three cases matter:

* **host**: wattwise runs in the initial namespace; ``os.getpid()``, ``/proc`` and NVML all agree.
* **outer /proc** (``unshare --pid --fork`` without remounting /proc, some sandboxes): ``/proc`` numbers processes
  as an outer namespace does, so ``/proc/<os.getpid()>`` is another process. Pids are translated with ``NSpid``
  both ways; NVML's pids (the host's) match the ``/proc`` numbering where that procfs is the host's.
* **own /proc** in a namespace (Docker, Kubernetes): ``/proc`` agrees with ``os.getpid()``, but NVML reports the
  host's pids, which nothing here can map: per-process GPU attribution is impossible.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal

__all__ = ["PidNamespace", "from_procfs", "nspid", "pid_namespace", "procfs_is_own", "to_procfs"]

INIT_PID_NS = "pid:[4026531836]"  # the initial PID namespace's inode is fixed (PROC_PID_INIT_INO, Linux >= 3.8)
PidNamespace = Literal["host", "mapped", "unmappable", "unknown"]


def nspid(pid: int | str, proc_root: Path = Path("/proc")) -> list[int] | None:
    """``NSpid`` of ``/proc/<pid>``: the process's pids from the procfs's namespace inwards; None if unknown."""
    try:
        with open(f"{proc_root}/{pid}/status", "rb") as f:  # noqa: PTH123 (called per process: no Path objects)
            text = f.read(65536).decode(errors="replace")
    except OSError:
        return None
    for line in text.splitlines():
        if line.startswith("NSpid:"):
            try:
                return [int(word) for word in line.split()[1:]]
            except ValueError:
                return None
    return None


def procfs_is_own(proc_root: Path = Path("/proc")) -> bool:
    """True where ``proc_root`` numbers processes as this process does (its own ``NSpid`` has one entry, or the
    kernel is too old to say: then it is assumed, as every tool did before NSpid)."""
    mine = nspid("self", proc_root)
    return mine is None or len(mine) <= 1


def to_procfs(pid: int, proc_root: Path = Path("/proc")) -> int | None:
    """``pid`` (as this process numbers it: itself or a descendant) as ``proc_root`` numbers it; None if not found."""
    mine = nspid("self", proc_root)
    if mine is None or len(mine) <= 1:
        return pid
    if pid == os.getpid():
        return mine[0]
    depth = len(mine) - 1
    stack = [mine[0]]
    seen: set[int] = set()
    while stack:  # our descendants, through the children files (where the kernel has them)
        current = stack.pop()
        if current in seen:
            continue
        seen.add(current)
        entries = nspid(current, proc_root)
        if current != mine[0] and entries is not None and len(entries) > depth and entries[depth] == pid:
            return current
        stack.extend(_children(current, proc_root))
    for name in os.listdir(proc_root):  # noqa: PTH208 (a kernel without children files: scan every process)
        if name.isdigit():
            entries = nspid(name, proc_root)
            same = entries is not None and len(entries) > depth and entries[depth] == pid
            # the same number at our depth in a sibling namespace is another process: it must descend from us
            if same and _descends_from(int(name), mine[0], proc_root):
                return int(name)
    return None


def _descends_from(pid: int, ancestor: int, proc_root: Path) -> bool:
    for _ in range(256):
        if pid == ancestor:
            return True
        try:
            with open(f"{proc_root}/{pid}/stat", "rb") as f:  # noqa: PTH123
                text = f.read(4096)
            pid = int(text[text.rfind(b")") + 2 :].split()[1])
        except (OSError, ValueError, IndexError):
            return False
        if pid <= 1:
            return ancestor == pid
    return False


def from_procfs(pid: int, proc_root: Path = Path("/proc")) -> int | None:
    """``pid`` as ``proc_root`` numbers it, as this process numbers it; None for a process outside our namespace."""
    mine = nspid("self", proc_root)
    if mine is None or len(mine) <= 1:
        return pid
    entries = nspid(pid, proc_root)
    depth = len(mine) - 1
    return entries[depth] if entries is not None and len(entries) > depth else None


def _children(pid: int, proc_root: Path) -> list[int]:
    found: list[int] = []
    try:
        tids = os.listdir(f"{proc_root}/{pid}/task")  # noqa: PTH208
    except OSError:
        return found
    for tid in tids:
        try:
            with open(f"{proc_root}/{pid}/task/{tid}/children", "rb") as f:  # noqa: PTH123
                found.extend(int(word) for word in f.read().split())
        except (OSError, ValueError):
            continue
    return found


def pid_namespace(proc_root: Path = Path("/proc")) -> tuple[PidNamespace, str | None]:
    """Whether NVML's pids (always the host's) can be matched to the run's processes, and a note where not plainly.

    ``host``: the initial PID namespace. ``mapped``: a nested namespace whose /proc is an outer one's: the run's
    pids are read in that numbering. ``unmappable``: a container with its own /proc. ``unknown``: the kernel does
    not say.
    """
    try:
        link: str | None = str((proc_root / "self" / "ns" / "pid").readlink())
    except OSError:
        link = None
    mine = nspid("self", proc_root)
    if link == INIT_PID_NS:
        return "host", None
    if mine is not None and len(mine) > 1:
        return "mapped", (
            "in a PID namespace whose /proc is an outer namespace's: the run's processes are read in that numbering "
            "(NSpid), which NVML's pids match where that /proc is the host's"
        )
    if link is not None:
        return "unmappable", (
            "in a container with its own /proc: NVML reports the host's pids, which cannot be matched to the run's "
            "processes here, so each GPU the run sees is charged whole from the start (to attribute per process, "
            "share the host's PID namespace, e.g. docker run --pid=host)"
        )
    if mine is None:
        return "unknown", (
            "this kernel does not say whether wattwise runs in a PID namespace: if it does (a container), NVML's "
            "host pids cannot be matched and GPUs shared with other processes are charged whole"
        )
    return "host", None
