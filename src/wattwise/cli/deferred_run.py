"""The scheduling half of ``wattwise run --deadline``: plan, wait with a countdown, pause, and record the result.

``handle`` in :mod:`wattwise.cli.run_cmd` calls :func:`prepare` before anything is measured (nothing is stored if
the wait is cancelled), passes the pause controller to the runner, and calls :func:`finish` once the run is
stored, which adds the plan, the waits and pauses, and the emissions avoided to the record.
"""

from __future__ import annotations

import argparse
import itertools
import signal
import statistics
import sys
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from wattwise.errors import ConfigError

if TYPE_CHECKING:
    from wattwise.config import Settings
    from wattwise.measure.pauses import PauseController
    from wattwise.records import Run
    from wattwise.schedule.deferred import Deferred

DEFAULT_DURATION_H = 1.0


class WaitCancelled(Exception):
    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


@dataclass
class Prepared:
    """What the run's record gets: the plan (``Deferred.as_record()``, or one handed over by ``schedule submit``),
    the submission and deadline, and the pause controller of an interruptible run."""

    plan: dict[str, Any]
    submitted_at: datetime
    deadline_at: datetime
    pauses: PauseController | None
    started_at: datetime
    duration_note: str


def add_flags(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("carbon-aware start (run when the grid is cleanest, finishing by a deadline)")
    g.add_argument("--deadline", help="finish within this span (12h, 2d): wait for the cleanest hours first")
    g.add_argument("--duration", help="how long the command runs (default: the median of past runs of this name)")
    g.add_argument("--interruptible", action="store_true", help="pause the command's tree in high-carbon hours")
    g.add_argument("--pause-signal", default="SIGSTOP", help="signal that pauses it (SIGSTOP; e.g. SIGUSR1)")
    g.add_argument(
        "--resume-signal",
        default="SIGCONT",
        help="signal that resumes it (SIGCONT), or `restart` for jobs that checkpoint and exit on the pause signal: "
        "the command is started again at the next slice",
    )
    g.add_argument("--forecaster", default="auto", help="forecaster when the provider gives none (auto)")
    g.add_argument("--plan-file", help="the plan `wattwise schedule submit` gave a cluster job (set by it)")


def _signal(name: str, flag: str) -> int:
    text = name.strip().upper()
    text = text if text.startswith("SIG") else f"SIG{text}"
    try:
        return int(signal.Signals[text])
    except KeyError:
        raise ConfigError(f"{flag} {name!r} is not a signal name (e.g. SIGSTOP, SIGUSR1)") from None


def _expected_duration(settings: Settings, name: str) -> tuple[float, str]:
    """The median duration of the last complete runs of ``name``, else one hour; and where it came from."""
    from wattwise.errors import WattwiseError
    from wattwise.store import open_store

    try:
        with open_store(settings.db_url, read_only=True) as store:
            past = [r.duration_s for r in store.list_runs(limit=20, status="complete", name=name)]
    except WattwiseError:
        past = []
    if past:
        hours = max(statistics.median(past) / 3600.0, 1 / 60)
        return hours, f"expected duration {hours * 60:.0f} min: the median of the last {len(past)} runs of {name!r}"
    return DEFAULT_DURATION_H, f"expected duration 1 h (no past run of {name!r}; give --duration)"


def from_plan_file(path: str) -> Prepared:
    """The plan ``schedule submit`` handed to a cluster job: the job starts now, as its executor planned."""
    import json
    import os

    try:
        plan = json.loads(Path(path).read_text(encoding="utf-8"))
        submitted = datetime.fromisoformat(plan["submitted_at"])
        deadline = datetime.fromisoformat(plan["deadline_at"])
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ConfigError(f"--plan-file {path}: not a plan written by `wattwise schedule submit` ({exc})") from None
    if not isinstance(plan, dict):
        raise ConfigError(f"--plan-file {path}: not a plan written by `wattwise schedule submit`")
    for variable in ("SLURM_JOB_ID", "RAY_JOB_ID"):
        if os.environ.get(variable):
            plan.setdefault("job_id", os.environ[variable])
    started = datetime.now(UTC)
    plan["waited_s"] = (started - submitted).total_seconds()
    pauses = None
    if plan.get("interruptible"):
        from wattwise.measure.pauses import PauseController

        try:
            slices = [
                (datetime.fromisoformat(w["start_at"]), datetime.fromisoformat(w["end_at"]))
                for w in plan["planned_slices"]
            ]
        except (KeyError, TypeError, ValueError) as exc:
            raise ConfigError(f"--plan-file {path}: its slices cannot be read ({exc})") from None
        gaps = [(end, nxt) for (_, end), (nxt, _) in itertools.pairwise(slices) if nxt > end > started]
        pauses = PauseController(gaps)
    return Prepared(plan, submitted, deadline, pauses, started, str(plan.get("duration_note", "")))


def prepare(args: argparse.Namespace, settings: Settings, name: str, quiet: bool) -> Prepared | None:
    if getattr(args, "plan_file", None):
        if args.deadline is not None or args.interruptible:
            raise ConfigError("--plan-file carries its own plan: drop --deadline and --interruptible")
        return from_plan_file(args.plan_file)
    if args.deadline is None:
        for flag, value in (("--duration", args.duration), ("--interruptible", args.interruptible)):
            if value:
                raise ConfigError(f"{flag} plans a deferred start: give --deadline too (e.g. --deadline 12h)")
        return None
    from wattwise.validate import JOB_HOURS, WINDOW_HOURS, hours

    window_h = hours(args.deadline, WINDOW_HOURS, "--deadline")
    if args.duration is not None:
        duration_h = hours(args.duration, JOB_HOURS, "--duration")
        note = f"expected duration {duration_h:g} h (given)"
    else:
        duration_h, note = _expected_duration(settings, name)
        duration_h = min(duration_h, window_h) if window_h > 0 else duration_h
    pause_sig = _signal(args.pause_signal, "--pause-signal")
    if pause_sig in (signal.SIGKILL, signal.SIGCONT):
        raise ConfigError(f"--pause-signal {args.pause_signal} cannot pause a job: use SIGSTOP or one it handles")
    restart = args.resume_signal.strip().lower() == "restart"
    resume_sig = None if restart else _signal(args.resume_signal, "--resume-signal")
    if restart and pause_sig == signal.SIGSTOP:
        raise ConfigError("--resume-signal restart is for jobs that exit on the pause signal: give --pause-signal too")
    # Block the signals wattwise relays before numpy starts its threads, so that no thread takes one by mistake
    # (a thread with an open mask would die of SIGTERM, or swallow SIGINT); the wait takes them with sigtimedwait.
    waits = _WaitSignals()
    try:
        return _plan_and_wait(args, settings, name, quiet, duration_h, window_h, note, pause_sig, resume_sig, waits)
    except BaseException:
        waits.release()
        raise


class _WaitSignals:
    """The relayed signals, blocked while wattwise plans and waits; one that ends the wait raises WaitCancelled.
    Ignored signals (``nohup``) are not among them and stay ignored. The SignalRelay takes over after the wait."""

    def __init__(self) -> None:
        from wattwise.measure.signals import PASSED, forwardable

        self.signals = forwardable()
        self.passed = PASSED
        self.exact = bool(self.signals) and hasattr(signal, "sigtimedwait") and hasattr(signal, "pthread_sigmask")
        self._previous: dict[int, Any] = {}
        if self.exact:
            signal.pthread_sigmask(signal.SIG_BLOCK, self.signals)
        else:

            def cancel(signum: int, frame: object) -> None:
                raise WaitCancelled(signum)

            for signum in self.signals - self.passed:
                self._previous[signum] = signal.signal(signum, cancel)

    def sleep(self, seconds: float) -> None:
        if not self.exact:
            time.sleep(seconds)
            return
        info = signal.sigtimedwait(self.signals, max(seconds, 0.001))
        if info is not None and info.si_signo not in self.passed:
            raise WaitCancelled(info.si_signo)

    def done(self) -> None:
        """The wait is over: the relay (entered next) keeps the signals blocked; handlers go back."""
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)
        self._previous = {}

    def release(self) -> None:
        self.done()
        if self.exact:
            signal.pthread_sigmask(signal.SIG_UNBLOCK, self.signals)
            self.exact = False


