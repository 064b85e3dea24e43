"""``wattwise run --deadline``: wait for the planned start, re-planning every hour, then record what it avoided.

:func:`wait_for_start` plans the job on the region's outlook, and while the best start is later it sleeps until
the sooner of that start and the next whole hour, then plans again on the outlook issued then (a provider's
forecast moves; a forecaster gains an hour of history). It starts when the plan says now, or when waiting longer
would break the deadline. The clock and the sleep are injectable, so the policy is tested without waiting hours.

:func:`avoided` scores the run afterwards on the intensity that actually occurred (re-fetched from the provider's
history, or read from the trace), not on the forecast: the run's energy at its mean power over its running
intervals, against the same energy run from the submission without pauses.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from wattwise.schedule.outlook import Outlook, hour_floor, outlook
from wattwise.schedule.planner import Decision, Job, plan

if TYPE_CHECKING:
    from wattwise.carbon.service import IntensityService

Clock = Callable[[], datetime]
Sleep = Callable[[float], None]
REPLAN_EVERY_S = 3600.0


@dataclass
class Deferred:
    """The plan a deferred run follows, and how it got there."""

    job: Job
    submitted_at: datetime
    deadline_at: datetime
    decision: Decision
    outlook: Outlook
    replans: int = 0
    waited_s: float = 0.0
    windows: list[tuple[datetime, datetime]] = field(default_factory=list)  # running slices, absolute

    def pauses(self, started_at: datetime) -> list[tuple[datetime, datetime]]:
        """(pause at, resume at) between the planned slices after ``started_at``."""
        out = []
        for (_, end), (nxt, _) in zip(self.windows, self.windows[1:], strict=False):
            if end > started_at and nxt > end:
                out.append((end, nxt))
        return out

    def as_record(self) -> dict[str, Any]:
        d, o = self.decision, self.outlook
        return {
            "semantics": self.job.semantics,
            "duration_h": self.job.duration_h,
            "window_h": self.job.window_h,
            "interruptible": self.job.interruptible,
            "submitted_at": self.submitted_at.isoformat(),
            "deadline_at": self.deadline_at.isoformat(),
            "planned_slices": [{"start_at": a.isoformat(), "end_at": b.isoformat()} for a, b in self.windows],
            "expected_g_per_kwh": d.expected_g_per_kwh,
            "now_g_per_kwh": d.now_g_per_kwh,
            "expected_savings_pct": d.expected_savings_pct,
            "forecast_source": o.source,
            "forecast_method": o.method,
            "forecast_issued_at": o.issued_at.isoformat(),
            "forecast_horizon_h": o.horizon_h,
            "forecast_warning": o.warning,
            "replans": self.replans,
            "waited_s": self.waited_s,
        }


def _plan_now(
    service: IntensityService, job: Job, deadline_at: datetime, now: datetime, forecaster: str
) -> tuple[Decision, Outlook, Job]:
    """Plan what is left of the window from ``now`` (deadline semantics: finish by ``deadline_at``)."""
    left_h = max((deadline_at - hour_floor(now)).total_seconds() / 3600.0, job.duration_h)
    remaining = Job(
        job.duration_h,
        math.floor(left_h + 1e-9) if left_h >= job.duration_h else job.duration_h,
        "deadline",
        job.interruptible,
    )
    view = outlook(service, remaining, forecaster=forecaster, now=now)
    decision = plan(
        view.values, remaining.duration_h, remaining.window_h, "deadline", interruptible=remaining.interruptible
    )
    return decision, view, remaining


def _windows(decision: Decision, view: Outlook, now: datetime) -> list[tuple[datetime, datetime]]:
    """The slices as absolute times. A slice planned from the current hour starts now and still ends where the plan
    ends it (the hours after it were avoided for a reason); a job that needs longer runs on after its last slice.
    A non-interruptible job's one slice keeps its length."""
    out: list[tuple[datetime, datetime]] = []
    for s in decision.slices:
        planned = view.start + timedelta(hours=s.offset_h)
        start = max(planned, now)
        end = planned + timedelta(hours=s.hours)
        if not decision.interruptible:
            end = max(end, start + timedelta(hours=s.hours))
        if end > start:
            out.append((start, end))
    return out or [(now, now + timedelta(hours=decision.duration_h))]


