"""Host and process-tree counters: Linux ``/proc`` read directly (fast, and testable with a fake tree under
``tmp_path``), psutil where there is no ``/proc`` (macOS, Windows).

The tree is the root process and every live descendant. Its CPU time is, per live member, user + system time
plus the CPU time of the children it has reaped (``cutime``/``cstime``), so the sum stays continuous when a
child exits and is reaped by a member of the tree.

The tree's CPU *allocation* (what idle power is charged by, see :func:`~wattwise.devices.base.attribute`) is read
once, when the reader is built: the CPUs the root process may run on (``sched_getaffinity``: a CPU set from
``taskset``, Slurm or a container), capped by its cgroup's CPU quota (``cpu.max`` in cgroup v2,
``cpu.cfs_quota_us``/``cpu.cfs_period_us`` in v1, the tightest along the path).
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Protocol

from wattwise.devices.base import HostSnapshot
from wattwise.devices.pidns import from_procfs, procfs_is_own, to_procfs
from wattwise.errors import ConfigError
from wattwise.units import ticks_to_s

_LOOPBACK_PREFIXES = ("lo",)


class HostReader(Protocol):
    def snapshot(self) -> HostSnapshot: ...


def allowed_cpus(pid: int, proc_root: Path = Path("/proc"), cgroup_root: Path = Path("/sys/fs/cgroup")) -> float | None:
    """How many logical CPUs ``pid`` may use: its affinity set, capped by its cgroup's CPU quota; None if unknown."""
    found: float | None = None
    if hasattr(os, "sched_getaffinity") and proc_root == Path("/proc"):
        try:
            found = float(len(os.sched_getaffinity(pid)))
        except OSError:
            found = None
    quota = _cgroup_quota(pid, proc_root, cgroup_root)
    if quota is not None:
        found = quota if found is None else min(found, quota)
    return found


def _cgroup_quota(pid: int, proc_root: Path, cgroup_root: Path) -> float | None:
    """The tightest CPU quota (in CPUs) on the cgroup path of ``pid``, v2 or v1; None when unlimited or unknown."""
    try:
        lines = (proc_root / str(pid) / "cgroup").read_text().splitlines()
    except OSError:
        return None
    limits: list[float] = []
    for line in lines:
        parts = line.split(":", 2)
        if len(parts) != 3:
            continue
        _, controllers, path = parts
        if controllers == "":  # cgroup v2: 0::/path
            for folder in _along(cgroup_root, path):
                text = _read_small(str(folder / "cpu.max"))
                words = text.split() if text else []
                if len(words) == 2 and words[0] != "max":
                    with contextlib.suppress(ValueError, ZeroDivisionError):
                        limits.append(int(words[0]) / int(words[1]))
        elif "cpu" in controllers.split(","):  # cgroup v1
            for folder in _along(cgroup_root / controllers, path):
                quota, period = (
                    _read_small(str(folder / "cpu.cfs_quota_us")),
                    _read_small(str(folder / "cpu.cfs_period_us")),
                )
                with contextlib.suppress(ValueError, ZeroDivisionError, AttributeError):
                    if int(quota or "-1") > 0:
                        limits.append(int(quota or "0") / int(period or "0"))
    return min(limits) if limits else None


def _along(root: Path, path: str) -> list[Path]:
    """``root/path`` and each of its parents up to ``root``."""
    parts = [p for p in path.strip("/").split("/") if p and p != ".."]
    return [root.joinpath(*parts[:n]) for n in range(len(parts), -1, -1)]


