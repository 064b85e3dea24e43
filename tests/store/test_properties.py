"""Hypothesis: whatever a Run or Sample holds survives a write and a read."""

from __future__ import annotations

import io
import json
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from wattwise.records import Run, Sample
from wattwise.store import SQLiteStore, open_store
from wattwise.store.base import RunStore
from wattwise.store.export import export_runs

from .builders import make_run, runs, samples
from .conftest import ENGINES

Opener = Callable[[], AbstractContextManager[RunStore]]


@pytest.fixture(scope="module", params=ENGINES)
def fresh(request: pytest.FixtureRequest) -> Opener:
    """Opens an empty store on each engine, once per Hypothesis example (PostgreSQL: one database, emptied)."""
    if request.param == "sqlite":
        return lambda: SQLiteStore(":memory:")
    url = request.getfixturevalue("pg").new_database()

    @contextmanager
    def opener() -> Iterator[RunStore]:
        import psycopg

        with open_store(url) as store:
            with psycopg.connect(url, autocommit=True) as conn:
                conn.execute("TRUNCATE runs, samples, artifacts")
            yield store

    return opener


@settings(max_examples=300, deadline=None)
@given(run=runs())
def test_any_run_survives_save_and_get(fresh: Opener, run: Run) -> None:
    with fresh() as store:
        store.save(run)
        assert store.get(run.id) == run
        assert store.list_runs(limit=None) == [run]
        assert store.list_runs(status=run.status) == [run]


@settings(max_examples=100, deadline=None)
@given(first=runs(), second=runs())
def test_a_checkpoint_is_replaced_by_the_next_save(fresh: Opener, first: Run, second: Run) -> None:
    final = second.replace(id=first.id)
    with fresh() as store:
        store.save(first)
        store.save(final)
        assert store.get(first.id) == final
        assert store.list_runs(name=final.name) == [final]


@settings(max_examples=100, deadline=None)
@given(batch=st.lists(runs(), max_size=4))
def test_any_runs_survive_json_export(batch: list[Run]) -> None:
    out = io.StringIO()
    assert export_runs(batch, "json", out) == len(batch)
    assert [Run.from_dict(item) for item in json.loads(out.getvalue())] == batch


@settings(max_examples=200, deadline=None)
@given(batches=st.lists(st.lists(samples, max_size=20), max_size=4), batch_size=st.integers(1, 7))
def test_any_samples_come_back_in_time_then_channel_order(
    fresh: Opener, batches: list[list[Sample]], batch_size: int
) -> None:
    run = make_run(status="running")
    with fresh() as store:
        store.begin(run)
        for batch in batches:
            store.append_samples(run.id, batch)
        inserted = [sample for batch in batches for sample in batch]
        expected = sorted(inserted, key=lambda s: (s.t_s, s.channel))  # stable: ties keep insertion order
        assert list(store.iter_samples(run.id, batch_size=batch_size)) == expected
