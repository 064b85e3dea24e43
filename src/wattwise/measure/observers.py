"""What a run reports besides its store: the observer hook the exporter, integrations and users attach.

A :class:`RunObserver` is told when a run starts, gets every sample kept (the same samples the store gets), each
checkpoint's partial record (windows and epochs included) and the final record; before that record is saved it
may add what a cluster's own counters recorded (``external_figures``: DCGM, Kepler), so they go in with the one
final save. Observers are called on the
tracker's threads and must be quick (a slow one slows the sampling: hand work to a thread of your own); one that
raises is warned about once and detached, and the run goes on (the
measurement never depends on an observer; the store alone decides whether a run is kept).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from wattwise.measure.live import LiveStatus
    from wattwise.records import ExternalFigure, Run, Sample

__all__ = ["Observers", "RunObserver"]

log = logging.getLogger(__name__)  # one line on stderr by Python's last-resort handler


class RunObserver:
    """Override the hooks you need; each does nothing by default."""

    def run_started(self, run: Run) -> None:
        """The run's first record (status "running"), once it is in the store."""

    def samples_taken(self, run_id: str, samples: Sequence[Sample]) -> None:
        """Samples kept for the power time series (cumulative ``energy_j`` per channel), as they are taken."""

    def live(self, run_id: str, status: LiveStatus) -> None:
        """Power by component over the last interval and the run so far, after each of the sampler's readings
        (every ``interval_s``): what ``wattwise run``'s live panel shows. Only called for observers that define it."""

    def checkpoint(self, run: Run) -> None:
        """A partial record saved while the run goes on (every ``flush_s``)."""

    def external_figures(self, run: Run) -> Sequence[ExternalFigure]:
        """What a cluster's own counters recorded for the run (DCGM, Kepler…), asked once the run has ended and
        before its final record is saved: the figures go into ``run.external`` with that one save."""
        return ()

    def run_ended(self, run: Run) -> None:
        """The final record (complete, incomplete or failed), whether or not the store took it."""


class Observers:
    """Calls every observer's hook; an observer that raises is warned about once and detached."""

    def __init__(self, observers: Iterable[RunObserver] = ()) -> None:
        observers = list(observers)  # a generator is read once, here
        for observer in observers:
            if not isinstance(observer, RunObserver):
                from wattwise.errors import ConfigError

                raise ConfigError(f"an observer must subclass wattwise.RunObserver (got {type(observer).__name__})")
        self._active = list(observers)
        self._lock = threading.Lock()

    def __bool__(self) -> bool:
        return bool(self._active)

    @property
    def wants_live(self) -> bool:
        """Whether an attached observer defines :meth:`RunObserver.live` (the sampler computes the status only then)."""
        return any(type(o).live is not RunObserver.live for o in self._active)

    @property
    def all(self) -> tuple[RunObserver, ...]:
        """The observers still attached (a decorator hands them to the run of each call)."""
        with self._lock:
            return tuple(self._active)

    def _call(self, hook: str, *args: object) -> list[object]:
        """Each active observer's answer to ``hook`` (one that raises is warned about and detached)."""
        if not self._active:  # the sampling loop calls this every tick: nothing to do without observers
            return []
        with self._lock:
            active = list(self._active)
        answers: list[object] = []
        for observer in active:
            try:
                answers.append(getattr(observer, hook)(*args))
            except (Exception, SystemExit) as exc:  # an observer never stops the measurement (Ctrl-C still does)
                with self._lock:
                    if observer in self._active:
                        self._active.remove(observer)
                log.warning(
                    "wattwise: observer %s failed in %s and was detached: %s", type(observer).__name__, hook, exc
                )
        return answers

    def run_started(self, run: Run) -> None:
        self._call("run_started", run)

    def samples_taken(self, run_id: str, samples: Sequence[Sample]) -> None:
        if samples:
            self._call("samples_taken", run_id, samples)

    def live(self, run_id: str, status: LiveStatus) -> None:
        self._call("live", run_id, status)

    def checkpoint(self, run: Run) -> None:
        self._call("checkpoint", run)

    def external_figures(self, run: Run) -> Run:
        """``run`` with the figures the observers give in ``external`` (an answer that is not figures is dropped,
        with a warning)."""
        from wattwise.records import ExternalFigure

        figures: list[ExternalFigure] = []
        for answer in self._call("external_figures", run):
            given: list[object] = list(answer) if isinstance(answer, list | tuple) else [answer]
            good = [f for f in given if isinstance(f, ExternalFigure)]
            if len(good) == len(given):
                figures.extend(good)
            else:
                log.warning("wattwise: an observer's external_figures gave something else than ExternalFigure")
        return run.with_external(figures) if figures else run

    def run_ended(self, run: Run) -> None:
        self._call("run_ended", run)
