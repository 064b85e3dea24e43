from __future__ import annotations

import numpy as np
import pytest

from tests.schedule.conftest import synthetic
from wattwise.schedule.planner import horizon_h, last_start, start_costs
from wattwise.schedule.replay import replay


def _brute_oracle(actual: np.ndarray, d: int, w: int, semantics: str) -> float:
    costs = start_costs(actual, d)
    latest = last_start(d, w, semantics)  # type: ignore[arg-type]
    now = best = 0.0
    for t in range(len(actual)):
        window = costs[t : t + latest + 1]
        if len(window) < latest + 1 or np.isnan(window).any():
            continue
        now += window[0]
        best += window.min()
    return 100 * (1 - best / now)


def _perfect(actual: np.ndarray, need: int) -> np.ndarray:
    padded = np.concatenate([actual, np.full(need, np.nan)])
    out: np.ndarray = padded[np.arange(len(actual))[:, None] + np.arange(need)[None, :]]
    return out


@pytest.mark.parametrize(
    ("d", "w", "semantics"), [(1, 12, "start"), (4, 24, "start"), (4, 24, "deadline"), (3, 3, "deadline")]
)
def test_oracle_matches_brute_force_and_perfect_forecasts_reach_it(d: int, w: int, semantics: str) -> None:
    actual = synthetic(24 * 20, seed=3)
    actual[100:103] = np.nan  # a gap: submissions touching it are left out
    need = horizon_h(d, w, semantics)  # type: ignore[arg-type]
    outcome = replay(actual, _perfect(actual, need), d, w, semantics)  # type: ignore[arg-type]
    assert outcome.oracle_pct() == pytest.approx(_brute_oracle(actual, d, w, semantics))
    assert outcome.savings_pct() == pytest.approx(outcome.oracle_pct())
    once = replay(actual, _perfect(actual, need), d, w, semantics, replan=False)  # type: ignore[arg-type]
    assert once.savings_pct() == pytest.approx(outcome.oracle_pct())
    assert not outcome.valid[100 - need + 1 : 103].any() and outcome.valid[100 - need]


def test_a_useless_forecast_saves_nothing_and_a_missing_one_starts_at_once() -> None:
    actual = synthetic(24 * 10, seed=4)
    flat = np.full((len(actual), 28), 100.0)
    assert replay(actual, flat, 4, 24, "start").savings_pct() == pytest.approx(0.0)
    missing = np.full((len(actual), 28), np.nan)
    assert replay(actual, missing, 4, 24, "start").savings_pct() == pytest.approx(0.0)


def test_replanning_uses_the_forecast_issued_at_each_hour() -> None:
    # The forecast issued at submission says "wait 2 hours"; the one issued an hour later says "now".
    actual = np.array([5.0, 1.0, 3.0, 3.0, 3.0, 3.0])
    fc = np.full((6, 4), np.nan)
    fc[0] = [5, 4, 2, 9]
    fc[1] = [1, 9, 9, 9]
    out = replay(actual, fc, 1, 3, "start")
    once = replay(actual, fc, 1, 3, "start", replan=False)
    assert out.chosen[0] == 1.0  # started at hour 1 on the newer forecast
    assert once.chosen[0] == 3.0  # planned once: hour 2
