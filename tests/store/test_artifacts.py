"""Estimates and plans saved beside the runs: one contract, and a store written before they existed."""

from __future__ import annotations

import sqlite3
from datetime import timedelta
from pathlib import Path

import pytest

from wattwise.errors import RunExistsError, RunNotFoundError, StoreError
from wattwise.records import Artifact, new_id
from wattwise.store import SQLiteStore, open_store

from .builders import T0, make_run


def artifact(artifact_id: str, kind: str = "training-estimate", minutes: int = 0, **data: object) -> Artifact:
    return Artifact(artifact_id, kind, f"name of {artifact_id}", T0 + timedelta(minutes=minutes), {"x": 1, **data})  # type: ignore[arg-type]


def test_save_list_get(store: SQLiteStore) -> None:
    store.save_artifact(artifact("est-0001", minutes=0, energy_kwh=12.5))
    store.save_artifact(artifact("plan-0001", "plan", minutes=1))
    store.save_artifact(artifact("est-0002", minutes=2))
    assert [a.id for a in store.list_artifacts()] == ["est-0002", "plan-0001", "est-0001"]
    assert [a.id for a in store.list_artifacts("training-estimate", limit=1)] == ["est-0002"]
    assert store.get_artifact("est-0001").data == {"x": 1, "energy_kwh": 12.5}
    assert store.get_artifact("plan").id == "plan-0001"  # a unique prefix
    assert store.get_artifact("latest", "plan").id == "plan-0001"
    with pytest.raises(RunNotFoundError, match="ambiguous"):
        store.get_artifact("est-")
    with pytest.raises(RunNotFoundError, match="no plan matches"):
        store.get_artifact("est-0001", "plan")
    with pytest.raises(RunNotFoundError, match="no inference-estimate saved yet"):
        store.get_artifact("latest", "inference-estimate")
    with pytest.raises(RunExistsError):
        store.save_artifact(artifact("est-0001"))


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        (Artifact("../../etc", "plan", "", T0, {}), "run id"),
        (Artifact("good-0001", "recipe", "", T0, {}), "kind"),  # type: ignore[arg-type]
        (Artifact("good-0002", "plan", "", T0.replace(tzinfo=None), {}), "UTC offset"),
        (Artifact("good-0003", "plan", "", T0, {"v": float("nan")}), "strict JSON"),
    ],
)
def test_bad_artifacts_are_refused_and_nothing_is_stored(store: SQLiteStore, bad: Artifact, message: str) -> None:
    with pytest.raises(StoreError, match=message):
        store.save_artifact(bad)
    assert store.list_artifacts() == []


def test_new_ids_are_unique_and_valid() -> None:
    from wattwise.validate import check_run_id

    ids = {new_id() for _ in range(200)}
    assert len(ids) == 200 and all(check_run_id(i) for i in ids)


def test_a_store_written_before_artifacts_is_still_read(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    with SQLiteStore(str(path)) as writer:
        writer.save(make_run("old00001"))
    conn = sqlite3.connect(path, isolation_level=None)  # as an older wattwise left it: no artifacts table
    conn.execute("DROP TABLE artifacts")
    conn.execute("DELETE FROM migrations WHERE name = '0002_artifacts'")
    conn.close()
    before = path.read_bytes()
    with open_store(str(path), read_only=True) as reader:  # a reader reads what is there and writes nothing
        assert [r.id for r in reader.list_runs()] == ["old00001"]
        assert reader.list_artifacts() == []
        assert any("older wattwise" in note for note in reader.notes)  # type: ignore[attr-defined]
        with pytest.raises(RunNotFoundError):
            reader.get_artifact("latest")
    assert path.read_bytes() == before
    with SQLiteStore(str(path)) as writer:  # a writer upgrades it
        writer.save_artifact(artifact("new-0001"))
        assert [a.id for a in writer.list_artifacts()] == ["new-0001"]
