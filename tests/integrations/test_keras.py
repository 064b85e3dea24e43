"""The Keras 3 callback, with the torch backend, on a one-layer model over random numpy data."""

from __future__ import annotations

import os
import subprocess
import sys
from typing import Any

import numpy as np
import pytest

from wattwise.config import Settings
from wattwise.store import open_store

os.environ["KERAS_BACKEND"] = "torch"  # before keras is first imported: the only backend installed here
pytest.importorskip("keras")
import keras

from wattwise.integrations.keras import WattwiseCallback

pytestmark = pytest.mark.slow


def tiny_model() -> Any:
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(1)], name="tiny")
    model.compile(optimizer="sgd", loss="mse")
    return model


def data() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    return rng.normal(size=(32, 4)).astype("float32"), rng.normal(size=(32, 1)).astype("float32")


class FailAtEpoch(keras.callbacks.Callback):  # type: ignore[misc]
    def __init__(self, epoch: int) -> None:
        super().__init__()
        self.epoch = epoch

    def on_epoch_begin(self, epoch: int, logs: Any = None) -> None:
        if epoch == self.epoch:
            raise RuntimeError("boom")


def test_keras_runs_on_the_torch_backend() -> None:
    assert keras.backend.backend() == "torch"


def test_fit_is_one_complete_run_and_history_has_its_figures(settings: Settings) -> None:
    callback = WattwiseCallback(settings=settings)
    x, y = data()
    history = tiny_model().fit(x, y, epochs=2, batch_size=8, verbose=0, callbacks=[callback])
    run = callback.run
    assert run is not None
    with open_store(settings.db_url) as store:
        stored = store.get(run.id)
    assert stored.name == "tiny" and stored.status == "complete" and stored.energy_j > 0
    assert [w.name for w in stored.windows] == ["epoch-1", "epoch-2"]
    assert stored.prediction is not None and stored.prediction.epochs_planned == 2
    energy = [kwh * 3.6e6 for kwh in history.history["energy_kwh"]]
    assert energy == pytest.approx([stored.windows[0].energy_j, sum(w.energy_j for w in stored.windows)])
    assert history.history["co2e_kg"][-1] * 1000 == pytest.approx(sum(w.co2e_g for w in stored.windows))
    assert len(history.history["loss"]) == 2


def test_a_fit_that_raised_is_ended_by_the_next_one(settings: Settings) -> None:
    callback = WattwiseCallback("again", settings=settings)
    x, y = data()
    with pytest.raises(RuntimeError, match="boom"):
        tiny_model().fit(x, y, epochs=3, verbose=0, callbacks=[callback, FailAtEpoch(1)])
    with open_store(settings.db_url) as store:
        assert store.get("latest").status == "running"  # left open: Keras says nothing of the exception
    tiny_model().fit(x, y, epochs=1, verbose=0, callbacks=[callback])
    with open_store(settings.db_url) as store:
        first, second = sorted(store.list_runs(), key=lambda r: r.started_at)
    assert first.status == "failed" and first.error is not None and "end hook" in first.error
    assert [w.name for w in first.windows] == ["epoch-1"]
    assert second.status == "complete" and callback.run is not None and callback.run.id == second.id


def test_other_ranks_measure_nothing(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RANK", "1")
    callback = WattwiseCallback(settings=settings)
    x, y = data()
    history = tiny_model().fit(x, y, epochs=1, verbose=0, callbacks=[callback])
    assert callback.run is None and "energy_kwh" not in history.history
    with open_store(settings.db_url) as store:
        assert store.count() == 0


def test_a_backend_that_is_not_installed_is_one_error_line() -> None:
    code = "import wattwise.integrations.keras"
    env = {**os.environ, "KERAS_BACKEND": "jax"}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=False)
    assert out.returncode != 0
    last = out.stderr.strip().splitlines()[-1]
    assert last.startswith("wattwise.errors.ConfigError: keras could not load its backend"), out.stderr[-2000:]
    assert "KERAS_BACKEND" in last


def test_a_resumed_fit_plans_only_the_epochs_it_runs(settings: Settings) -> None:
    callback = WattwiseCallback(settings=settings)
    x, y = data()
    history = tiny_model().fit(x, y, epochs=5, initial_epoch=3, verbose=0, callbacks=[callback])
    run = callback.run
    assert run is not None and run.status == "complete" and len(history.history["loss"]) == 2
    assert [w.name for w in run.windows] == ["epoch-1", "epoch-2"]
    assert run.prediction is not None and run.prediction.epochs_planned == 2  # not 5: epochs 3 and 4 ran
    assert run.prediction.epochs_done == 2


def test_a_fit_that_raised_is_ended_by_the_next_fit_with_another_callback(settings: Settings) -> None:
    x, y = data()
    first = WattwiseCallback("first", settings=settings)
    with pytest.raises(RuntimeError, match="boom"):
        tiny_model().fit(x, y, epochs=3, verbose=0, callbacks=[first, FailAtEpoch(1)])
    second = WattwiseCallback("second", settings=settings)  # a new callback does not know of the first
    tiny_model().fit(x, y, epochs=1, verbose=0, callbacks=[second])
    with open_store(settings.db_url) as store:
        runs = {run.name: run for run in store.list_runs()}
    assert runs["first"].status == "failed" and runs["first"].error is not None
    assert "another training began before this one ended" in runs["first"].error
    assert runs["second"].status == "complete" and [w.name for w in runs["second"].windows] == ["epoch-1"]
    ended = runs["first"].ended_at
    assert ended is not None and ended <= runs["second"].started_at  # it stopped measuring before the second began
