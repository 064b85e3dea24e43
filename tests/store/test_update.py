"""``RunStore.update``: a read-modify-write of one record in one transaction, on every engine; concurrent updates
(``wattwise runs attach`` twice at once) all land, none overwrites another."""

from __future__ import annotations

import threading
from datetime import timedelta

import pytest

from wattwise.errors import ConfigError, RunNotFoundError, StoreError
from wattwise.records import ExternalFigure, Run, Sample
from wattwise.store import open_store
from wattwise.store.base import RunStore

from .builders import T0, make_run


def figure(scope: str, energy_j: float = 10.0) -> ExternalFigure:
    return ExternalFigure("test", scope, energy_j, T0, T0 + timedelta(seconds=60), "a test counter")


def test_update_changes_what_the_change_changes_and_nothing_else(store: RunStore) -> None:
    run = make_run()
    store.save(run)
    store.append_samples(run.id, [Sample(1.0, "gpu:0", 100.0, 100.0)])
    before = store.get(run.id)
    updated = store.update(run.id, lambda r: r.replace(external=(figure("a"),)))
    assert updated == before.replace(external=(figure("a"),))
    assert store.get(run.id) == updated
    assert list(store.iter_samples(run.id)) == [Sample(1.0, "gpu:0", 100.0, 100.0)]
    assert store.list_runs() == [updated]


def test_a_change_that_raises_writes_nothing(store: RunStore) -> None:
    run = make_run()
    store.save(run)

    def refuse(current: Run) -> Run:
        raise ConfigError("no")

    with pytest.raises(ConfigError, match="no"):
        store.update(run.id, refuse)
    assert store.get(run.id) == run


def test_a_change_must_keep_the_id_and_the_record_rules(store: RunStore) -> None:
    run = make_run()
    store.save(run)
    with pytest.raises(StoreError, match="must return a record of that run"):
        store.update(run.id, lambda r: r.replace(id="another-id"))
    with pytest.raises(StoreError, match=r"external\[0\]\.energy_j"):
        store.update(run.id, lambda r: r.replace(external=(figure("a", -1.0),)))
    assert store.get(run.id) == run


@pytest.mark.parametrize("ref", ["latest", "a1b2", "not-there"])
def test_update_finds_a_run_by_its_exact_id_only(store: RunStore, ref: str) -> None:
    store.save(make_run())
    with pytest.raises(RunNotFoundError):
        store.update(ref, lambda r: r)


def test_concurrent_updates_from_separate_connections_all_land(engine: str, store_url: str) -> None:
    if engine == "sqlite":
        store_url = f"sqlite:///{store_url}"
    run = make_run()
    with open_store(store_url) as store:
        store.save(run)
    writers = 8
    errors: list[BaseException] = []
    barrier = threading.Barrier(writers)

    def attach(index: int) -> None:
        try:
            with open_store(store_url) as mine:
                barrier.wait(timeout=30)
                for round_ in range(3):
                    extra = figure(f"writer {index} round {round_}")

                    def add(current: Run, extra: ExternalFigure = extra) -> Run:
                        return current.replace(external=(*current.external, extra))

                    mine.update(run.id, add)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=attach, args=(i,)) for i in range(writers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not errors, errors
    with open_store(store_url) as store:
        final = store.get(run.id)
    assert len(final.external) == writers * 3
    assert {f.scope for f in final.external} == {f"writer {i} round {r}" for i in range(writers) for r in range(3)}
    assert final.replace(external=()) == run
