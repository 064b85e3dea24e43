"""``--forecaster auto`` for one plan: the candidate that scheduled this kind of job best over the last 4 weeks of
the history (submissions whose windows had closed, scored on what happened), m7 when the history is
shorter."""

from __future__ import annotations

import numpy as np

from wattwise.schedule.evaluate import AUTO_CANDIDATES, AUTO_DEFAULT, SELECT_LOOKBACK_H, forecast_all
from wattwise.schedule.forecast import forecaster
from wattwise.schedule.hourly import Hourly
from wattwise.schedule.planner import Job, horizon_h
from wattwise.schedule.replay import replay


def scores(past: Hourly, job: Job, candidates: tuple[str, ...] = AUTO_CANDIDATES) -> dict[str, float]:
    """Savings (%) each candidate achieved over the last 4 weeks of ``past``; empty when too short."""
    need = horizon_h(job.duration_h, job.window_h, job.semantics)
    n = len(past.values)
    end = n - need  # submissions from here on would see hours after the history
    begin = max(end - SELECT_LOOKBACK_H, 0)
    if end - begin < SELECT_LOOKBACK_H // 2 or n < 21 * 24:
        return {}
    mask = np.zeros(n, dtype=bool)
    mask[begin:end] = True
    out = {}
    for name in candidates:
        forecasts = forecast_all(forecaster(name), past, need)
        outcome = replay(past.values, forecasts, job.duration_h, job.window_h, job.semantics)
        out[name] = outcome.savings_pct(mask)
    return out


def choose(past: Hourly, job: Job, candidates: tuple[str, ...] = AUTO_CANDIDATES) -> str:
    found = scores(past, job, candidates)
    return max(found, key=lambda name: found[name]) if found else AUTO_DEFAULT
