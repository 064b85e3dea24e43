"""Replaying submissions on a series: what each job would have emitted started at once, at the best hour in
hindsight (the oracle), and where a forecast-driven policy put it. Vectorised over every submission of a year.

The forecast-driven policy is the one ``wattwise run --deadline`` follows: at submission, and again at the start
of every hour while it waits, it takes the forecast issued then and starts now if now is the best start left in
the window; at the last allowed start it starts regardless. ``replan=False`` plans once at submission (the policy
of the shared benchmarks' Table C). Every choice is scored on the actual series, never on the forecast.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from wattwise.schedule.planner import Semantics, horizon_h, last_start, start_costs


@dataclass(frozen=True, slots=True)
class Outcome:
    """Per submission (hour index): intensity-hours started at once, as chosen, and the oracle's; ``valid`` is
    false where the window touches a gap in the actual series (such submissions are left out)."""

    now: np.ndarray
    chosen: np.ndarray
    oracle: np.ndarray
    valid: np.ndarray

    def savings_pct(self, mask: np.ndarray | None = None) -> float:
        use = self.valid if mask is None else self.valid & mask
        total = float(self.now[use].sum())
        return 100.0 * (1.0 - float(self.chosen[use].sum()) / total) if total > 0 else 0.0

    def oracle_pct(self, mask: np.ndarray | None = None) -> float:
        use = self.valid if mask is None else self.valid & mask
        total = float(self.now[use].sum())
        return 100.0 * (1.0 - float(self.oracle[use].sum()) / total) if total > 0 else 0.0


def _window_costs(actual: np.ndarray, duration_h: float, latest: int) -> np.ndarray:
    """``out[t, d]``: actual intensity-hours of starting at ``t + d``, d = 0..latest (NaN beyond the series)."""
    costs = start_costs(actual, duration_h)
    padded = np.concatenate([costs, np.full(len(actual) - len(costs) + latest + 1, np.nan)])
    n = len(actual)
    out: np.ndarray = padded[np.arange(n)[:, None] + np.arange(latest + 1)[None, :]]
    return out


def replay(
    actual: np.ndarray,
    forecasts: np.ndarray,
    duration_h: float,
    window_h: float,
    semantics: Semantics,
    *,
    replan: bool = True,
) -> Outcome:
    """``forecasts[u, k]``: the forecast issued at hour ``u`` for hour ``u + k`` (one row per hour of
    ``actual``, at least :func:`horizon_h` columns)."""
    latest = last_start(duration_h, window_h, semantics)
    need = horizon_h(duration_h, window_h, semantics)
    n = len(actual)
    costs = _window_costs(actual, duration_h, latest)
    valid = ~np.isnan(costs).any(axis=1)
    now = np.where(valid, costs[:, 0], 0.0)
    oracle = np.where(valid, np.nanmin(np.where(valid[:, None], costs, 0.0), axis=1), 0.0)
    fc = start_costs(forecasts[:, :need], duration_h)[:, : latest + 1]
    fc = np.where(np.isnan(fc), np.inf, fc)
    if replan:
        # best_later[u, r]: the lowest forecast cost among starts 1..r hours after u (inf for r = 0).
        best_later = np.full((n, latest + 1), np.inf)
        if latest:
            best_later[:, 1:] = np.minimum.accumulate(fc[:, 1:], axis=1)
        delay = np.full(n, latest)
        undecided = np.ones(n, dtype=bool)
        hours = np.arange(n)
        for d in range(latest + 1):
            u = np.minimum(hours + d, n - 1)
            go = undecided & (fc[u, 0] <= best_later[u, latest - d])
            delay[go] = d
            undecided &= ~go
    else:
        delay = np.argmin(fc, axis=1)
    chosen = np.where(valid, costs[np.arange(n), np.minimum(delay, latest)], 0.0)
    return Outcome(now=now, chosen=chosen, oracle=oracle, valid=valid)
