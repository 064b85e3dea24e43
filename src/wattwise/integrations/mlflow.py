"""MLflow: a wattwise run's figures, tags and HTML report logged to an MLflow run.

::

    import mlflow
    from wattwise.integrations.mlflow import MlflowObserver, log_run

    with mlflow.start_run():
        with wattwise.track("train", observers=[MlflowObserver()]) as t:  # logged when the run ends
            ...
        log_run(t)  # or by hand, to the active MLflow run (or run_id=...), its samples from the tracker's store

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
import posixpath
import re
import tempfile
import time
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from wattwise.errors import ConfigError
from wattwise.integrations.training import is_main_process
from wattwise.measure.observers import RunObserver
from wattwise.report.run_view import DISPLAY_POINTS
from wattwise.units import g_to_kg, j_to_kwh

try:
    import mlflow
    from mlflow.entities import Metric, RunTag
    from mlflow.tracking import MlflowClient
except ImportError as exc:
    raise ConfigError(f"logging to MLflow needs mlflow ({exc}): pip install 'wattwise[mlflow]'") from None

if TYPE_CHECKING:
    from wattwise.measure.tracker import Tracker
    from wattwise.records import Run, Sample
    from wattwise.store.base import RunStore

__all__ = ["PREFIX", "MlflowObserver", "ThinnedSamples", "check_prefix", "log_run", "run_metrics", "run_tags"]

PREFIX = "wattwise."
_BATCH = 1000  # MLflow takes at most this many metrics in one call
_UNSAFE = re.compile(r"[^\w\-. /:]")  # what MLflow refuses in a metric name
PREFIX_MAX = 100  # MLflow's keys hold 250 characters: room left for the longest names (a channel's energy)
KEPT_PER_CHANNEL = 2 * DISPLAY_POINTS  # samples an observer keeps per channel for the report's plot (peaks kept)


def check_prefix(prefix: str) -> str:
    """``prefix`` when MLflow takes it before every name: its own characters (letters, digits, ``_-. /:``), no path
    that resolves elsewhere (``../``, ``a//b``, a leading ``/``), at most :data:`PREFIX_MAX` characters."""
    if not isinstance(prefix, str):
        raise ConfigError(f"prefix must be text such as 'wattwise.' (got {type(prefix).__name__})")
    sample = prefix + "energy_kwh"
    moved = posixpath.normpath(sample) != sample or sample.startswith(("/", ".."))  # what MLflow calls not unique
    if len(prefix) > PREFIX_MAX or _UNSAFE.search(prefix) or moved:
        raise ConfigError(
            f"prefix must be at most {PREFIX_MAX} letters, digits or _-. /: that MLflow keeps as they are (no '..', "
            f"'//' or leading '/'), such as 'wattwise.' (got {prefix[:60]!r}{'…' if len(prefix) > 60 else ''})"
        )
    return prefix


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
    run: Run | Tracker,
    *,
    run_id: str | None = None,
    client: MlflowClient | None = None,
    samples: Iterable[Sample] | None = None,
    db: str | RunStore | None = None,
    report: bool | None = None,
    prefix: str = PREFIX,
) -> str | None:
    """Log ``run`` to the MLflow run ``run_id`` (default: the active one); the MLflow run id, None off the main
    process. ``run`` is a final record, or a tracker that has ended (its ``result``). ``samples`` draw the report's
    power plot; by default the run's samples are read from ``db`` (a store URL or an open store), else from the store
    the tracker's settings name (``track(db=...)``), else from the store the settings name. ``report`` None logs the
    HTML report when Jinja2 is installed, True requires it, False never."""
    from wattwise.measure.tracker import Tracker

    if isinstance(run, Tracker):
        if run.result is None:
            raise ConfigError("log_run() takes a run that has ended: call it after the tracker has stopped")
        db = run.settings.db_url if db is None else db
        run = run.result
    check_prefix(prefix)
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

        shown = list(samples) if samples is not None else _stored_samples(run.id, db)
        with tempfile.TemporaryDirectory(prefix="wattwise-mlflow-") as folder:
            page = Path(folder) / f"{run.id}.html"
            page.write_text(run_page(run=run, samples=shown), encoding="utf-8")
            client.log_artifact(target, str(page), artifact_path="wattwise")
    return target


