"""``wattwise schedule evaluate`` and ``intensity backtest``: replay a year of hourly submissions on a trace.

For every hour of the chosen year a job is submitted; :mod:`wattwise.schedule.replay` scores starting at once,
the oracle (the best start in hindsight), the forecaster's choices (re-planning hourly while waiting, as ``run
--deadline`` does, and planned once at submission), and the 7-day-mean baseline planned once, as in the shared
benchmarks' Table C. Forecasts are issued for every hour from the trace's past only.

``auto`` chooses, every week, the candidate forecaster that scheduled best over the previous 4 weeks of
submissions whose windows had already closed (scored on what actually happened): a choice made only from the
trace's own past. Before 2 weeks of such history it uses m7.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import UTC, datetime

import numpy as np

from wattwise.errors import ConfigError
from wattwise.schedule.forecast import WEEK, Forecaster, forecaster
from wattwise.schedule.hourly import Hourly
from wattwise.schedule.planner import Semantics, check_job, horizon_h, kernel, last_start
from wattwise.schedule.replay import Outcome, replay

AUTO_CANDIDATES = ("m7", "anomaly", "blend")  # few and robust: more candidates switch more on noise
SELECT_EVERY_H = WEEK
SELECT_LOOKBACK_H = 4 * WEEK
AUTO_DEFAULT = "m7"  # before 2 weeks of closed windows: the benchmarks' baseline
SWITCH_MARGIN_PCT = 0.0  # points a candidate must lead the current choice by to replace it
MAPE_LEADS_H = 24


@dataclass
class Evaluation:
    semantics: Semantics
    duration_h: float
    window_h: float
    forecaster: str
    year: int
    submissions: int
    skipped: int
    oracle_savings_pct: float
    savings_pct: float
    plan_once_savings_pct: float
    baseline_savings_pct: float
    mape_pct: float
    baseline_mape_pct: float
    chosen: dict[str, int] = field(default_factory=dict)  # auto: weeks each candidate was used
    plan_seconds: float = 0.0
    forecast_seconds: float = 0.0

    @property
    def share_of_oracle_pct(self) -> float:
        return 100.0 * self.savings_pct / self.oracle_savings_pct if self.oracle_savings_pct > 0 else 0.0


def pick_year(hourly: Hourly, year: int | None) -> tuple[int, int, int]:
    """The submissions' hour range ``(year, lo, hi)``: the given UTC year, or the one holding most hours of the
    trace (the earliest on a tie)."""
    starts = np.arange(len(hourly.values))
    absolute_years = np.array(
        [datetime.fromtimestamp((hourly.first_hour + h) * 3600, UTC).year for h in starts[:: 24 * 7]]
    )
    if year is None:
        years, counts = np.unique(absolute_years, return_counts=True)
        year = int(years[np.argmax(counts)])
    lo = hourly.index(datetime(year, 1, 1, tzinfo=UTC))
    hi = hourly.index(datetime(year + 1, 1, 1, tzinfo=UTC))
    lo, hi = max(lo, 0), min(hi, len(hourly.values))
    if hi - lo < 24 * 7:
        raise ConfigError(
            f"the trace holds less than a week of {year} (it covers {hourly.start:%Y-%m-%d} to "
            f"{hourly.end:%Y-%m-%d}); choose --year within it"
        )
    return year, lo, hi


def mape(actual: np.ndarray, forecasts: np.ndarray, rows: np.ndarray, leads: int = MAPE_LEADS_H) -> float:
    """Mean absolute percentage error of the forecasts issued at ``rows``, over their first ``leads`` hours (or
    as many as they hold)."""
    leads = min(leads, forecasts.shape[1])
    idx = rows[:, None] + np.arange(leads)[None, :]
    inside = idx < len(actual)
    truth = np.where(inside, actual[np.minimum(idx, len(actual) - 1)], np.nan)
    guess = forecasts[rows, :leads]
    with np.errstate(invalid="ignore", divide="ignore"):
        err = np.abs(guess - truth) / truth
    err = err[np.isfinite(err)]
    return 100.0 * float(err.mean()) if len(err) else float("nan")


def forecast_all(model: Forecaster, hourly: Hourly, horizon: int) -> np.ndarray:
    """The model's forecast issued at every hour of the trace."""
    issues = np.arange(len(hourly.values))
    return model.matrix(hourly.values, hourly.first_hour, issues, horizon)


