"""Host counters from a fake /proc tree (exact numbers) and from the real one (sanity)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from wattwise.devices.base import HostSnapshot, cpu_share, cpu_utilisation
from wattwise.devices.host import ProcfsHost, PsutilHost

TICKS = 100.0


def write_proc(
    root: Path, procs: dict[int, tuple[int, int, int, int, int, int]], cpu: tuple[int, ...], children: bool = False
) -> None:
    """procs: pid → (ppid, utime, stime, cutime, cstime, rss_pages); cpu: the /proc/stat 'cpu' line values.
    children: also write /proc/<pid>/task/<tid>/children (CONFIG_PROC_CHILDREN), split over two threads."""
    root.mkdir(parents=True, exist_ok=True)
    lines = ["cpu  " + " ".join(str(v) for v in cpu), "cpu0 0 0 0 0", "cpu1 0 0 0 0", "intr 0"]
    (root / "stat").write_text("\n".join(lines) + "\n")
    (root / "meminfo").write_text("MemTotal:       16384000 kB\nMemFree: 1 kB\n")
    (root / "net").mkdir(exist_ok=True)
    (root / "net" / "dev").write_text(
        "Inter-|   Receive |  Transmit\n face |bytes    packets|bytes\n"
        "    lo: 5000 1 0 0 0 0 0 0 5000 1 0 0 0 0 0 0\n"
        "  eth0: 1000 1 0 0 0 0 0 0 2000 1 0 0 0 0 0 0\n"
    )
    for pid, (ppid, ut, st, cut, cst, rss) in procs.items():
        d = root / str(pid)
        d.mkdir(exist_ok=True)
        fields = ["S", str(ppid)] + ["0"] * 9 + [str(ut), str(st), str(cut), str(cst)] + ["0"] * 6 + [str(rss)]
        (d / "stat").write_text(f"{pid} (odd name) (x) " + " ".join(fields) + " 0 0 0\n")
        if children:
            kids = [str(c) for c, (pp, *_rest) in procs.items() if pp == pid]
            for tid, share in ((pid, kids[::2]), (pid + 100000, kids[1::2])):
                (d / "task" / str(tid)).mkdir(parents=True, exist_ok=True)
                (d / "task" / str(tid) / "children").write_text(" ".join(share) + (" " if share else ""))


@pytest.mark.parametrize("children", [False, True], ids=["scan", "children-files"])
def test_tree_cpu_time_rss_and_machine_counters(tmp_path: Path, children: bool) -> None:
    root = tmp_path / "proc"
    write_proc(
        root,
        {
            1: (0, 1000, 1000, 0, 0, 10),  # init: not in the tree
            100: (1, 50, 50, 20, 10, 1000),  # the measured process
            101: (100, 30, 10, 0, 0, 500),  # its child
            102: (101, 5, 5, 0, 0, 100),  # grandchild
            103: (100, 1, 1, 0, 0, 1),  # a second child
            200: (1, 400, 0, 0, 0, 50),  # another tenant
        },
        cpu=(300, 0, 100, 600, 0, 0, 0, 0, 0, 0),
        children=children,
    )
    host = ProcfsHost(100, root, ticks_per_s=TICKS)
    assert host._children_files is children
    snap = host.snapshot()
    assert snap.tree_pids == frozenset({100, 101, 102, 103})
    assert snap.tree_cpu_s == pytest.approx((50 + 50 + 20 + 10 + 30 + 10 + 5 + 5 + 2) / TICKS)
    assert snap.tree_rss_bytes == (1000 + 500 + 100 + 1) * os.sysconf("SC_PAGE_SIZE")
    assert snap.cpu_busy_s == pytest.approx(400 / TICKS)
    assert snap.cpu_total_s == pytest.approx(1000 / TICKS)
    assert snap.logical_cpus == 2
    assert snap.mem_total_bytes == 16384000 * 1024
    assert snap.net_bytes == 3000  # loopback excluded


def test_exited_child_moves_into_parents_cutime_continuously(tmp_path: Path) -> None:
    root = tmp_path / "proc"
    write_proc(root, {100: (1, 10, 0, 0, 0, 1), 101: (100, 40, 10, 0, 0, 1)}, cpu=(1, 0, 0, 1, 0, 0, 0, 0))
    before = ProcfsHost(100, root, ticks_per_s=TICKS).snapshot().tree_cpu_s
    # the child exits and is reaped: its time appears in the parent's cutime/cstime
    (root / "101" / "stat").unlink()
    (root / "101").rmdir()
    write_proc(root, {100: (1, 10, 0, 40, 10, 1)}, cpu=(1, 0, 0, 1, 0, 0, 0, 0))
    after = ProcfsHost(100, root, ticks_per_s=TICKS).snapshot().tree_cpu_s
    assert after == pytest.approx(before)


def test_share_and_utilisation_are_clamped() -> None:
    a = HostSnapshot(t_s=0, cpu_busy_s=10, cpu_total_s=20, tree_cpu_s=5)
    b = HostSnapshot(t_s=1, cpu_busy_s=12, cpu_total_s=24, tree_cpu_s=6)
    assert cpu_share(a, b) == pytest.approx(0.5)
    assert cpu_utilisation(a, b) == pytest.approx(0.5)
    c = HostSnapshot(t_s=1, cpu_busy_s=10, cpu_total_s=20, tree_cpu_s=7)
    assert cpu_share(a, c) == 1.0  # accounting granularity: tree time without machine busy time
    assert cpu_utilisation(a, c) == 0.0


@pytest.mark.parametrize("reader", ["procfs", "psutil"])
def test_real_host_sees_a_busy_child(reader: str) -> None:
    host = ProcfsHost(os.getpid()) if reader == "procfs" else PsutilHost(os.getpid())
    first = host.snapshot()
    # the child spins until it has used 0.5 s of CPU (not of wall time: on a loaded machine it may get less)
    child = subprocess.Popen([sys.executable, "-c", "import time\nwhile time.process_time() < 0.5: pass"])
    time.sleep(0.2)
    mid = host.snapshot()
    assert child.pid in mid.tree_pids
    child.wait()
    last = host.snapshot()
    assert last.tree_cpu_s - first.tree_cpu_s >= 0.45  # the reaped child's CPU time is kept
    assert last.cpu_total_s > first.cpu_total_s and last.logical_cpus >= 1
