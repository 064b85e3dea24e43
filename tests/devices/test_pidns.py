"""PID namespaces: classification from fake /proc trees, and the real kernel's answers under unshare."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from wattwise.devices.pidns import INIT_PID_NS, from_procfs, pid_namespace, procfs_is_own, to_procfs


def fake_proc(root: Path, *, link: str | None, processes: dict[int, list[int]], self_pid: int) -> Path:
    """A /proc with ``status`` files whose NSpid lines are ``processes[pid]``; ``self`` points at ``self_pid``."""
    for pid, chain in processes.items():
        (root / str(pid)).mkdir(parents=True)
        (root / str(pid) / "status").write_text(f"Name:\tx\nNSpid:\t{' '.join(map(str, chain))}\n")
    (root / "self").symlink_to(root / str(self_pid))
    if link is not None:
        (root / str(self_pid) / "ns").mkdir()
        (root / str(self_pid) / "ns" / "pid").symlink_to(link)  # dangling, as the kernel's magic links read
    return root


def test_the_initial_namespace_is_the_host(tmp_path: Path) -> None:
    proc = fake_proc(tmp_path, link=INIT_PID_NS, processes={4000: [4000]}, self_pid=4000)
    assert pid_namespace(proc) == ("host", None)
    assert procfs_is_own(proc) and to_procfs(17, proc) == 17 and from_procfs(17, proc) == 17


def test_a_container_with_its_own_proc_cannot_match_nvml_pids(tmp_path: Path) -> None:
    proc = fake_proc(tmp_path, link="pid:[4026532174]", processes={1: [1]}, self_pid=1)
    state, note = pid_namespace(proc)
    assert state == "unmappable" and note is not None and "--pid=host" in note
    assert procfs_is_own(proc)


def test_an_outer_proc_is_read_in_its_numbering_both_ways(tmp_path: Path) -> None:
    me = os.getpid()
    # outer numbering 9000 (us), 9001 (our child, inner 7), 9002 (a process of a deeper namespace)
    proc = fake_proc(
        tmp_path,
        link="pid:[4026532174]",
        processes={9000: [9000, me], 9001: [9001, 7], 9002: [9002, 8, 1], 1: [1]},
        self_pid=9000,
    )
    (tmp_path / "9000" / "task" / "9000").mkdir(parents=True)
    (tmp_path / "9000" / "task" / "9000" / "children").write_text("9001 9002")
    assert pid_namespace(proc)[0] == "mapped"
    assert not procfs_is_own(proc)
    assert to_procfs(me, proc) == 9000
    assert to_procfs(7, proc) == 9001
    assert to_procfs(8, proc) == 9002
    assert to_procfs(12345, proc) is None
    assert from_procfs(9001, proc) == 7
    assert from_procfs(1, proc) is None  # the outer init is not in our namespace


def test_without_children_files_the_scan_matches_only_our_descendants(tmp_path: Path) -> None:
    me = os.getpid()
    proc = fake_proc(
        tmp_path,
        link="pid:[4026532174]",
        processes={9000: [9000, me], 9100: [9100, 7], 9200: [9200, 7], 9300: [9300, 8, 1]},
        self_pid=9000,
    )
    for pid, parent in ((9000, 1), (9100, 1), (9200, 9300), (9300, 9000)):  # 9100: another container's 7
        (tmp_path / str(pid) / "stat").write_text(f"{pid} (x) S {parent} 0 0")
    assert to_procfs(7, proc) == 9200  # a grandchild, in a namespace nested in ours
    assert to_procfs(9, proc) is None


def test_a_kernel_without_nspid_is_unknown(tmp_path: Path) -> None:
    (tmp_path / "50").mkdir()
    (tmp_path / "50" / "status").write_text("Name:\tx\n")
    (tmp_path / "self").symlink_to(tmp_path / "50")
    state, note = pid_namespace(tmp_path)
    assert state == "unknown" and note is not None
    assert procfs_is_own(tmp_path)  # assumed, as before NSpid


SCRIPT = """
import os, subprocess, time
from wattwise.devices.host import ProcfsHost, descendants
from wattwise.devices.pidns import nspid, pid_namespace
child = subprocess.Popen(["sleep", "5"])
time.sleep(0.2)
host = ProcfsHost(os.getpid())
tree = sorted(host.snapshot().tree_pids)
print(pid_namespace()[0], nspid("self")[0], nspid(tree[-1])[-1], child.pid, descendants(os.getpid()), len(tree))
child.kill()
"""


@pytest.mark.skipif(shutil.which("unshare") is None, reason="needs util-linux unshare")
@pytest.mark.parametrize(("how", "state"), [([], "mapped"), (["--mount-proc"], "unmappable")])
def test_the_real_kernel_under_unshare(how: list[str], state: str) -> None:
    wrapped = ["unshare", "--pid", "--fork", *how, "sh", "-c", '"$@"', "sh", sys.executable, "-c", SCRIPT]
    out = subprocess.run(wrapped, capture_output=True, text=True, timeout=60, check=False)
    if out.returncode != 0 and "Operation not permitted" in out.stderr:
        pytest.skip("unshare --pid is not permitted here")
    assert out.returncode == 0, out.stderr
    found, outer_self, child_inner, child_pid, found_descendants, size = out.stdout.split(maxsplit=5)
    assert found == state
    assert child_inner == child_pid  # the tree found holds our child, read in /proc's numbering
    assert found_descendants == f"[{child_pid}]"  # translated back: the pid this process can signal
    assert size.strip() == "2"  # ourselves and the child, not another process's tree
    if state == "mapped":
        assert int(outer_self) != 2  # /proc numbers us as the outer namespace does
