"""One job planned over one or several regions, from settings to a result the CLI and ``run`` print and store."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import numpy as np

from wattwise.schedule.outlook import Outlook, outlook
from wattwise.schedule.planner import Decision, Job, kernel, plan


def _finite_or_none(value: float) -> float | None:
    number = float(value)
    return number if np.isfinite(number) else None


@dataclass(frozen=True, slots=True)
class RegionPlan:
    region: str
    outlook: Outlook
    decision: Decision

    def actual(self) -> tuple[float, float] | None:
        """(planned, at once) mean intensity on what actually happened, where the trace holds those hours."""
        actual = self.outlook.actual
        if actual is None or np.isnan(actual).any():
            return None
        weights = kernel(self.decision.duration_h)
        energy = float(weights.sum())
        now = float(np.dot(actual[: len(weights)], weights)) / energy
        planned = 0.0
        for s in self.decision.slices:
            w = kernel(s.hours)
            planned += float(np.dot(actual[s.offset_h : s.offset_h + len(w)], w))
        return planned / energy, now

    def as_json(self) -> dict[str, Any]:
        o, d = self.outlook, self.decision
        slices = []
        for s in d.slices:
            start = o.start + timedelta(hours=s.offset_h)
            slices.append(
                {
                    "start_at": start.isoformat(),
                    "end_at": (start + timedelta(hours=s.hours)).isoformat(),
                    "offset_h": s.offset_h,
                    "hours": s.hours,
                }
            )
        out: dict[str, Any] = {
            "region": self.region,
            "slices": slices,
            "start_at": slices[0]["start_at"],
            "expected_g_per_kwh": d.expected_g_per_kwh,
            "now_g_per_kwh": d.now_g_per_kwh,
            "expected_savings_pct": d.expected_savings_pct,
            "outlook": {  # what the plan was made on, hour by hour from the submission hour (null: no value)
                "start": o.start.isoformat(),
                "values": [_finite_or_none(v) for v in o.values],
                "actual": None if o.actual is None else [_finite_or_none(v) for v in o.actual],
            },
            "forecast": {
                "source": o.source,
                "method": o.method,
                "issued_at": o.issued_at.isoformat(),
                "horizon_h": o.horizon_h,
                "warning": o.warning,
            },
        }
        hindsight = self.actual()
        if hindsight is not None:
            planned, now = hindsight
            out["actual_g_per_kwh"] = planned
            out["actual_now_g_per_kwh"] = now
            out["actual_savings_pct"] = 100.0 * (1 - planned / now) if now > 0 else 0.0
        return out


@dataclass(frozen=True, slots=True)
class PlanResult:
    job: Job
    submitted_at: datetime
    plans: tuple[RegionPlan, ...]

    @property
    def home(self) -> RegionPlan:
        return self.plans[0]

    @property
    def best(self) -> RegionPlan:
        return min(self.plans, key=lambda p: p.decision.expected_g_per_kwh)

    @property
    def savings_pct(self) -> float:
        """The best plan against starting now in the first (home) region."""
        now = self.home.decision.now_g_per_kwh
        return 100.0 * (1 - self.best.decision.expected_g_per_kwh / now) if now > 0 else 0.0

    def as_json(self, energy_kwh: float | None = None) -> dict[str, Any]:
        best = self.best
        head: dict[str, Any] = {
            "region": best.region,
            "start_at": best.as_json()["start_at"],
            "savings_pct": self.savings_pct,
        }
        if energy_kwh is not None:
            head["co2e_g"] = energy_kwh * best.decision.expected_g_per_kwh
            head["now_co2e_g"] = energy_kwh * self.home.decision.now_g_per_kwh
        return {
            "semantics": self.job.semantics,
            "duration_h": self.job.duration_h,
            "window_h": self.job.window_h,
            "interruptible": self.job.interruptible,
            "submitted_at": self.submitted_at.isoformat(),
            "home_region": self.home.region,
            "best": head,
            "regions": [p.as_json() for p in self.plans],
        }


def plan_regions(
    job: Job,
    regions: list[str | None],
    overrides: dict[str, Any],
    *,
    at: datetime | None = None,
    forecaster: str = "auto",
) -> PlanResult:
    """Plan ``job`` in each region (the first is home) with the settings ``overrides``; the lowest wins."""
    from wattwise.carbon.service import IntensityService
    from wattwise.config import Settings

    plans = []
    for region in regions:
        service = IntensityService(Settings.load({**overrides, "region": region}))
        try:
            view = outlook(service, job, at=at, forecaster=forecaster)
        finally:
            service.close()
        decision = plan(view.values, job.duration_h, job.window_h, job.semantics, interruptible=job.interruptible)
        plans.append(RegionPlan(view.region, view, decision))
    return PlanResult(job, plans[0].outlook.start, tuple(plans))