def wait_for_start(
    service: IntensityService,
    job: Job,
    *,
    submitted_at: datetime | None = None,
    forecaster: str = "auto",
    clock: Clock | None = None,
    sleep: Sleep = time.sleep,
    on_update: Callable[[Deferred, datetime], None] | None = None,
    tick_s: float = 1.0,
) -> Deferred:
    """Wait (calling ``on_update`` about every ``tick_s``) until the plan says start; see the module doc."""
    now_fn = clock or (lambda: datetime.now(UTC))
    submitted = submitted_at or now_fn()
    deadline_at = submitted + timedelta(hours=job.window_h)
    decision, view, _ = _plan_now(service, job, deadline_at, submitted, forecaster)
    state = Deferred(job, submitted, deadline_at, decision, view, windows=_windows(decision, view, submitted))
    next_plan = hour_floor(submitted) + timedelta(hours=1)
    while True:
        now = now_fn()
        start_at = state.windows[0][0]
        latest = deadline_at - timedelta(hours=job.duration_h)
        if now >= start_at or now >= latest:
            break
        if now >= next_plan:
            decision, view, _ = _plan_now(service, job, deadline_at, now, forecaster)
            state.decision, state.outlook, state.windows = decision, view, _windows(decision, view, now)
            state.replans += 1
            next_plan = hour_floor(now) + timedelta(hours=1)
            continue
        if on_update is not None:
            on_update(state, now)
        until = min(start_at, next_plan, latest)
        sleep(max(0.0, min(tick_s, (until - now).total_seconds())))
    state.waited_s = (now_fn() - submitted).total_seconds()
    return state


def avoided(
    service: IntensityService,
    submitted_at: datetime,
    running: list[tuple[datetime, datetime]],
    energy_j: float,
    pue: float,
    *,
    active_s: float | None = None,
) -> dict[str, Any]:
    """Emissions as run against the same energy started at submission, on the intensity that occurred. The mean
    power is ``energy_j`` over ``active_s`` (the run's own running time; default: the spans' total)."""
    from wattwise.errors import ProviderError
    from wattwise.units import emissions_g

    spans_s = sum((b - a).total_seconds() for a, b in running)
    active_s = spans_s if active_s is None else active_s
    if active_s <= 0 or spans_s <= 0 or energy_j <= 0:
        return {"avoided_co2e_g": 0.0, "avoided_note": "nothing ran: nothing to compare"}
    end = max(b for _, b in running)
    baseline = (submitted_at, submitted_at + timedelta(seconds=spans_s))
    try:
        history = service.history(min(submitted_at, running[0][0]) - timedelta(hours=1), end)
    except (ProviderError, OSError) as exc:
        return {"avoided_co2e_g": None, "avoided_note": f"the intensity that occurred could not be fetched: {exc}"}
    if history.constant:
        why = "the intensity is one annual value" + (" (the provider fell back to it)" if history.fallback else "")
        return {"avoided_co2e_g": 0.0, "avoided_note": f"{why}: waiting cannot change it"}
    power_w = energy_j / active_s
    scale = spans_s / active_s  # the spans' emissions at that power cover exactly the run's energy

    def grams(spans: list[tuple[datetime, datetime]]) -> float | None:
        total = 0.0
        for a, b in spans:
            mean = history.mean_over(a, b)
            if mean is None:
                return None
            total += emissions_g(power_w * (b - a).total_seconds() / scale, pue, mean)
        return total

    as_run, at_once = grams(running), grams([baseline])
    if as_run is None or at_once is None:
        return {"avoided_co2e_g": None, "avoided_note": "the intensity that occurred does not cover the run"}
    return {
        "avoided_co2e_g": at_once - as_run,
        "baseline_co2e_g": at_once,
        "as_run_co2e_g": as_run,
        "avoided_pct": 100.0 * (at_once - as_run) / at_once if at_once > 0 else 0.0,
        "avoided_note": f"on {history.source} (what occurred), at the run's mean power of {power_w:,.1f} W",
    }
