from __future__ import annotations

import itertools
import re

import pytest

from wattwise.report.svg import (
    Axis,
    Band,
    Bars,
    Line,
    Point,
    Span,
    bar_chart,
    downsample,
    line_chart,
    nice_ticks,
    scatter_chart,
)


@pytest.mark.parametrize(
    ("low", "high", "first", "last"), [(0, 5.8, 0, 6), (0.001, 0.0023, 0.001, 0.0025), (-3, 7, -4, 8), (0, 100, 0, 100)]
)
def test_nice_ticks_cover_the_range_with_round_steps(low: float, high: float, first: float, last: float) -> None:
    ticks = nice_ticks(low, high)
    assert ticks[0] == pytest.approx(first) and ticks[-1] == pytest.approx(last)
    steps = {round(b - a, 12) for a, b in itertools.pairwise(ticks)}
    assert len(steps) == 1
    mantissa = float(f"{steps.pop():e}".split("e")[0])
    assert mantissa in (1.0, 2.0, 5.0)


def test_downsample_keeps_every_peak_and_order() -> None:
    xs = [float(i) for i in range(100_000)]
    ys = [1.0] * 100_000
    ys[54_321] = 99.0
    ys[77_777] = -5.0
    out_x, out_y = downsample(xs, ys, 200)
    assert len(out_x) <= 4 * 200
    assert 99.0 in out_y and -5.0 in out_y
    assert out_x == sorted(out_x)
    assert downsample(xs[:10], ys[:10], 200) == (xs[:10], ys[:10])


def test_line_chart_counts_its_points_and_escapes_labels() -> None:
    svg = line_chart(
        [Line("<script>alert(1)</script>", [0, 1, 2], [1, 2, 3], step=True, x_start=0.0)],
        bands=[Band("range", [0, 2], [0, 1], [2, 4])],
        spans=[Span(0.5, 1.5, "epoch & more")],
        title='a "title"',
        x_axis=Axis("t", kind="duration"),
        y_axis=Axis("W", from_zero=True),
    )
    assert "<script>" not in svg and "&lt;script&gt;" in svg and "epoch &amp; more" in svg
    assert re.search(r'<svg [^>]*data-points="3"', svg)
    assert 'class="ww-series"' in svg


def test_charts_without_data_say_so() -> None:
    empty = line_chart([], title="nothing", x_axis=Axis("x"), y_axis=Axis("y"))
    assert "no data" in empty and 'data-points="0"' in empty
    assert "no data" in bar_chart([], [], title="t", y_axis=Axis("y"))
    assert "no data" in scatter_chart([Point("nan", float("nan"), 1.0)], title="t", x_axis=Axis("x"), y_axis=Axis("y"))


def test_bar_chart_stacks_layers_with_values_in_titles() -> None:
    svg = bar_chart(
        ["epoch-1", "epoch-2"], [Bars("cpu", [1.0, 2.0]), Bars("gpu", [3.0, 0.0])], title="t", y_axis=Axis("J")
    )
    assert svg.count('class="ww-bar"') == 3  # a zero segment is not drawn
    assert "epoch-1 · gpu: 3" in svg


def test_scatter_joins_the_front_in_x_order() -> None:
    svg = scatter_chart(
        [Point("a", 1.0, 0.9, True), Point("b", 3.0, 0.95, True), Point("c", 2.0, 0.5)],
        title="t",
        x_axis=Axis("J"),
        y_axis=Axis("metric"),
    )
    assert svg.count('class="ww-point"') == 3 and "Pareto front" in svg


def test_time_axis_labels_are_utc_clock_times() -> None:
    from datetime import UTC, datetime

    t0 = datetime(2025, 3, 1, 12, 0, tzinfo=UTC).timestamp()
    svg = line_chart(
        [Line("x", [t0, t0 + 6 * 3600], [1, 2])], title="t", x_axis=Axis("time", kind="time"), y_axis=Axis("y")
    )
    assert ">12:00<" in svg and ">14:00<" in svg