class ProcfsHost:
    """Reads ``/proc/stat``, ``/proc/meminfo``, ``/proc/net/dev`` and ``/proc/<pid>/stat`` under ``proc_root``."""

    def __init__(self, root_pid: int, proc_root: Path = Path("/proc"), ticks_per_s: float | None = None) -> None:
        # ``root_pid`` as this process numbers it; where /proc is an outer PID namespace's (devices.pidns), the tree
        # is read in that numbering, and its pids (``tree_pids``) are that namespace's
        self.root_pid = procfs_pid(root_pid, proc_root)
        self.proc_root = proc_root
        self.ticks_per_s = ticks_per_s or float(os.sysconf("SC_CLK_TCK"))
        self.page_size = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096
        self._mem_total = self._read_mem_total()
        self._root_str = str(proc_root)
        root = self.root_pid
        self._children_files = (proc_root / str(root) / "task" / str(root) / "children").exists()
        self.allowed_cpus = allowed_cpus(root, proc_root)

    @staticmethod
    def available(proc_root: Path = Path("/proc")) -> bool:
        return (proc_root / "stat").is_file()

    def snapshot(self) -> HostSnapshot:
        busy_s, total_s, n_cpus = self._read_stat()
        tree = self._tree()
        tree_cpu_s = 0.0
        rss = 0
        for fields in tree.values():
            # fields start at the one after "(comm)": index 0 = state (field 3 in proc(5)).
            utime, stime, cutime, cstime = (int(fields[i]) for i in (11, 12, 13, 14))
            tree_cpu_s += ticks_to_s(utime + stime + cutime + cstime, self.ticks_per_s)
            rss += int(fields[21]) * self.page_size
        return HostSnapshot(
            t_s=time.monotonic(),
            cpu_busy_s=busy_s,
            cpu_total_s=total_s,
            tree_cpu_s=tree_cpu_s,
            tree_pids=frozenset(tree),
            tree_rss_bytes=rss,
            mem_total_bytes=self._mem_total,
            logical_cpus=n_cpus,
            net_bytes=self._read_net(),
            tree_allowed_cpus=self.allowed_cpus,
        )

    def _read_stat(self) -> tuple[float, float, int]:
        text = (self.proc_root / "stat").read_text()
        n_cpus = 0
        busy_s = total_s = 0.0
        for line in text.splitlines():
            if line.startswith("cpu "):
                values = [int(v) for v in line.split()[1:]]
                # user nice system idle iowait irq softirq steal [guest guest_nice: already in user/nice].
                # Steal is time the hypervisor gave another guest: neither our work nor our idle, so left out.
                idle = values[3] + (values[4] if len(values) > 4 else 0)
                total = sum(values[:7])
                busy_s = ticks_to_s(total - idle, self.ticks_per_s)
                total_s = ticks_to_s(total, self.ticks_per_s)
            elif line.startswith("cpu"):
                n_cpus += 1
        return busy_s, total_s, max(1, n_cpus)

    def _read_mem_total(self) -> int:
        try:
            for line in (self.proc_root / "meminfo").read_text().splitlines():
                if line.startswith("MemTotal:"):
                    return int(line.split()[1]) * 1024
        except OSError:
            pass
        return 0

    def _read_net(self) -> int:
        try:
            lines = (self.proc_root / "net" / "dev").read_text().splitlines()[2:]
        except OSError:
            return 0
        total = 0
        for line in lines:
            iface, _, rest = line.partition(":")
            if iface.strip().startswith(_LOOPBACK_PREFIXES):
                continue
            cols = rest.split()
            if len(cols) >= 9:
                total += int(cols[0]) + int(cols[8])
        return total

    def _stat_fields(self, pid: int) -> list[str] | None:
        text = _read_small(f"{self._root_str}/{pid}/stat")
        if text is None:  # the process exited between listing and reading
            return None
        # comm may contain spaces and parentheses: split after the last ')'.
        return text[text.rfind(")") + 2 :].split()

    def _tree(self) -> dict[int, list[str]]:
        """pid → stat fields for the root and all its live descendants."""
        if self._children_files:
            return self._walk_tree()
        return self._scan_tree()

    def _walk_tree(self) -> dict[int, list[str]]:
        """Follow ``/proc/<pid>/task/<tid>/children`` down from the root: a handful of reads, not one per
        process on the machine (CONFIG_PROC_CHILDREN, present on mainstream kernels)."""
        tree: dict[int, list[str]] = {}
        stack = [self.root_pid]
        while stack:
            pid = stack.pop()
            if pid in tree:
                continue
            fields = self._stat_fields(pid)
            if fields is None:
                continue
            tree[pid] = fields
            try:
                tids = os.listdir(f"{self._root_str}/{pid}/task")  # noqa: PTH208 (hot path: no Path objects)
            except OSError:
                continue
            for tid in tids:
                children = _read_small(f"{self._root_str}/{pid}/task/{tid}/children")
                if children:
                    stack.extend(int(c) for c in children.split())
        return tree

    def _scan_tree(self) -> dict[int, list[str]]:
        """Read every process's parent: the fallback where the kernel has no ``children`` files."""
        parents: dict[int, list[int]] = {}
        stats: dict[int, list[str]] = {}
        for pid in _pids(self.proc_root):
            fields = self._stat_fields(pid)
            if fields is None:
                continue
            stats[pid] = fields
            parents.setdefault(int(fields[1]), []).append(pid)
        tree: dict[int, list[str]] = {}
        stack = [self.root_pid]
        while stack:
            pid = stack.pop()
            if pid in tree or pid not in stats:
                continue
            tree[pid] = stats[pid]
            stack.extend(parents.get(pid, ()))
        return tree


