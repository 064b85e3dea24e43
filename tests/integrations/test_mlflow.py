"""Logging runs to MLflow, into a local file store, read back with MLflow's own client."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.fakes.power import ConstantPowerSource, FakeHost
from wattwise.config import Settings
from wattwise.errors import ConfigError
from wattwise.measure.tracker import Tracker
from wattwise.records import Run
from wattwise.store import open_store

mlflow = pytest.importorskip("mlflow")

from wattwise.integrations.mlflow import MlflowObserver, log_run  # noqa: E402

POWER = {"gpu:0": 100.0, "cpu": 20.0}


@pytest.fixture
def tracking(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """A client over a file store in this test's directory (the store the active runs go to)."""
    uri = (tmp_path / "mlruns").as_uri()
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")  # MLflow 3 prefers a database; a folder is enough here
    yield mlflow.tracking.MlflowClient(tracking_uri=uri)
    while mlflow.active_run() is not None:
        mlflow.end_run()


def measured(settings: Settings, *observers: Any, epochs: int = 2) -> Run:
    tracker = Tracker(
        "mlflow-run",
        settings=settings,
        epochs=epochs,
        sources=[ConstantPowerSource(POWER)],
        host=FakeHost(),
        observers=observers,
    )
    with tracker:
        for _ in range(epochs):
            time.sleep(0.15)
            tracker.epoch_end()
    assert tracker.result is not None
    return tracker.result


def test_the_observer_logs_the_runs_figures_tags_and_report(settings: Settings, tracking: Any, tmp_path: Path) -> None:
    with mlflow.start_run() as active:
        run = measured(settings, MlflowObserver())
    logged = tracking.get_run(active.info.run_id).data
    metrics = logged.metrics
    assert metrics["wattwise.energy_kwh"] == pytest.approx(run.energy_j / 3.6e6, rel=1e-12)
    assert metrics["wattwise.co2e_kg"] == pytest.approx(run.co2e_g / 1000, rel=1e-12)
    assert metrics["wattwise.water_l"] == pytest.approx(run.water_l)
    assert metrics["wattwise.duration_s"] == pytest.approx(run.duration_s)
    for part in run.components:
        assert metrics[f"wattwise.energy_kwh.{part.name}"] == pytest.approx(part.energy_j / 3.6e6, rel=1e-12)
    assert {"wattwise.energy_kwh.gpu:0", "wattwise.energy_kwh.cpu"} <= set(metrics)
    assert run.prediction is not None
    assert metrics["wattwise.predicted_energy_kwh"] == pytest.approx(run.prediction.energy_j.value / 3.6e6)
    assert metrics["wattwise.predicted_energy_kwh_high"] == pytest.approx(run.prediction.energy_j.high / 3.6e6)
    history = tracking.get_metric_history(active.info.run_id, "wattwise.epoch_energy_kwh")
    assert [m.step for m in history] == [1, 2]
    assert [m.value for m in history] == pytest.approx([w.energy_j / 3.6e6 for w in run.windows], rel=1e-12)
    tags = logged.tags
    assert tags["wattwise.run_id"] == run.id and tags["wattwise.status"] == "complete"
    assert tags["wattwise.region"] == run.region and tags["wattwise.intensity_source"] == run.intensity_source
    assert tags["wattwise.source"] == "measured"
    names = [a.path for a in tracking.list_artifacts(active.info.run_id, "wattwise")]
    assert names == [f"wattwise/{run.id}.html"]
    page = Path(tracking.download_artifacts(active.info.run_id, names[0], str(tmp_path)))
    html = page.read_text()
    assert run.id in html and "<svg" in html


def test_log_run_to_a_given_run_and_without_the_report(settings: Settings, tracking: Any) -> None:
    run = measured(settings, epochs=1)
    target = tracking.create_run(tracking.create_experiment("wattwise")).info.run_id
    assert log_run(run, run_id=target, client=tracking, report=False) == target
    logged = tracking.get_run(target).data
    assert logged.metrics["wattwise.energy_kwh"] == pytest.approx(run.energy_j / 3.6e6, rel=1e-12)
    assert logged.tags["wattwise.run_id"] == run.id
    assert tracking.list_artifacts(target) == []


def test_without_an_active_run_it_says_what_to_do(settings: Settings, tracking: Any) -> None:
    run = measured(settings, epochs=1)
    with pytest.raises(ConfigError, match=r"mlflow.start_run\(\)"):
        log_run(run)


