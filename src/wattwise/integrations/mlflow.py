"""MLflow: a wattwise run's figures, tags and HTML report logged to an MLflow run.

::

    import mlflow
    from wattwise.integrations.mlflow import MlflowObserver, log_run

    with mlflow.start_run():
        with wattwise.track("train", observers=[MlflowObserver()]) as t:  # logged when the run ends
            ...
        log_run(t.result)  # or by hand, to the active MLflow run (or run_id=...)

The framework callbacks take the observer too: ``WattwiseCallback(observers=[MlflowObserver()])``.

What is logged (names start with ``prefix``, ``wattwise.`` by default):

* metrics: ``energy_kwh``, ``co2e_kg``, ``water_l``, ``duration_s``, ``machine_energy_kwh``,
  ``intensity_g_per_kwh``, ``pue``; ``energy_kwh.<channel>`` per power channel; ``epoch_energy_kwh`` and
  ``epoch_co2e_kg`` at step N for epoch N; with a prediction, ``predicted_energy_kwh``, ``predicted_co2e_kg`` and
  ``predicted_duration_s`` with their ``_low`` and ``_high`` ends;
* tags (tags, not params: MLflow params cannot change, and one MLflow run may hold several wattwise runs):
  ``run_id``, ``name``, ``status``, ``region``, ``intensity_source``, ``source`` (measured, estimated or mixed),
  ``attribution``, ``emissions_method``, ``version``;
* the run's HTML report (``wattwise/<id>.html``) when Jinja2 is installed (the ``dashboard`` extra).

Only the main process logs: where ``RANK`` is set to anything but 0, nothing is logged.
"""

from __future__ import annotations

import importlib.util
import re
import tempfile
import time
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from wattwise.errors import ConfigError
from wattwise.integrations.training import is_main_process
from wattwise.measure.observers import RunObserver
from wattwise.units import g_to_kg, j_to_kwh

try:
    import mlflow
    from mlflow.entities import Metric, RunTag
    from mlflow.tracking import MlflowClient
except ImportError as exc:
    raise ConfigError(f"logging to MLflow needs mlflow ({exc}): pip install 'wattwise[mlflow]'") from None

if TYPE_CHECKING:
    from wattwise.records import Run, Sample

__all__ = ["PREFIX", "MlflowObserver", "log_run", "run_metrics", "run_tags"]

PREFIX = "wattwise."
_BATCH = 1000  # MLflow takes at most this many metrics in one call
_UNSAFE = re.compile(r"[^\w\-. /:]")  # what MLflow refuses in a metric name


def _key(prefix: str, name: str) -> str:
    return _UNSAFE.sub("_", prefix + name)


def run_metrics(run: Run, prefix: str = PREFIX) -> list[tuple[str, float, int]]:
    """A run's figures as MLflow metrics: (name, value, step)."""
    figures = {
        "energy_kwh": j_to_kwh(run.energy_j),
        "co2e_kg": g_to_kg(run.co2e_g),
        "water_l": run.water_l,
        "duration_s": run.duration_s,
        "machine_energy_kwh": j_to_kwh(run.machine_energy_j),
        "intensity_g_per_kwh": run.intensity_g_per_kwh,
        "pue": run.pue,
    }
    for part in run.components:
        figures[f"energy_kwh.{part.name}"] = j_to_kwh(part.energy_j)
    if run.prediction is not None:
        p = run.prediction
        for name, figure, convert in (
            ("energy_kwh", p.energy_j, j_to_kwh),
            ("co2e_kg", p.co2e_g, g_to_kg),
            ("duration_s", p.duration_s, float),
        ):
            figures[f"predicted_{name}"] = convert(figure.value)
            figures[f"predicted_{name}_low"] = convert(figure.low)
            figures[f"predicted_{name}_high"] = convert(figure.high)
    metrics = [(_key(prefix, name), value, 0) for name, value in figures.items()]
    for window in run.windows:
        number = window.name.removeprefix("epoch-")
        if window.parent is None and window.name.startswith("epoch-") and number.isdigit():
            metrics.append((_key(prefix, "epoch_energy_kwh"), j_to_kwh(window.energy_j), int(number)))
            metrics.append((_key(prefix, "epoch_co2e_kg"), g_to_kg(window.co2e_g), int(number)))
    return metrics