def select_weekly(outcomes: dict[str, Outcome], lo: int, hi: int, closes_after_h: int) -> tuple[np.ndarray, list[str]]:
    """For each week of submissions in ``[lo, hi)``, the candidate whose choices saved most over the previous
    4 weeks of submissions already closed (window over) at the week's start; the default until 2 weeks have."""
    names = list(outcomes)
    n = len(next(iter(outcomes.values())).now)
    default = names.index(AUTO_DEFAULT) if AUTO_DEFAULT in names else 0
    pick = np.full(n, default)
    used: list[str] = []
    best = default
    for week in range(lo, hi, SELECT_EVERY_H):
        end = week - closes_after_h  # submissions before this hour have seen their whole window
        begin = max(end - SELECT_LOOKBACK_H, 0)
        if end - begin >= SELECT_LOOKBACK_H // 2:
            mask = np.zeros(n, dtype=bool)
            mask[begin:end] = True
            scores = [outcomes[name].savings_pct(mask) for name in names]
            leader = int(np.argmax(scores))
            if scores[leader] > scores[best] + SWITCH_MARGIN_PCT:
                best = leader
        pick[week : min(week + SELECT_EVERY_H, hi)] = best
        used.append(names[best])
    return pick, used


def evaluate(
    hourly: Hourly,
    duration_h: float,
    window_h: float,
    semantics: Semantics,
    model: str,
    *,
    year: int | None = None,
    candidates: tuple[str, ...] = AUTO_CANDIDATES,
) -> Evaluation:
    check_job(duration_h, window_h, semantics)
    need = horizon_h(duration_h, window_h, semantics)
    if len(hourly.values) < need + 24 * 7:
        raise ConfigError(
            f"the trace covers {len(hourly.values)} h: too short to replay a {window_h:g} h window "
            f"(it needs at least a week more than the {need} h one plan looks at)"
        )
    year, lo, hi = pick_year(hourly, year)
    names = candidates if model == "auto" else tuple(dict.fromkeys((model, "m7")))
    t0 = time.perf_counter()
    forecasts = {name: forecast_all(forecaster(name), hourly, need) for name in names}
    forecast_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    outcomes = {name: replay(hourly.values, forecasts[name], duration_h, window_h, semantics) for name in names}
    baseline = replay(hourly.values, forecasts["m7"], duration_h, window_h, semantics, replan=False)
    rows = np.arange(lo, hi)
    in_year = np.zeros(len(hourly.values), dtype=bool)
    in_year[lo:hi] = True
    chosen_weeks: dict[str, int] = {}
    if model == "auto":
        closes = last_start(duration_h, window_h, semantics) + len(kernel(duration_h))
        pick, used = select_weekly(outcomes, lo, hi, closes)
        stacked = np.stack([outcomes[name].chosen for name in names])
        first = outcomes[names[0]]
        outcome = Outcome(first.now, stacked[pick, np.arange(len(pick))], first.oracle, first.valid)
        once_stack = np.stack(
            [replay(hourly.values, forecasts[n], duration_h, window_h, semantics, replan=False).chosen for n in names]
        )
        once = Outcome(first.now, once_stack[pick, np.arange(len(pick))], first.oracle, first.valid)
        fc_rows = np.stack([forecasts[name] for name in names])[pick[rows], rows]
        full = np.full_like(forecasts[names[0]], np.nan)
        full[rows] = fc_rows
        model_mape = mape(hourly.values, full, rows)
        for name in used:
            chosen_weeks[name] = chosen_weeks.get(name, 0) + 1
    else:
        outcome = outcomes[model]
        once = replay(hourly.values, forecasts[model], duration_h, window_h, semantics, replan=False)
        model_mape = mape(hourly.values, forecasts[model], rows)
    plan_s = time.perf_counter() - t0
    valid = outcome.valid & in_year
    return Evaluation(
        semantics=semantics,
        duration_h=duration_h,
        window_h=window_h,
        forecaster=model,
        year=year,
        submissions=int(valid.sum()),
        skipped=int((~outcome.valid & in_year).sum()),
        oracle_savings_pct=outcome.oracle_pct(in_year),
        savings_pct=outcome.savings_pct(in_year),
        plan_once_savings_pct=once.savings_pct(in_year),
        baseline_savings_pct=baseline.savings_pct(in_year),
        mape_pct=model_mape,
        baseline_mape_pct=mape(hourly.values, forecasts["m7"], rows),
        chosen=chosen_weeks,
        plan_seconds=plan_s,
        forecast_seconds=forecast_s,
    )