def _plan_and_wait(
    args: argparse.Namespace,
    settings: Settings,
    name: str,
    quiet: bool,
    duration_h: float,
    window_h: float,
    note: str,
    pause_sig: int,
    resume_sig: int | None,
    waits: _WaitSignals,
) -> Prepared:
    from wattwise.carbon.service import IntensityService
    from wattwise.measure.pauses import PauseController
    from wattwise.schedule.deferred import wait_for_start
    from wattwise.schedule.planner import Job

    if args.forecaster != "auto":
        from wattwise.schedule.forecast import forecaster

        forecaster(args.forecaster)  # an unknown name fails now, not at a re-plan hours into the wait
    job = Job(duration_h, window_h, "deadline", bool(args.interruptible))
    service = IntensityService(settings)
    shown = [0.0]
    printed = [False]

    def update(state: Deferred, now: datetime) -> None:
        if quiet:
            return
        if not printed[0]:
            printed[0] = True
            _print_plan(state, name, note)
        left = (state.windows[0][0] - now).total_seconds()
        if sys.stderr.isatty():
            sys.stderr.write(f"\r\033[Kwattwise: starting {name} in {_span(left)} (at {state.windows[0][0]:%H:%M} UTC)")
            sys.stderr.flush()
        elif now.timestamp() - shown[0] >= 600:
            shown[0] = now.timestamp()
            sys.stderr.write(f"wattwise: waiting; {name} starts in {_span(left)}\n")

    try:
        deferred = wait_for_start(service, job, forecaster=args.forecaster, on_update=update, sleep=waits.sleep)
    except WaitCancelled:
        if not quiet and sys.stderr.isatty():
            sys.stderr.write("\n")
        raise
    finally:
        service.close()
    waits.done()
    if not quiet and not printed[0]:
        _print_plan(deferred, name, note)  # it starts at once: still say on what plan
    if not quiet and sys.stderr.isatty():
        sys.stderr.write("\r\033[K")
    started = datetime.now(UTC)
    pauses = None
    if job.interruptible:
        pauses = PauseController(deferred.pauses(started), pause_signal=pause_sig, resume_signal=resume_sig)
    return Prepared(deferred.as_record(), deferred.submitted_at, deferred.deadline_at, pauses, started, note)


