"""What every framework callback does, in one place: one tracker from "training begins" to "training ends".

The callbacks (:mod:`~wattwise.integrations.huggingface`, :mod:`~wattwise.integrations.lightning`,
:mod:`~wattwise.integrations.keras`) map their framework's hooks onto :class:`TrainingRun` and nothing more. It
starts a :class:`~wattwise.Tracker` when training begins, marks each epoch with :meth:`~wattwise.Tracker.epoch_end`
(so the early prediction works with the planned epochs) and stops it when training ends, stored ``complete``.

It measures in the main process only (the callback asks its framework which one that is; :func:`is_main_process`
reads ``RANK`` where the framework has no notion of its own), except in a distributed job wattwise itself
recognises (torchrun's variables, ``distributed`` on): there every rank measures its own part and reports it to
rank 0, which stores one run with them all (see :mod:`wattwise.measure.job`); a tracker on rank 0 alone would
store the job with every other rank ``missing``. Logs and observers are the main process's only.

A failure of wattwise while training (a store that cannot be opened or written, a power source gone) is one
warning line and the training goes on unmeasured: a measuring tool must not end the work it measures. A bad
setting fails where the callback is built, before training starts: an unknown setting or region, a store URL no
store takes, an observer that is none (``settings`` may be a :class:`~wattwise.Settings` or a mapping of settings;
``observers`` one observer or several).

Training that ends in an exception the framework does not report (transformers and Keras have no hook for it)
leaves the run open. The next training that begins in the process, with this callback or any other, ends it first,
stored ``failed`` ("another training began before this one ended"): otherwise the old tracker would go on
measuring the new training. The runs still open are found through a class attribute, the set ``_open``: a run
joins it when its tracker starts and leaves it when it ends, so it holds only runs still measuring, even those whose
callback was dropped (a new Trainer, a new model's ``fit``), and there is nothing to reset between tests. A run that
no later training ends is left to the tracker's exit hook, which stores it ``incomplete`` when the process ends.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any, ClassVar, Literal

from wattwise.config import Settings
from wattwise.errors import ConfigError, WattwiseError
from wattwise.units import g_to_kg, j_to_kwh

if TYPE_CHECKING:
    from wattwise.measure.observers import RunObserver
    from wattwise.measure.tracker import Tracker
    from wattwise.records import Run

__all__ = [
    "EMISSIONS_KEY",
    "ENERGY_KEY",
    "EndStatus",
    "TrainingRun",
    "is_main_process",
    "observer_list",
    "resolve_settings",
]

EndStatus = Literal["complete", "incomplete", "failed"]
END_STATUSES: tuple[EndStatus, ...] = ("complete", "incomplete", "failed")
ENERGY_KEY = "energy_kwh"  # the run's energy so far, in the logs a callback adds to
EMISSIONS_KEY = "co2e_kg"  # the run's emissions so far

log = logging.getLogger(__name__)  # one line on stderr by Python's last-resort handler


def is_main_process(env: Mapping[str, str] | None = None) -> bool:
    """False in a process whose ``RANK`` (torchrun, Accelerate, DeepSpeed) is set to anything but 0."""
    rank = (os.environ if env is None else env).get("RANK", "").strip()
    return rank in ("", "0")


def resolve_settings(settings: Settings | Mapping[str, Any] | None, overrides: Mapping[str, Any]) -> Settings:
    """The settings a run will use, resolved now (its region and store URL too) so a bad one fails where the
    integration is built, not as a warning once training has begun. ``settings`` is a :class:`~wattwise.Settings`,
    or a mapping of settings (``{"region": "DE"}``) taken as overrides, under ``overrides`` themselves."""
    from wattwise.carbon.regions import resolve_region
    from wattwise.store import check_url

    if settings is None or isinstance(settings, Mapping):
        resolved = Settings.load({**(settings or {}), **overrides})
    elif isinstance(settings, Settings):
        resolved = settings.replace(**overrides) if overrides else settings
    else:
        raise ConfigError(
            f"settings must be a wattwise.Settings or a mapping of settings such as {{'region': 'DE'}} "
            f"(got {type(settings).__name__})"
        )
    resolve_region(resolved.region)  # UnknownRegionError names the closest valid regions
    check_url(resolved.db_url)  # db="mysql://…": ConfigError naming the forms a store takes
    return resolved


def observer_list(observers: RunObserver | Iterable[RunObserver]) -> tuple[RunObserver, ...]:
    """``observers`` as a tuple, checked: one observer alone is taken as a list of one; ConfigError for anything that
    is not observers."""
    from wattwise.measure.observers import Observers, RunObserver

    if isinstance(observers, RunObserver):
        return (observers,)
    if isinstance(observers, str | bytes) or not isinstance(observers, Iterable):
        kind = type(observers).__name__
        raise ConfigError(f"observers must be a list of wattwise.RunObserver, e.g. [MlflowObserver()] (got {kind})")
    chosen = tuple(observers)
    Observers(chosen)  # ConfigError for one that is not a RunObserver
    return chosen


class TrainingRun:
    """One tracker over one training, with its epochs; every method is a no-op while none runs."""

    # the runs of this process still measuring: a training that begins ends the others (see the module docstring)
    _open: ClassVar[set[TrainingRun]] = set()

    def __init__(
        self,
        name: str | None = None,
        *,
        settings: Settings | Mapping[str, Any] | None = None,
        observers: RunObserver | Iterable[RunObserver] = (),
        **overrides: Any,
    ) -> None:
        self.name = name
        self.settings = resolve_settings(settings, overrides)
        self.observers = observer_list(observers)  # a wrong observer fails here, not when training begins
        self.tracker: Tracker | None = None
        self.run: Run | None = None  # the last training's final record, once it has ended
        self._epochs_j = 0.0  # the epochs' energy and emissions so far: the run's, exactly, at an epoch's end
        self._epochs_g = 0.0

    def measures_here(self, main: bool) -> bool:
        """Whether this process measures: the ``main`` one, and every rank of a job wattwise recognises."""
        if main:
            return True
        if not self.settings.distributed:
            return False
        from wattwise.measure.ranks import detect

        try:
            return detect() is not None
        except ConfigError:  # a launcher's contradictory variables: rank 0's tracker says so
            return False

    @property
    def running(self) -> bool:
        return self.tracker is not None and self.tracker.running

    def begin(self, epochs: int | None = None, *, name: str | None = None) -> None:
        """Start measuring; ``epochs``: how many this training plans (None or 0: unknown, no prediction)."""
        from wattwise.measure.tracker import Tracker

        if self.running:  # the last training ended without its end hook (an exception the framework kept quiet)
            self.end("failed", error="training ended without reaching its end hook (an exception?)")
        for other in list(TrainingRun._open):  # another callback's, left open the same way: it would measure this one
            if other is not self and other.running:
                other.end("failed", error="another training began before this one ended (an exception?)")
        TrainingRun._open.discard(self)
        self.run, self._epochs_j, self._epochs_g = None, 0.0, 0.0
        planned = epochs if epochs is not None and epochs > 0 else None
        try:
            tracker = Tracker(self.name or name, settings=self.settings, epochs=planned, observers=self.observers)
            tracker.start()
        except WattwiseError as exc:
            log.warning("wattwise: this training is not measured: %s", exc)
            self.tracker = None
            return
        self.tracker = tracker
        TrainingRun._open.add(self)

    def epoch_end(self) -> dict[str, float]:
        """Mark an epoch's end; the run's energy (kWh) and emissions (kg CO2e) up to it, for the logs."""
        if not self.running:
            return {}
        assert self.tracker is not None
        try:
            epoch = self.tracker.epoch_end()
        except WattwiseError as exc:
            log.warning("wattwise: epoch not recorded: %s", exc)
            return {}
        self._epochs_j += epoch.energy_j  # epoch 1 starts where the run starts, each next one where the last ended
        self._epochs_g += epoch.co2e_g
        return {ENERGY_KEY: j_to_kwh(self._epochs_j), EMISSIONS_KEY: g_to_kg(self._epochs_g)}

    def figures(self) -> dict[str, float]:
        """The run's energy and emissions so far, as of the sampler's last reading (at most ``interval_s`` old)."""
        if not self.running:
            return {}
        assert self.tracker is not None
        status = self.tracker.live_status()
        return {ENERGY_KEY: j_to_kwh(status.energy_j), EMISSIONS_KEY: g_to_kg(status.co2e_g)}

    def fail(self, exc: BaseException) -> Run | None:
        """End the run because training raised ``exc``: ``incomplete`` for Ctrl-C, else ``failed``."""
        from wattwise.measure.edges import outcome

        status, error = outcome(exc, ())  # the tracker's own reading of how a block ended
        return self.end(next((s for s in END_STATUSES if s == status), "failed"), error=error)

    def end(self, status: EndStatus = "complete", *, error: str | None = None) -> Run | None:
        """Stop and store the run (``status`` complete unless said otherwise); its final record, or None."""
        if status not in END_STATUSES:
            raise ConfigError(f"a run ends complete, incomplete or failed (got {status!r})")
        tracker, self.tracker = self.tracker, None
        TrainingRun._open.discard(self)
        if tracker is None:
            return self.run
        if tracker.result is not None:  # stopped already (a signal, the exit hook)
            self.run = tracker.result
            return self.run
        try:
            self.run = tracker.stop(status, error=error)
        except WattwiseError as exc:  # a store that refused it: the message says where the record was written
            log.warning("wattwise: %s", exc)
            self.run = tracker.result
        return self.run
