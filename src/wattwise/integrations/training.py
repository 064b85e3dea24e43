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
setting fails where the callback is built, before training starts. Training that ends in an exception the
framework does not report (transformers and Keras have no hook for it) leaves the run to the tracker's exit hook,
which stores it ``incomplete`` when the process ends; a later training with the same callback ends it first.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, Literal

from wattwise.config import Settings
from wattwise.errors import ConfigError, WattwiseError
from wattwise.units import g_to_kg, j_to_kwh

if TYPE_CHECKING:
    from wattwise.measure.observers import RunObserver
    from wattwise.measure.tracker import Tracker
    from wattwise.records import Run

__all__ = ["EMISSIONS_KEY", "ENERGY_KEY", "EndStatus", "TrainingRun", "is_main_process", "resolve_settings"]

EndStatus = Literal["complete", "incomplete", "failed"]
END_STATUSES: tuple[EndStatus, ...] = ("complete", "incomplete", "failed")
ENERGY_KEY = "energy_kwh"  # the run's energy so far, in the logs a callback adds to
EMISSIONS_KEY = "co2e_kg"  # the run's emissions so far

log = logging.getLogger(__name__)  # one line on stderr by Python's last-resort handler


def is_main_process(env: Mapping[str, str] | None = None) -> bool:
    """False in a process whose ``RANK`` (torchrun, Accelerate, DeepSpeed) is set to anything but 0."""
    rank = (os.environ if env is None else env).get("RANK", "").strip()
    return rank in ("", "0")


def resolve_settings(settings: Settings | None, overrides: Mapping[str, Any]) -> Settings:
    """The settings a run will use, resolved now (its region too) so a bad one fails where the integration is built,
    not as a warning once training has begun."""
    from wattwise.carbon.regions import resolve_region

    if settings is None:
        resolved = Settings.load(overrides)
    else:
        resolved = settings.replace(**overrides) if overrides else settings
    resolve_region(resolved.region)  # UnknownRegionError names the closest valid regions
    return resolved


class TrainingRun:
    """One tracker over one training, with its epochs; every method is a no-op while none runs."""

    def __init__(
        self,
        name: str | None = None,
        *,
        settings: Settings | None = None,
        observers: Sequence[RunObserver] = (),
        **overrides: Any,
    ) -> None:
        from wattwise.measure.observers import Observers

        self.name = name
        self.settings = resolve_settings(settings, overrides)
        self.observers = tuple(observers)
        Observers(self.observers)  # a wrong observer fails here, not when training begins
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
