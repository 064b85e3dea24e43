"""What every framework callback shares (:class:`TrainingRun`), without a framework: a training left open by an
exception is ended by the next one to begin, whichever callback measures it; bad settings fail where it is built."""

from __future__ import annotations

import gc
from collections.abc import Iterator

import pytest

from wattwise.config import Settings
from wattwise.errors import ConfigError
from wattwise.integrations.training import TrainingRun
from wattwise.measure.observers import RunObserver
from wattwise.store import open_store


@pytest.fixture
def trainings() -> Iterator[list[TrainingRun]]:
    """TrainingRuns a test makes, each ended afterwards whatever the test did."""
    made: list[TrainingRun] = []
    yield made
    for training in made:
        training.end("incomplete")


def test_a_training_left_open_is_ended_failed_when_another_begins(
    settings: Settings, trainings: list[TrainingRun]
) -> None:
    first = TrainingRun("first", settings=settings)
    second = TrainingRun("second", settings=settings)  # a new callback, as a new Trainer or fit() would build
    trainings += [first, second]
    first.begin(3)
    first.epoch_end()  # ... and then the training raised, and no hook told the callback
    second.begin(1)
    assert not first.running and second.running
    assert first.run is not None and first.run.status == "failed"
    assert first.run.error is not None and "another training began before this one ended" in first.run.error
    second.epoch_end()
    done = second.end()
    assert done is not None and done.status == "complete"
    with open_store(settings.db_url) as store:
        stored = {run.name: run for run in store.list_runs()}
    assert stored["first"].status == "failed" and [w.name for w in stored["first"].windows] == ["epoch-1"]
    assert stored["second"].status == "complete"
    assert len(TrainingRun._open) == 0  # nothing left for a later test to see


def test_a_training_left_open_is_ended_even_when_its_callback_was_dropped(settings: Settings) -> None:
    def crashed() -> None:  # a callback built for one training that raised, then forgotten with its trainer
        TrainingRun("dropped", settings=settings).begin(2)

    crashed()
    gc.collect()
    later = TrainingRun("later", settings=settings)
    later.begin(1)
    later.end()
    with open_store(settings.db_url) as store:
        stored = {run.name: run for run in store.list_runs()}
    assert stored["dropped"].status == "failed" and stored["later"].status == "complete"
    assert len(TrainingRun._open) == 0


def test_trainings_that_ended_are_left_alone(settings: Settings, trainings: list[TrainingRun]) -> None:
    first = TrainingRun("first", settings=settings)
    second = TrainingRun("second", settings=settings)
    trainings += [first, second]
    first.begin(1)
    ended = first.end()
    second.begin(1)
    assert first.run == ended and ended is not None and ended.status == "complete"


def test_a_mapping_of_settings_is_taken_as_overrides(settings: Settings, trainings: list[TrainingRun]) -> None:
    training = TrainingRun(settings={"region": "DE", "gpu": False}, interval_s=0.5)
    assert training.settings.region == "DE" and training.settings.interval_s == 0.5 and not training.settings.gpu
    with pytest.raises(ConfigError, match=r"settings must be a wattwise.Settings or a mapping .* \(got int\)"):
        TrainingRun(settings=42)  # type: ignore[arg-type]


@pytest.mark.parametrize("db", ["mysql://x", "sqlite://host/runs.db", "runs.txt"])
def test_a_store_url_no_store_takes_fails_where_it_is_built(db: str) -> None:
    with pytest.raises(ConfigError, match="WATTWISE_DB \\(or --db\\) takes sqlite:///"):
        TrainingRun(db=db)


def test_one_observer_alone_is_a_list_of_one_and_anything_else_is_refused() -> None:
    observer = RunObserver()
    assert TrainingRun(observers=observer).observers == (observer,)
    for bad in (42, "mlflow", [observer, 42]):
        with pytest.raises(ConfigError, match="observer"):
            TrainingRun(observers=bad)  # type: ignore[arg-type]