def _span(seconds: float) -> str:
    seconds = max(0, int(seconds))
    h, rest = divmod(seconds, 3600)
    m, s = divmod(rest, 60)
    return f"{h} h {m:02d} min" if h else f"{m} min {s:02d} s"


def _print_plan(state: Deferred, name: str, note: str) -> None:
    d, o = state.decision, state.outlook
    slices = ", ".join(f"{a:%Y-%m-%d %H:%M}–{b:%H:%M}" for a, b in state.windows)
    sys.stderr.write(
        f"wattwise: {name} planned for {slices} UTC (deadline {state.deadline_at:%Y-%m-%d %H:%M} UTC; {note}); "
        f"expected {d.expected_g_per_kwh:,.0f} g/kWh against {d.now_g_per_kwh:,.0f} now "
        f"({d.expected_savings_pct:.1f} % less), on {o.method} ({o.source})\n"
    )
    if o.warning:
        sys.stderr.write(f"wattwise: warning: {o.warning}\n")


def finish(prepared: Prepared, run: Run, settings: Settings) -> Run:
    """The record with its schedule part: the plan, the wait, the pauses and the emissions avoided."""
    from wattwise.carbon.service import IntensityService
    from wattwise.errors import WattwiseError
    from wattwise.schedule.deferred import avoided
    from wattwise.store import open_store

    ended = run.ended_at or prepared.started_at + timedelta(seconds=run.duration_s)
    pauses = prepared.pauses
    running = pauses.running if pauses is not None and pauses.running else [(prepared.started_at, ended)]
    record: dict[str, Any] = dict(prepared.plan)
    record.update(
        started_at=prepared.started_at.isoformat(),
        duration_note=prepared.duration_note,
        running=[{"start_at": a.isoformat(), "end_at": b.isoformat()} for a, b in running],
        paused_s=pauses.paused_s if pauses is not None else 0.0,
        pause_count=pauses.pause_count if pauses is not None else 0,
        pause_signal=signal.Signals(pauses.pause_signal).name if pauses is not None else None,
    )
    if ended > prepared.deadline_at:
        record["deadline_missed_s"] = (ended - prepared.deadline_at).total_seconds()
    service = IntensityService(settings)
    try:
        paused_s = pauses.paused_s if pauses is not None else 0.0
        active_s = max(run.duration_s - paused_s, 1e-3)
        record.update(avoided(service, prepared.submitted_at, running, run.energy_j, run.pue, active_s=active_s))
    except WattwiseError as exc:
        record.update(avoided_co2e_g=None, avoided_note=f"not computed: {exc}")
    finally:
        service.close()
    updated = run.replace(schedule=record)
    try:
        with open_store(settings.db_url) as store:
            store.save(updated)
    except WattwiseError as exc:
        sys.stderr.write(f"wattwise: the run is stored, but its schedule part could not be added: {exc}\n")
        return run
    return updated
