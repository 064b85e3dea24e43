"""The tracker: one run, measured from ``start()`` to ``stop()``, with named nested windows and epochs.

Use it as a context manager, a decorator or with explicit calls — all three go through the same code::

    with wattwise.track("train", epochs=10) as t:
        for epoch in range(10):
            with t.window("forward"):
                ...
            t.epoch_end()
    print(t.result.energy_j)

Counters are read at every boundary (start, stop, window and epoch edges), so windows are exact however short;
a background thread reads them every ``interval_s`` for the time series, the live panel and the checkpoint that
reaches the store at least every ``flush_s`` seconds (a crash loses at most that much of the series).
"""

from __future__ import annotations

import contextlib
import functools
import os
import signal
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, ParamSpec, TypeVar

from wattwise import validate
from wattwise.config import Settings
from wattwise.errors import ConfigError, StoreError, TrackerStateError
from wattwise.measure import accounting
from wattwise.measure.assemble import assemble
from wattwise.measure.edges import CudaSync, outcome, sampling_interval
from wattwise.measure.lifecycle import guard
from wattwise.measure.live import LiveStatus, live_status
from wattwise.measure.meters import MeterSet, Reading
from wattwise.measure.notes import clip, failure_notes
from wattwise.measure.observers import Observers, RunObserver
from wattwise.measure.persist import RunWriter
from wattwise.measure.samples import SampleThinner
from wattwise.measure.work import Count, WorkCounter, counted
from wattwise.record_schema import MAX_TEXT
from wattwise.records import Attribution, Prediction, Run, RunStatus, WindowRecord, Work

if TYPE_CHECKING:
    from wattwise.devices.base import PowerSource
    from wattwise.devices.host import HostReader
    from wattwise.measure.emissions import CarbonAccount, CarbonPlan
    from wattwise.measure.persist import RecordSink
    from wattwise.measure.rank_exchange import KeyValue
    from wattwise.measure.ranks import Topology
    from wattwise.store.base import RunStore

P = ParamSpec("P")
_CHECKPOINT_WINDOWS = 1_000  # checkpoints carry at most this many windows; the final record has them all
R = TypeVar("R")


def _new_run_id(now: datetime) -> str:
    return f"{now:%Y%m%d-%H%M%S}-{os.urandom(3).hex()}"