def _read_small(path: str) -> str | None:
    """A small /proc file in one read (cheaper than pathlib on the sampling path); None if it is gone."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return None
    try:
        return os.read(fd, 65536).decode(errors="replace")
    except OSError:
        return None
    finally:
        os.close(fd)


def _pids(proc_root: Path) -> Iterable[int]:
    try:
        names = [entry.name for entry in os.scandir(proc_root)]
    except OSError:
        return []
    return [int(n) for n in names if n.isdigit()]


class PsutilHost:
    """The same snapshot from psutil, for systems without ``/proc`` (macOS, Windows)."""

    def __init__(self, root_pid: int) -> None:
        import psutil

        self._psutil = psutil
        self.root_pid = root_pid
        self._root = psutil.Process(root_pid)
        self._n_cpus = psutil.cpu_count() or 1
        self._mem_total = int(psutil.virtual_memory().total)

    def snapshot(self) -> HostSnapshot:
        psutil = self._psutil
        times = psutil.cpu_times()
        total = sum(
            getattr(times, f)
            for f in ("user", "nice", "system", "idle", "iowait", "irq", "softirq", "steal")
            if hasattr(times, f)
        )
        idle = times.idle + getattr(times, "iowait", 0.0)
        members = []
        try:
            members = [self._root, *self._root.children(recursive=True)]
        except psutil.Error:
            members = []
        tree_cpu = 0.0
        rss = 0
        pids = set()
        for proc in members:
            try:
                with proc.oneshot():
                    t = proc.cpu_times()
                    tree_cpu += (
                        t.user + t.system + getattr(t, "children_user", 0.0) + getattr(t, "children_system", 0.0)
                    )
                    rss += proc.memory_info().rss
                    pids.add(proc.pid)
            except psutil.Error:
                continue
        net = 0
        try:
            for iface, counters in psutil.net_io_counters(pernic=True).items():
                if not iface.startswith(_LOOPBACK_PREFIXES):
                    net += counters.bytes_recv + counters.bytes_sent
        except (OSError, AttributeError):
            net = 0
        return HostSnapshot(
            t_s=time.monotonic(),
            cpu_busy_s=total - idle,
            cpu_total_s=total,
            tree_cpu_s=tree_cpu,
            tree_pids=frozenset(pids),
            tree_rss_bytes=rss,
            mem_total_bytes=self._mem_total,
            logical_cpus=self._n_cpus,
            net_bytes=net,
        )


def procfs_pid(pid: int, proc_root: Path) -> int:
    """``pid`` as ``proc_root`` numbers it (the same, unless /proc is an outer PID namespace's); a process it does
    not show keeps its number (and is then not found there)."""
    if not proc_root.is_dir() or procfs_is_own(proc_root):
        return pid
    found = to_procfs(pid, proc_root)
    return pid if found is None else found


def descendants(root_pid: int, proc_root: Path = Path("/proc")) -> list[int]:
    """Live descendants of ``root_pid`` (not itself), parents before children, numbered as this process numbers
    them (they are signalled: where /proc is an outer namespace's, its pids are translated back)."""
    if ProcfsHost.available(proc_root):
        host = ProcfsHost(root_pid, proc_root)
        if (proc_root / str(host.root_pid)).is_dir():
            tree = [pid for pid in host._tree() if pid != host.root_pid]
            if procfs_is_own(proc_root):
                return tree
            ours = (from_procfs(pid, proc_root) for pid in tree)
            return [pid for pid in ours if pid is not None]
        if not procfs_is_own(proc_root):
            return []  # psutil would read the same foreign /proc
    import psutil

    try:
        return [p.pid for p in psutil.Process(root_pid).children(recursive=True)]
    except psutil.Error:
        return []


def open_host(root_pid: int, proc_root: Path = Path("/proc")) -> HostReader:
    """The fastest reader that works here. A ``proc_root`` that does not show the measured process (another
    pid namespace) would attribute nothing to it: that is a configuration error, not a zero."""
    if ProcfsHost.available(proc_root):
        if not (proc_root / str(procfs_pid(root_pid, proc_root)) / "stat").is_file():
            raise ConfigError(
                f"proc_root {proc_root} does not show this process (pid {root_pid}): it belongs to another pid "
                "namespace; unset WATTWISE_PROC_ROOT, or run in the host's pid namespace"
            )
        return ProcfsHost(root_pid, proc_root)
    return PsutilHost(root_pid)
