from __future__ import annotations

import itertools

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from wattwise.errors import ConfigError
from wattwise.schedule.planner import Job, horizon_h, kernel, last_start, plan, start_costs


def test_start_semantics_picks_the_cheapest_window_within_the_delay() -> None:
    values = np.array([5, 5, 5, 1, 1, 5, 5, 0, 0, 0], dtype=float)
    d = plan(values, 2, 5, "start")
    assert d.start_offset_h == 3  # offsets 0..5; 7-8 would be cheaper but start 7 is beyond the window
    assert d.expected_g_per_kwh == 1 and d.now_g_per_kwh == 5
    assert d.expected_savings_pct == pytest.approx(80.0)


def test_deadline_semantics_must_finish_within_the_window() -> None:
    values = np.array([5, 5, 5, 1, 1, 0, 0], dtype=float)
    d = plan(values, 2, 5, "deadline")
    assert d.start_offset_h == 3  # the 0s at 5-6 would finish at hour 7 > 5
    assert last_start(2, 5, "deadline") == 3 and horizon_h(2, 5, "deadline") == 5
    assert last_start(2, 5, "start") == 5 and horizon_h(2, 5, "start") == 7


def test_a_deadline_shorter_than_the_job_is_one_line() -> None:
    with pytest.raises(ConfigError, match=r"deadline 2 h away is shorter than the job \(4 h\)"):
        Job(4, 2, "deadline")
    with pytest.raises(ConfigError, match="duration"):
        Job(0, 2, "start")
    with pytest.raises(ConfigError, match="window"):
        Job(1, 400, "start")
    with pytest.raises(ConfigError, match="semantics"):
        Job(1, 4, "soon")  # type: ignore[arg-type]


def test_an_outlook_too_short_says_how_much_is_needed() -> None:
    with pytest.raises(ConfigError, match=r"covers 10 h.*needs 28 h"):
        plan(np.ones(10), 4, 24, "start")


def test_fractional_duration_weighs_the_last_hour() -> None:
    assert list(kernel(2.5)) == [1.0, 1.0, 0.5]
    costs = start_costs(np.array([1.0, 2.0, 4.0, 8.0]), 2.5)
    assert list(costs) == [1 + 2 + 2, 2 + 4 + 4]


def test_interruptible_runs_in_the_cheapest_hours_grouped_in_slices() -> None:
    values = np.array([9, 1, 2, 9, 9, 1, 9], dtype=float)
    d = plan(values, 3, 4, "start", interruptible=True)
    assert [(s.offset_h, s.hours) for s in d.slices] == [(1, 2.0), (5, 1.0)]
    assert d.expected_g_per_kwh == pytest.approx(4 / 3)
    assert d.now_g_per_kwh == pytest.approx(12 / 3)


@settings(max_examples=60, deadline=None)
@given(
    st.lists(st.floats(1, 1000), min_size=30, max_size=30),
    st.integers(1, 6),
    st.integers(0, 20),
    st.sampled_from(["start", "deadline"]),
)
def test_plan_is_the_brute_force_minimum(values: list[float], duration: int, window: int, semantics: str) -> None:
    if semantics == "deadline" and window < duration:
        return
    arr = np.array(values)
    d = plan(arr, duration, window, semantics)  # type: ignore[arg-type]
    starts = range(last_start(duration, window, semantics) + 1)  # type: ignore[arg-type]
    best = min(sum(arr[s : s + duration]) for s in starts)
    assert d.expected_g_per_kwh * duration == pytest.approx(best)
    # an interruptible job never does worse than the same job in one piece
    di = plan(arr, duration, window, semantics, interruptible=True)  # type: ignore[arg-type]
    assert di.expected_g_per_kwh <= d.expected_g_per_kwh + 1e-9
    hours = sorted(itertools.chain.from_iterable(range(s.offset_h, s.offset_h + int(s.hours)) for s in di.slices))
    assert len(hours) == duration and len(set(hours)) == duration
    assert max(hours) < horizon_h(duration, window, semantics)  # type: ignore[arg-type]


def test_interruptible_slices_end_by_the_latest_finish_with_fractional_windows() -> None:
    values = np.array([300, 300, 60, 50, 1, 1], dtype=float)
    d = plan(values, 1.5, 3.5, "deadline", interruptible=True)
    assert all(s.offset_h + s.hours <= 3.5 for s in d.slices)  # hour 3 would end at 4 h, after the deadline
    d = plan(values, 1.5, 2.2, "start", interruptible=True)
    assert all(s.offset_h + s.hours <= 3.7 for s in d.slices)