class Tracker:
    """Measures one run. Build it with :func:`wattwise.track`; see the module docstring."""

    def __init__(
        self,
        name: str | None = None,
        *,
        settings: Settings | None = None,
        epochs: int | None = None,
        store: RunStore | None = None,
        sources: Sequence[PowerSource] | None = None,
        host: HostReader | None = None,
        command: Sequence[str] | None = None,
        wall_clock: Callable[[], float] = time.time,
        carbon: CarbonPlan | None = None,
        handle_signals: bool = True,
        pace: Callable[[threading.Event, float], bool] | None = None,
        observers: Iterable[RunObserver] = (),
        distributed: tuple[Topology, KeyValue] | None = None,
    ) -> None:
        if name is not None and (not isinstance(name, str) or len(name) > MAX_TEXT):
            raise ConfigError(f"a run name is text of at most {MAX_TEXT:,} characters (got {type(name).__name__})")
        self.name = name or "run"
        self._wall_clock = wall_clock
        self.settings = settings if settings is not None else Settings.load()
        self.epochs_planned = (
            validate.EPOCHS.check_int(epochs, "track(epochs=...)") if epochs is not None else self.settings.epochs
        )
        self.command = tuple(clip(str(arg)) for arg in command) if command is not None else None
        self._handle_signals = handle_signals  # `wattwise run` relays signals itself
        self._interval_s = self.settings.interval_s
        # how the sampler waits for its next reading (True: stop); benchmarks replay hours of simulated time with one
        # that does not wait, on a host whose clock they drive
        self._pace = pace or (lambda stop, interval_s: stop.wait(interval_s))
        self._observers = Observers(observers)  # checked here: a wrong one fails before anything starts
        # this process's rank in a distributed job and the job's key-value store (found at start() unless given)
        self._distributed = distributed
        self._guarded = False
        self._saved = False  # the final record is in the store (or, refused, in a file)
        self._pid: int | None = None  # the process that started the run
        self._signals: list[str] = []  # signals the program's own handlers took while the run went on
        self._store = store
        self._owns_store = store is None
        self._sources = sources
        self._host = host
        self.result: Run | None = None
        self._ending: Run | None = None  # this process's final record, once stop() has taken the last reading
        self.run_id: str | None = None
        self._meters: MeterSet | None = None
        self._plan: CarbonPlan | None = carbon
        self._account: CarbonAccount | None = None
        self._origin: Reading | None = None
        self._last: Reading | None = None
        self._previous: Reading | None = None
        self._started_at: datetime | None = None
        self._notes: list[str] = []
        self._cuda = CudaSync(self.settings.cuda_sync, command=self.command is not None)
        self._lock = threading.Lock()
        self._stop_lock = threading.Lock()
        self._writer: RecordSink | None = None
        self._thinner: SampleThinner | None = None
        self._last_flush_t = 0.0
        self._stop_event = threading.Event()
        self._thread: threading.Thread | None = None
        self._thread_error: BaseException | None = None
        self._open_windows: dict[str, Reading] = {}
        self._window_order: list[str] = []
        self._window_parents: dict[str, str | None] = {}
        self._window_started: dict[str, datetime] = {}
        self._windows: list[WindowRecord] = []
        self._epoch_mark: Reading | None = None
        self._epoch_energy_j: list[float] = []
        self._epoch_duration_s: list[float] = []
        self._prediction: Prediction | None = None
        self._work = WorkCounter()
        self.ticks = 0  # background readings so far (benchmarks and the live panel use it)

    # -- lifecycle -------------------------------------------------------------------------------------------

    @property
    def attribution(self) -> Attribution:
        return "machine" if self.settings.attribution == "machine" else "process"

    @property
    def running(self) -> bool:
        return self._origin is not None and self.result is None

    def start(self) -> Tracker:
        if self._origin is not None:
            raise TrackerStateError("tracker already started; build a new one with wattwise.track() for a new run")
        from wattwise.measure.emissions import CarbonPlan

        if self._plan is None:  # a bad region or provider fails here, before anything is opened
            self._plan = CarbonPlan(self.settings)
        self._notes.extend(self._plan.notes)
        try:
            distributed = self._find_job()
        except BaseException:
            self._plan.close()
            raise
        topology = None if distributed is None else distributed[0]
        if self._store is None and (topology is None or topology.main):  # only rank 0 of a job stores its run
            from wattwise.store.spool import open_for_run

            try:  # a shared store that cannot be reached: measured into the local spool
                self._store = open_for_run(self.settings.db_url, self.settings.home, self._notes)
            except BaseException:
                self._plan.close()
                raise
        try:
            sources = self._sources
            if sources is None:
                from wattwise.devices import discover

                found = discover(self.settings, rank=topology)
                sources = found.sources
                self._notes.extend(found.notes)
            if not sources and topology is None:  # a rank of a job may own nothing (its node's other ranks do)
                raise ConfigError("a run needs at least one power source; pass sources=None to discover them")
            host = self._host
            if host is None:
                from wattwise.devices.host import open_host
                from wattwise.measure.job import host_root

                host = open_host(host_root(topology, self._notes), self.settings.proc_root)
            from wattwise.measure.meters import unique_channels

            self._interval_s = sampling_interval(self.settings.interval_s, sources, self._notes)
            self._account = self._plan.account(unique_channels(sources), self.attribution)
            self._meters = MeterSet(host, sources, carbon=self._account, wall_clock=self._wall_clock)
            self._started_at = datetime.now(UTC)
            self._cuda(self._notes)
            self._origin = self._last = self._previous = self._epoch_mark = self._meters.read()
            self.run_id = _new_run_id(self._started_at)
            self._thinner = SampleThinner(self._meters.channels, self._origin, self.attribution, self._interval_s)
            self._writer = self._sink(distributed)
            self._writer.begin(self._record("running", self._origin))
        except BaseException:
            self._abort()
            raise
        self._last_flush_t = self._origin.t_s
        self._pid = os.getpid()
        self._thread = threading.Thread(target=self._loop, name=f"wattwise-sampler-{self.run_id}", daemon=True)
        self._thread.start()
        if self._handle_signals:  # after the sampler exists: a signal from now on can stop the run whole
            self._guarded = guard().enter(self)
        self._plan.start_refresh(self._account)
        return self

    def _find_job(self) -> tuple[Topology, KeyValue] | None:
        """This process's rank in a distributed job and the job's store, or None to measure it on its own."""
        if self._distributed is None and self.settings.distributed:
            from wattwise.measure.job import find_job

            self._distributed = find_job(self._notes)
        return self._distributed

    def _sink(self, distributed: tuple[Topology, KeyValue] | None) -> RecordSink:
        """The store's writer; in a distributed job, what :func:`wattwise.measure.job.job_sink` builds."""
        writer = RunWriter(self._store, self.settings.home, self._observers) if self._store is not None else None
        if distributed is None:
            assert writer is not None
            return writer
        from wattwise.measure.job import job_sink

        assert self._plan is not None and self._account is not None
        return job_sink(self.name, distributed, writer, self._plan, self._account, self.epochs_planned)

    def stop(self, status: RunStatus | None = None, *, error: str | None = None, exit_code: int | None = None) -> Run:
        """End the run, store its final record and return it. ``status`` defaults to ``complete``.

        If the store cannot take the record, the record is written as JSON under ``<home>/unsaved/`` and a
        StoreError says where (``wattwise runs import FILE``); ``self.result`` holds it either way.
        """
        return self._stop(status, error=error, exit_code=exit_code, hurry=False)

    def _stop(self, status: RunStatus | None, *, error: str | None, exit_code: int | None, hurry: bool) -> Run:
        """``stop()``; ``hurry``: the process is ending (a signal, the exit hook), so a distributed run's rank 0
        waits only briefly for the other ranks. The wait happens outside the stop lock: a signal's finaliser that
        arrives during it stores the run at once (with the signal as its status where the run had ended well)."""
        if self._origin is None or self._meters is None or self._writer is None:
            raise TrackerStateError("tracker.stop() called before start(); use `with wattwise.track(...)`")
        if self._forked():
            raise TrackerStateError(
                f"run {self.run_id} belongs to process {self._pid}: a forked child cannot stop it (its parent will)"
            )
        with self._stop_lock:
            if self.result is not None:
                if not self._saved:  # the final save was interrupted (a KeyboardInterrupt in it): save it now
                    self._save_final(self.result)
                return self.result
            if self._ending is None:
                self._ending = self._final_record(status or "complete", error, exit_code)
            elif self._ending.status == "complete" and status is not None and status != "complete":
                self._ending = self._ending.replace(status=status, error=None if error is None else clip(error))
            ending = self._ending
        run = self._writer.complete(ending, hurry=hurry)  # rank 0 of a job waits here for the other ranks
        with self._stop_lock:
            if self.result is not None:  # a finaliser stored the run while this one waited
                return self.result
            self.result = run
            self._save_final(run)
        if self._thread_error is not None:
            raise self._thread_error
        return run

    def _final_record(self, status: RunStatus, error: str | None, exit_code: int | None) -> Run:
        """Stop the sampler, take the last reading, close what is open: this process's final record."""
        assert self._meters is not None and self._writer is not None and self._origin is not None
        self._stop_event.set()
        thread = self._thread
        if thread is not None and thread.ident is not None and thread is not threading.current_thread():
            # a source whose read hangs must not hang stop() (nor the exit hook): the reading below then falls back
            # to the last one taken
            thread.join(timeout=max(5.0, 3 * self.settings.interval_s))
        self._cuda(self._notes)
        final = self._meters.read_or_last(_READ_WAIT_S, final=True) or self._last or self._origin
        cuda_note = self._cuda.closing_note()
        if cuda_note is not None:
            self._notes.append(cuda_note)
        if self._plan is not None:
            self._plan.close()
            self._notes.extend(self._plan.refresh_failures())
        with self._lock:
            if self._thinner is not None:
                self._writer.add(self._thinner.flush(final))
            self._previous, self._last = self._last, final
            for name in reversed(list(self._window_order)):
                self._close_window(name, final, note=" (closed at stop)")
        self._notes.extend(self._meters.notes())
        self._notes.extend(failure_notes(self._meters.errors(), self._origin.t_s))
        return self._record(status, final, ended=True, error=error, exit_code=exit_code)

    def _save_final(self, run: Run) -> None:
        """The final save, then the release of what the run held. An interruption (KeyboardInterrupt) leaves both
        for the next ``stop()`` (the exit hook's); a store that refuses the record leaves it in a file."""
        assert self._writer is not None and self._meters is not None
        try:
            self._writer.final(run)
        except StoreError:
            self._saved = True  # kept under unsaved/: nothing more to try
            self._release()
            raise
        self._saved = True
        self._release()

    def _release(self) -> None:
        assert self._meters is not None
        self._meters.close()
        if self._owns_store and self._store is not None:
            self._store.close()
        if self._guarded:
            guard().leave(self)

    def _forked(self) -> bool:
        """True in a child forked from the process that runs this tracker: the run is its parent's to keep."""
        return self._pid is not None and os.getpid() != self._pid

    # -- the end of the process (see wattwise.measure.lifecycle) -------------------------------------------------

    def on_signal(self, signum: int) -> None:
        """A signal the program handles itself arrived: note it and checkpoint now, so it is on disk."""
        if not self.running or self._meters is None or self._writer is None:
            return
        name = signal.Signals(signum).name
        reading = self._meters.read_or_last(_READ_WAIT_S)
        if reading is None or self._origin is None:
            return
        with self._lock:
            self._signals.append(name)
            self._notes.append(f"received {name} at +{reading.t_s - self._origin.t_s:.1f} s")
            checkpoint = self._record("running", reading, max_windows=_CHECKPOINT_WINDOWS)
        self._writer.checkpoint(checkpoint)

    def finalise(self, why: str) -> None:
        """Stop and store the run as incomplete because the process is ending; never raises."""
        if self._origin is None or self._saved or self._forked():
            return
        if self._signals and "SIG" not in why:
            why = f"{why} (after {', '.join(dict.fromkeys(self._signals))})"
        try:
            self._stop("incomplete", error=why, exit_code=None, hurry=True)
        except Exception as exc:  # the process is ending: say so, keep going
            import sys

            print(f"wattwise: run {self.run_id} could not be stored at exit: {exc}", file=sys.stderr)

    def _abort(self) -> None:
        if self._plan is not None:
            self._plan.close()
        if self._meters is not None:
            self._meters.close()
        elif self._sources is not None:
            for source in self._sources:
                source.close()
        if self._owns_store and self._store is not None:
            self._store.close()

    def __enter__(self) -> Tracker:
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: Any) -> None:
        if self._forked():  # a child forked inside the block leaves it: the run is its parent's
            return
        status, error = outcome(exc, self._signals)
        self.stop(status, error=error)

    def __call__(self, func: Callable[P, R]) -> Callable[P, R]:
        """Use as a decorator: every call of ``func`` is measured as a run of its own."""
        name = self.name if self.name != "run" else func.__qualname__

        @functools.wraps(func)
        def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
            tracker = Tracker(name, settings=self.settings, epochs=self.epochs_planned, observers=self._observers.all)
            with tracker:
                value = func(*args, **kwargs)
            wrapper.last_run = tracker.result  # type: ignore[attr-defined]
            return value

        wrapper.last_run = None  # type: ignore[attr-defined]
        return wrapper

    # -- windows and epochs ----------------------------------------------------------------------------------

    def begin_window(self, name: str) -> None:
        if not isinstance(name, str) or not name or len(name) > MAX_WINDOW_NAME:
            raise ConfigError(f"a window name is text of 1 to {MAX_WINDOW_NAME:,} characters (got {name!r:.60})")
        meters = self._require_running()
        self._cuda(self._notes)
        reading = meters.read()
        with self._lock:
            if name in self._open_windows:
                raise TrackerStateError(f"window {name!r} is already open; end it first or use another name")
            self._window_parents[name] = self._window_order[-1] if self._window_order else None
            self._open_windows[name] = reading
            self._window_order.append(name)
            self._window_started[name] = datetime.now(UTC)

    def end_window(self, name: str) -> WindowRecord:
        meters = self._require_running()
        self._cuda(self._notes)
        reading = meters.read()
        with self._lock:
            if name not in self._open_windows:
                raise TrackerStateError(f"window {name!r} was never opened (open windows: {self._window_order})")
            return self._close_window(name, reading)

    @contextlib.contextmanager
    def window(self, name: str) -> Iterator[None]:
        """A named span inside the run; windows nest (the innermost open window is the parent)."""
        self.begin_window(name)
        try:
            yield
        finally:
            self._end_window_if_open(name)

    def _end_window_if_open(self, name: str) -> None:
        """End ``name`` unless stop() (maybe from another thread) already closed it."""
        if self._forked():
            return
        self._cuda(self._notes)  # the block's queued GPU work belongs to it
        with self._stop_lock:
            if self.result is None and self._meters is not None:
                reading = self._meters.read()
                with self._lock:
                    if name in self._open_windows:
                        self._close_window(name, reading)

    def epoch_end(self) -> WindowRecord:
        """Mark the end of an epoch: records window ``epoch-N`` and updates the prediction of the whole run."""
        meters = self._require_running()
        self._cuda(self._notes)
        reading = meters.read()
        account = self._require_account()
        with self._lock:
            assert self._epoch_mark is not None and self._origin is not None
            parts = accounting.components(meters.channels, self._epoch_mark, reading, self.attribution)
            energy_j, _ = accounting.totals(parts)
            duration_s = reading.t_s - self._epoch_mark.t_s
            number = len(self._epoch_energy_j) + 1
            record = WindowRecord(
                name=f"epoch-{number}",
                started_at=datetime.now(UTC) - timedelta(seconds=duration_s),
                duration_s=duration_s,
                energy_j=energy_j,
                co2e_g=reading.co2e_g - self._epoch_mark.co2e_g,
                components={c.name: c.energy_j for c in parts},
            )
            self._windows.append(record)
            self._epoch_energy_j.append(energy_j)
            self._epoch_duration_s.append(duration_s)
            self._epoch_mark = reading
            if self.epochs_planned:
                from wattwise.measure.prediction import predict

                so_far, _ = accounting.totals(
                    accounting.components(meters.channels, self._origin, reading, self.attribution)
                )
                self._prediction = predict(
                    self._epoch_energy_j,
                    self._epoch_duration_s,
                    self.epochs_planned,
                    so_far,
                    reading.t_s - self._origin.t_s,
                    account.pue,
                    account.effective_intensity(),
                )
            return record

    def count(self, tokens: Count = None, requests: Count = None, prompt_tokens: Count = None) -> Work:
        """Add served work to the run: ``tokens`` generated (output) tokens, ``requests`` requests answered,
        ``prompt_tokens`` prompt tokens read; returns the totals so far. See :mod:`wattwise.measure.work`."""
        self._require_running()
        return self._work.add(counted(tokens, requests, prompt_tokens))

    def note(self, text: str) -> None:
        """Add a line to the run's notes (what a caller wants the record to say about how it was measured)."""
        with self._lock:
            self._notes.append(text)

    @property
    def samples_stored(self) -> int:
        """How many samples of this run the store has accepted so far."""
        return self._writer.samples_stored if self._writer is not None else 0

    @property
    def samples_taken(self) -> int:
        """How many samples this run has produced so far (the store may not have all of them yet)."""
        return self._writer.samples_taken if self._writer is not None else 0

    @property
    def prediction(self) -> Prediction | None:
        return self._prediction

    # -- live view -------------------------------------------------------------------------------------------

    def live_status(self) -> LiveStatus:
        """Power, energy and emissions so far, from the sampler's last two readings (no hardware access)."""
        meters = self._meters
        if meters is None or self._origin is None:
            raise TrackerStateError("live_status() needs a started tracker")
        with self._lock:
            origin, previous, last = self._origin, self._previous, self._last
            prediction = self._prediction
        assert previous is not None and last is not None
        return live_status(meters, origin, previous, last, self.attribution, prediction)

    # -- internals -------------------------------------------------------------------------------------------

    def _require_running(self) -> MeterSet:
        if self._meters is None or self._origin is None:
            raise TrackerStateError("the tracker is not running; call start() or use `with wattwise.track()`")
        if self.result is not None:
            raise TrackerStateError("the tracker has stopped; start a new run with wattwise.track()")
        if self._forked():
            raise TrackerStateError(f"run {self.run_id} belongs to process {self._pid}, not to this forked child")
        return self._meters

    def _require_account(self) -> CarbonAccount:
        if self._account is None:
            raise TrackerStateError("the tracker is not running")
        return self._account

    def _close_window(self, name: str, reading: Reading, note: str = "") -> WindowRecord:
        assert self._meters is not None
        start = self._open_windows.pop(name)
        self._window_order.remove(name)
        parts = accounting.components(self._meters.channels, start, reading, self.attribution)
        energy_j, _ = accounting.totals(parts)
        record = WindowRecord(
            name=name + note,
            started_at=self._window_started.pop(name),
            duration_s=reading.t_s - start.t_s,
            energy_j=energy_j,
            co2e_g=reading.co2e_g - start.co2e_g,
            components={c.name: c.energy_j for c in parts},
            parent=self._window_parents.pop(name),
        )
        self._windows.append(record)
        return record

    def _record(
        self,
        status: RunStatus,
        reading: Reading,
        *,
        ended: bool = False,
        error: str | None = None,
        exit_code: int | None = None,
        max_windows: int | None = None,
    ) -> Run:
        assert self._meters is not None and self._origin is not None and self._started_at is not None
        assert self.run_id is not None and self._plan is not None
        return assemble(
            run_id=self.run_id,
            name=self.name,
            status=status,
            started_at=self._started_at,
            channels=self._meters.channels,
            origin=self._origin,
            reading=reading,
            attribution=self.attribution,
            account=self._require_account(),
            plan=self._plan,
            windows=tuple(self._windows if max_windows is None else self._windows[-max_windows:]),
            prediction=self._prediction,
            command=self.command,
            work=self._work.total(close=ended),
            notes=self._notes,
            ended=ended,
            error=error,
            exit_code=exit_code,
        )

    def _loop(self) -> None:
        assert self._meters is not None and self._writer is not None and self._thinner is not None
        interval = self._interval_s
        # observers get the live status on rank 0 only (a job's other ranks report to rank 0, not to observers)
        live = self._observers.wants_live and (self._distributed is None or self._distributed[0].main)
        try:
            while not self._pace(self._stop_event, interval):
                reading = self._meters.read()
                self.ticks += 1
                with self._lock:
                    self._writer.add(self._thinner.add(reading))
                    self._previous, self._last = self._last, reading
                    due = reading.t_s - self._last_flush_t >= self.settings.flush_s
                    checkpoint = self._record("running", reading, max_windows=_CHECKPOINT_WINDOWS) if due else None
                if checkpoint is not None:
                    self._last_flush_t = reading.t_s
                    self._writer.checkpoint(checkpoint)
                if live and self.run_id is not None:
                    self._observers.live(self.run_id, self.live_status())
        except BaseException as exc:  # surfaced by stop(); a tracker that silently stops measuring is worse
            self._thread_error = exc


MAX_WINDOW_NAME = 1000
_READ_WAIT_S = 2.0  # stop() waits this long for the meters before using the last reading (see read_or_last)


__all__ = ["LiveStatus", "Tracker"]