def _stored_samples(run_id: str, db: str | RunStore | None) -> list[Sample]:
    """The run's samples from ``db`` (an open store, or a store URL; None: the one the settings name); none if it
    cannot give them."""
    from wattwise.config import Settings
    from wattwise.errors import StoreError
    from wattwise.store import RunStore, open_store

    if isinstance(db, RunStore):
        return list(db.iter_samples(run_id))
    try:
        with open_store(db if db is not None else Settings.load().db_url, read_only=True) as store:
            return list(store.iter_samples(run_id))
    except StoreError:
        return []


class ThinnedSamples:
    """A run's samples as they come, kept for the report's power plot: at most ``2 × limit`` per channel, thinned to
    ``limit`` (the first, lowest, highest and last sample of equal time buckets: peaks and troughs survive) whenever a
    channel reaches that, so a day-long run holds a few thousand samples per channel, not every one."""

    def __init__(self, limit: int = KEPT_PER_CHANNEL) -> None:
        self.limit = max(8, limit)
        self._by_channel: dict[str, list[Sample]] = {}

    def extend(self, samples: Iterable[Sample]) -> None:
        for sample in samples:
            kept = self._by_channel.setdefault(sample.channel, [])
            kept.append(sample)
            if len(kept) >= 2 * self.limit:
                self._by_channel[sample.channel] = _thin(kept, self.limit // 4)

    def __len__(self) -> int:
        return sum(len(kept) for kept in self._by_channel.values())

    def samples(self) -> list[Sample]:
        """Every sample kept, channel by channel, each channel in time order."""
        return [sample for kept in self._by_channel.values() for sample in kept]


def _thin(samples: list[Sample], buckets: int) -> list[Sample]:
    """At most ``4 × buckets`` of ``samples`` (one channel, in time order): per bucket of equal time, its first,
    lowest, highest and last (as :func:`wattwise.report.svg.downsample` thins a plotted line)."""
    first, last = samples[0].t_s, samples[-1].t_s
    width = (last - first) / buckets or 1.0
    by_bucket: dict[int, list[Sample]] = {}
    for sample in samples:
        by_bucket.setdefault(min(buckets - 1, int((sample.t_s - first) / width)), []).append(sample)
    out: list[Sample] = []
    for group in by_bucket.values():
        chosen = {id(s): s for s in (group[0], min(group, key=_power), max(group, key=_power), group[-1])}
        out.extend(sorted(chosen.values(), key=lambda s: s.t_s))
    return out


def _power(sample: Sample) -> float:
    return sample.power_w


class MlflowObserver(RunObserver):
    """Logs each run it observes to MLflow when the run ends (see :func:`log_run`).

    The MLflow run is ``run_id``, else the one active when the wattwise run started (so a framework that ends its
    MLflow run before wattwise's end still gets the figures). The run's samples are kept as they come for the
    report's power plot, thinned to a few thousand per channel (:class:`ThinnedSamples`). A bad ``prefix`` fails
    here; a failure to log is one warning, and the run is stored all the same.
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
        self.prefix = check_prefix(prefix)
        self._targets: dict[str, str] = {}
        self._samples: dict[str, ThinnedSamples] = {}

    def run_started(self, run: Run) -> None:
        if not is_main_process():
            return
        self._targets[run.id] = self.run_id if self.run_id is not None else _active_run_id()
        if self.report:
            self._samples[run.id] = ThinnedSamples()

    def samples_taken(self, run_id: str, samples: Sequence[Sample]) -> None:
        kept = self._samples.get(run_id)
        if kept is not None:
            kept.extend(samples)

    def run_ended(self, run: Run) -> None:
        target = self._targets.pop(run.id, None)
        kept = self._samples.pop(run.id, None)
        samples = kept.samples() if kept is not None else []
        if target is not None:
            log_run(run, run_id=target, client=self.client, samples=samples, report=self.report, prefix=self.prefix)