def run_tags(run: Run, prefix: str = PREFIX) -> dict[str, str]:
    """What says where a run's figures come from, as MLflow tags."""
    tags = {
        "run_id": run.id,
        "name": run.name,
        "status": run.status,
        "region": run.region,
        "intensity_source": run.intensity_source,
        "source": run.source,
        "attribution": run.attribution,
        "emissions_method": run.emissions_method,
        "version": run.wattwise_version,
    }
    return {_key(prefix, name): value[:5000] for name, value in tags.items()}


def _active_run_id() -> str:
    active = mlflow.active_run()
    if active is None:
        raise ConfigError("no MLflow run is active: log inside `with mlflow.start_run():`, or pass run_id=")
    return str(active.info.run_id)


def _report_wanted(report: bool | None) -> bool:
    installed = importlib.util.find_spec("jinja2") is not None
    if report and not installed:
        raise ConfigError("the HTML report needs Jinja2: pip install 'wattwise[dashboard]' (or pass report=False)")
    return installed if report is None else report


def log_run(
    run: Run,
    *,
    run_id: str | None = None,
    client: MlflowClient | None = None,
    samples: Iterable[Sample] | None = None,
    report: bool | None = None,
    prefix: str = PREFIX,
) -> str | None:
    """Log ``run`` to the MLflow run ``run_id`` (default: the active one); the MLflow run id, None off the main
    process. ``samples`` draw the report's power plot (default: the run's samples in the wattwise store, if it has
    them); ``report`` None logs the HTML report when Jinja2 is installed, True requires it, False never."""
    if not is_main_process():
        return None
    want_report = _report_wanted(report)
    target = run_id if run_id is not None else _active_run_id()
    client = client if client is not None else MlflowClient()
    stamp = int((run.ended_at.timestamp() if run.ended_at is not None else time.time()) * 1000)
    tags = [RunTag(key, value) for key, value in run_tags(run, prefix).items()]
    metrics = [Metric(key, value, stamp, step) for key, value, step in run_metrics(run, prefix)]
    client.log_batch(target, tags=tags)
    for start in range(0, len(metrics), _BATCH):
        client.log_batch(target, metrics=metrics[start : start + _BATCH])
    if want_report:
        from wattwise.report.build import run_page

        shown = list(samples) if samples is not None else _stored_samples(run.id)
        with tempfile.TemporaryDirectory(prefix="wattwise-mlflow-") as folder:
            page = Path(folder) / f"{run.id}.html"
            page.write_text(run_page(run=run, samples=shown), encoding="utf-8")
            client.log_artifact(target, str(page), artifact_path="wattwise")
    return target


def _stored_samples(run_id: str) -> list[Sample]:
    """The run's samples from the wattwise store the settings name; none if it cannot give them."""
    from wattwise.config import Settings
    from wattwise.errors import StoreError
    from wattwise.store import open_store

    try:
        with open_store(Settings.load().db_url, read_only=True) as store:
            return list(store.iter_samples(run_id))
    except StoreError:
        return []


class MlflowObserver(RunObserver):
    """Logs each run it observes to MLflow when the run ends (see :func:`log_run`).

    The MLflow run is ``run_id``, else the one active when the wattwise run started (so a framework that ends its
    MLflow run before wattwise's end still gets the figures). The run's samples are kept as they come, for the
    report's power plot. A failure to log is one warning; the run is stored all the same.
    """

    def __init__(
        self,
        run_id: str | None = None,
        *,
        client: MlflowClient | None = None,
        report: bool | None = None,
        prefix: str = PREFIX,
    ) -> None:
        self.run_id = run_id
        self.client = client
        self.report = _report_wanted(report)  # a report asked for without Jinja2 fails here, not at the run's end
        self.prefix = prefix
        self._targets: dict[str, str] = {}
        self._samples: dict[str, list[Sample]] = {}

    def run_started(self, run: Run) -> None:
        if not is_main_process():
            return
        self._targets[run.id] = self.run_id if self.run_id is not None else _active_run_id()
        if self.report:
            self._samples[run.id] = []

    def samples_taken(self, run_id: str, samples: Sequence[Sample]) -> None:
        kept = self._samples.get(run_id)
        if kept is not None:
            kept.extend(samples)

    def run_ended(self, run: Run) -> None:
        target = self._targets.pop(run.id, None)
        samples = self._samples.pop(run.id, [])
        if target is not None:
            log_run(run, run_id=target, client=self.client, samples=samples, report=self.report, prefix=self.prefix)
