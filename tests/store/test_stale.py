"""A run stored as "running" whose process is gone is reported, and persisted, as "incomplete"."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from wattwise.records import Run
from wattwise.store import SQLiteStore
from wattwise.store.base import STALE_AFTER_S, pid_alive, stale_reason, this_host

from .builders import T0, make_run


@pytest.fixture(scope="module")
def dead_pid() -> int:
    """The id of a process that was spawned, exited and was reaped."""
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def stored_status(db: Path, run_id: str) -> str:
    conn = sqlite3.connect(db)
    try:
        row = conn.execute("SELECT status, record FROM runs WHERE id = ?", (run_id,)).fetchone()
    finally:
        conn.close()
    assert f'"status":"{row[0]}"' in row[1]  # column and record agree
    return str(row[0])


@pytest.mark.skipif(sys.platform == "win32", reason="pids are not probed on Windows")
def test_a_run_whose_process_is_gone_becomes_incomplete(db_path: Path, dead_pid: int) -> None:
    run = make_run(status="running", host=this_host(), pid=dead_pid, ended_at=None)
    with SQLiteStore(db_path) as store:
        store.begin(run)
        got = store.get(run.id)
        assert got.status == "incomplete"
        assert got.notes[-1] == (
            f"marked incomplete: process {dead_pid} on {this_host()} ended before the run was finished"
        )
        assert got.ended_at == run.started_at + timedelta(seconds=run.duration_s)  # its last checkpoint
        assert got.replace(status="running", notes=run.notes, ended_at=None) == run
    assert stored_status(db_path, run.id) == "incomplete"


@pytest.mark.skipif(sys.platform == "win32", reason="pids are not probed on Windows")
def test_a_read_only_store_shows_stale_runs_incomplete_without_writing(db_path: Path, dead_pid: int) -> None:
    run = make_run(status="running", host=this_host(), pid=dead_pid, ended_at=None)
    with SQLiteStore(db_path, stale_after_s=1e9) as store:
        store.save(run)  # save does not settle stale runs; only begin does
    before = db_path.read_bytes()
    with SQLiteStore(db_path, read_only=True) as store:
        got = store.get(run.id)
        assert got.status == "incomplete" and got.ended_at == run.started_at + timedelta(seconds=run.duration_s)
        assert [r.id for r in store.list_runs(status="incomplete")] == [run.id]
        assert store.list_runs(status="running") == []
    assert stored_status(db_path, run.id) == "running"  # nothing was written
    assert db_path.read_bytes() == before


@pytest.mark.skipif(sys.platform == "win32", reason="pids are not probed on Windows")
def test_listing_reports_stale_runs_by_their_new_status(store: SQLiteStore, dead_pid: int) -> None:
    store.begin(make_run("dead0001", status="running", host=this_host(), pid=dead_pid))
    store.begin(make_run("live0001", status="running", host=this_host(), pid=os.getpid()))
    assert [r.id for r in store.list_runs(status="running")] == ["live0001"]
    assert [r.id for r in store.list_runs(status="incomplete")] == ["dead0001"]


def test_a_live_process_stays_running(db_path: Path) -> None:
    run = make_run(status="running", host=this_host(), pid=os.getpid())
    with SQLiteStore(db_path) as store:
        store.begin(run)
        assert store.get(run.id) == run
        assert store.list_runs()[0].status == "running"
    assert stored_status(db_path, run.id) == "running"


def test_a_dead_pid_on_another_host_is_not_judged(store: SQLiteStore, dead_pid: int) -> None:
    run = make_run(status="running", host="gpu-node-7", pid=dead_pid)
    store.begin(run)
    assert store.get(run.id).status == "running"


def test_a_silent_run_becomes_incomplete_after_the_threshold(db_path: Path) -> None:
    run = make_run(status="running", host="gpu-node-7", pid=123)
    with SQLiteStore(db_path, clock=lambda: T0) as tracker:
        tracker.begin(run)
    almost = T0 + timedelta(seconds=STALE_AFTER_S - 1)
    with SQLiteStore(db_path, clock=lambda: almost) as cli:
        assert cli.get(run.id).status == "running"
    later = T0 + timedelta(seconds=STALE_AFTER_S + 1)
    with SQLiteStore(db_path, clock=lambda: later) as cli:
        got = cli.get("latest")
    assert got.status == "incomplete"
    assert got.notes[-1].startswith("marked incomplete: no heartbeat for 301 s (last at 2025-03-01T12:00:00")
    assert stored_status(db_path, run.id) == "running"  # reading never writes…
    with SQLiteStore(db_path, clock=lambda: later) as next_run:
        next_run.begin(make_run("next0001", status="running", host="gpu-node-7", pid=124))
    assert stored_status(db_path, run.id) == "incomplete"  # …the next run to begin settles it


def test_a_checkpoint_from_a_live_tracker_restores_running(store: SQLiteStore, dead_pid: int) -> None:
    run = make_run(status="running", host=this_host(), pid=dead_pid)
    store.begin(run)
    assert store.get(run.id).status == "incomplete"
    alive = run.replace(pid=os.getpid())
    store.save(alive)
    assert store.get(run.id) == alive


def test_finished_runs_are_never_touched(store: SQLiteStore, dead_pid: int) -> None:
    for status in ("complete", "failed"):
        run = make_run(f"{status}-run", status=status, host=this_host(), pid=dead_pid)
        store.save(run)
        assert store.get(run.id) == run


def reason(
    run: Run, *, alive: bool, host: str = "me", now: datetime = T0, stale_after_s: float = STALE_AFTER_S
) -> str | None:
    return stale_reason(run, T0, now=now, host=host, stale_after_s=stale_after_s, is_alive=lambda pid: alive)


def test_stale_rule_directly() -> None:
    run = make_run(status="running", host="me", pid=10)
    assert reason(run, alive=True) is None
    assert reason(run, alive=False) == "process 10 on me ended before the run was finished"
    assert reason(run, alive=False, host="other") is None  # a pid on another host says nothing
    assert reason(run.replace(pid=0), alive=False) is None  # no pid recorded
    assert reason(run.replace(host=""), alive=False, host="") is None  # no host recorded
    assert reason(run.replace(status="complete"), alive=False) is None
    late = T0 + timedelta(seconds=61)
    assert reason(run, alive=True, now=late, stale_after_s=60) == (
        "no heartbeat for 61 s (last at 2025-03-01T12:00:00.000000+00:00)"
    )
    assert reason(run, alive=True, now=late) is None


def test_pid_alive(dead_pid: int) -> None:
    assert pid_alive(os.getpid())
    assert pid_alive(0)  # unknown counts as alive
    if sys.platform != "win32":
        assert not pid_alive(dead_pid)