def test_other_ranks_log_nothing(settings: Settings, tracking: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RANK", "1")
    with mlflow.start_run() as active:
        run = measured(settings, MlflowObserver(), epochs=1)
        assert log_run(run) is None
    assert tracking.get_run(active.info.run_id).data.metrics == {}
    with open_store(settings.db_url) as store:  # the run itself is measured and stored all the same
        assert store.get(run.id).status == "complete"


@pytest.mark.slow
@pytest.mark.filterwarnings("ignore:.isinstance.treespec, LeafSpec.. is deprecated:FutureWarning")
@pytest.mark.filterwarnings("ignore:The `srun` command is available on your system:UserWarning")
def test_a_callback_takes_the_observer(settings: Settings, tracking: Any, tmp_path: Path) -> None:
    pytest.importorskip("lightning.pytorch")
    from tests.integrations.test_lightning import Tiny, loader, trainer
    from wattwise.integrations.lightning import WattwiseCallback

    callback = WattwiseCallback("observed", settings=settings, observers=[MlflowObserver(report=False)])
    with mlflow.start_run() as active:
        trainer(tmp_path, callback).fit(Tiny(), loader())
    run = callback.run
    assert run is not None
    logged = tracking.get_run(active.info.run_id).data
    assert logged.tags["wattwise.run_id"] == run.id and logged.tags["wattwise.name"] == "observed"
    assert logged.metrics["wattwise.energy_kwh"] == pytest.approx(run.energy_j / 3.6e6, rel=1e-12)
    steps = [m.step for m in tracking.get_metric_history(active.info.run_id, "wattwise.epoch_energy_kwh")]
    assert steps == [1, 2]


@pytest.mark.parametrize("prefix", ["p" * 300, "../", "./x.", "a//b.", "/abs.", "é€."])
def test_a_prefix_mlflow_would_refuse_or_move_fails_where_the_observer_is_built(prefix: str) -> None:
    with pytest.raises(ConfigError, match="prefix must be at most 100 letters"):
        MlflowObserver(prefix=prefix)


def test_good_prefixes_are_kept(settings: Settings, tracking: Any) -> None:
    assert MlflowObserver(prefix="").prefix == "" and MlflowObserver(prefix="team/ww.").prefix == "team/ww."
    run = measured(settings, epochs=1)
    with pytest.raises(ConfigError, match="prefix must be"):
        log_run(run, prefix="../", report=False)


def test_a_callback_takes_one_observer_not_in_a_list(settings: Settings) -> None:
    from wattwise.integrations.training import TrainingRun

    observer = MlflowObserver(report=False)
    assert TrainingRun(settings=settings, observers=observer).observers == (observer,)


def test_the_observer_keeps_a_bounded_thinned_share_of_a_long_runs_samples() -> None:
    from wattwise.integrations.mlflow import KEPT_PER_CHANNEL, ThinnedSamples
    from wattwise.records import Sample

    kept = ThinnedSamples()
    seconds = 86_400  # a day at 1 Hz, two channels, given in batches as the tracker gives them
    for start in range(0, seconds, 480):
        batch = []
        for t in range(start, start + 480):
            spike = 900.0 if t == 54_321 else 0.0
            batch += [Sample(float(t), "gpu:0", 250.0 + spike, 0.0), Sample(float(t), "cpu", 40.0, 0.0)]
        kept.extend(batch)
        assert len(kept) < 2 * 2 * KEPT_PER_CHANNEL  # never more than twice the limit per channel
    samples = kept.samples()
    gpu = [s for s in samples if s.channel == "gpu:0"]
    assert len(gpu) <= 2 * KEPT_PER_CHANNEL and [s.t_s for s in gpu] == sorted(s.t_s for s in gpu)
    assert max(s.power_w for s in gpu) == 1150.0  # the one spike survives the thinning
    assert gpu[0].t_s == 0.0 and gpu[-1].t_s == seconds - 1


def test_log_run_reads_the_samples_from_the_store_the_run_was_saved_in(
    settings: Settings, tracking: Any, tmp_path: Path
) -> None:
    own = settings.replace(db=f"sqlite:///{tmp_path / 'elsewhere.db'}")
    tracker = Tracker("own-store", settings=own, sources=[ConstantPowerSource(POWER)], host=FakeHost())
    with tracker:
        time.sleep(0.3)
    run = tracker.result
    assert run is not None
    for db in (own.db_url, None):
        target = tracking.create_run(tracking.create_experiment(f"db-{db is None}")).info.run_id
        subject: Any = run if db is not None else tracker  # a tracker: its own settings name the store
        log_run(subject, run_id=target, client=tracking, db=db)
        name = f"wattwise/{run.id}.html"
        html = Path(tracking.download_artifacts(target, name, str(tmp_path / target))).read_text()
        assert "no samples stored" not in html and "<polyline" in html, db
