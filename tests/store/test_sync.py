"""Offline first: a run measured while the shared store is unreachable is kept locally and sent exactly once."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from tests.fakes.power import ConstantPowerSource, FakeHost
from wattwise.cli.main import main
from wattwise.config import Settings
from wattwise.measure.tracker import Tracker
from wattwise.store import SPOOL, SQLiteStore, open_store

from .builders import make_run

DOWN = "postgresql://wattwise:secret@127.0.0.1:1/runs"  # nothing listens on port 1


def measure(home: Path, db: str, name: str = "offline") -> str:
    settings = Settings.load(
        {"gpu": False, "interval_s": 0.02, "flush_s": 0.05, "rapl_root": "/nonexistent", "home": str(home), "db": db}
    )
    t = Tracker(name, settings=settings, sources=[ConstantPowerSource({"cpu": 20.0})], host=FakeHost())
    with t:
        time.sleep(0.2)
    assert t.result is not None
    return t.result.id


def test_an_unreachable_store_keeps_the_run_locally_and_sync_sends_it_once(
    tmp_path: Path,
    store_url: str,
    capsys: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    pytest.importorskip("psycopg")
    home = tmp_path / "home"
    monkeypatch.setenv("WATTWISE_HOME", str(home))
    run_id = measure(home, DOWN)
    err = caplog.text  # one warning line (stderr outside pytest)
    assert "cannot reach the run store" in err and "secret" not in err and "runs sync" in err
    with SQLiteStore(home / SPOOL, read_only=True) as spool:
        kept = spool.get(run_id)
        local_samples = list(spool.iter_samples(run_id))
    assert kept.status == "complete" and any("runs sync" in note for note in kept.notes) and local_samples

    assert main(["runs", "sync", "--db", store_url]) == 0
    assert "sent 1 run(s)" in capsys.readouterr().err
    with open_store(store_url, read_only=True) as target:
        assert target.get(run_id) == kept
        assert list(target.iter_samples(run_id)) == local_samples
    with SQLiteStore(home / SPOOL, read_only=True) as spool:
        assert spool.list_runs() == []  # sent, so removed here
    assert main(["runs", "sync", "--db", store_url]) == 0
    assert "sent 0 run(s)" in capsys.readouterr().err  # exactly once


def test_sync_after_an_interruption_does_not_send_twice(tmp_path: Path, store_url: str) -> None:
    from wattwise.store.sync import sync

    home = tmp_path / "home"
    run = make_run("spooled01")
    with SQLiteStore(home / SPOOL) as spool:
        spool.save(run)
    with open_store(store_url) as target:
        target.save(run)  # an earlier sync stored it, then stopped before removing it locally
        report = sync(target, home, parse_file=lambda path: [])
    assert report.already == ["spooled01"] and report.sent == []
    with SQLiteStore(home / SPOOL, read_only=True) as spool:
        assert spool.list_runs() == []


def test_sync_keeps_a_conflicting_record_and_waits_for_running_runs(tmp_path: Path, store_url: str) -> None:
    from wattwise.store.sync import sync

    home = tmp_path / "home"
    with SQLiteStore(home / SPOOL) as spool:
        spool.save(make_run("clash0001", name="here"))
        spool.save(make_run("busy00001", status="running", host="elsewhere.example", ended_at=None))
    with open_store(store_url) as target:
        target.save(make_run("clash0001", name="there"))
        report = sync(target, home, parse_file=lambda path: [])
    assert report.refused and report.refused[0].startswith("clash0001: a different record")
    assert report.waiting == ["busy00001"]
    with SQLiteStore(home / SPOOL, read_only=True) as spool:
        assert sorted(r.id for r in spool.list_runs()) == ["busy00001", "clash0001"]


def test_unsaved_records_are_synced_and_removed(
    tmp_path: Path, store_url: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    home = tmp_path / "home"
    monkeypatch.setenv("WATTWISE_HOME", str(home))
    unsaved = home / "unsaved"
    unsaved.mkdir(parents=True)
    record = make_run("unsaved01").to_dict()
    record["samples"] = [{"t_s": 1.0, "channel": "cpu", "power_w": 2.0, "energy_j": 2.0}]
    (unsaved / "unsaved01.json").write_text(json.dumps(record))
    (unsaved / "broken.json").write_text("{not json")
    assert main(["runs", "sync", "--db", store_url]) == 1  # one file refused: not all was sent
    err = capsys.readouterr().err
    assert "sent 1 run(s)" in err and "broken.json" in err
    assert not (unsaved / "unsaved01.json").exists() and (unsaved / "broken.json").exists()
    with open_store(store_url, read_only=True) as target:
        assert len(list(target.iter_samples("unsaved01"))) == 1


def test_a_local_store_that_fails_still_fails(tmp_path: Path) -> None:
    from wattwise.errors import StoreError

    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(StoreError, match="cannot create run store"):
        measure(tmp_path / "home", str(blocker / "sub" / "runs.db"))


def test_syncing_into_the_spool_itself_is_refused_and_nothing_is_lost(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    home = tmp_path / "home"
    monkeypatch.setenv("WATTWISE_HOME", str(home))
    with SQLiteStore(home / SPOOL) as spool:
        spool.save(make_run("kept0001"))
    monkeypatch.chdir(home)
    assert main(["runs", "sync", "--db", "./spool.db"]) == 2  # the same file, spelt another way
    assert "is the local spool itself" in capsys.readouterr().err
    with SQLiteStore(home / SPOOL, read_only=True) as spool:
        assert [r.id for r in spool.list_runs()] == ["kept0001"]
