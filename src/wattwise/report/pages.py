"""The pages that are not about a stored run: the optimizer's trade-off and a schedule plan.

Both go through the same templates and number formatting as run reports (:mod:`wattwise.report.html`).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from wattwise.report import numbers
from wattwise.report.html import Pages
from wattwise.report.svg import PALETTE, Axis, Line, Point, Span, line_chart, scatter_chart

if TYPE_CHECKING:
    from wattwise.reduce.base import VariantResult
    from wattwise.schedule.plans import PlanResult

__all__ = ["pareto_page", "plan_page"]


def pareto_page(
    variants: Sequence[VariantResult], *, title: str = "wattwise optimize", pages: Pages | None = None
) -> str:
    """Every variant's energy per inference against its metric, the Pareto front joined, and the table."""
    from wattwise.reduce.render import HEADERS, table_rows

    points = [
        Point(v.name, v.energy_j_per_inference, v.metric, v.pareto, v.recipe)
        for v in variants
        if v.energy_j_per_inference is not None and v.metric is not None
    ]
    chart = scatter_chart(
        points,
        title="Energy per inference against the metric (lower left to upper left is better)",
        x_axis=Axis("energy per inference (J)", from_zero=False),
        y_axis=Axis("metric (higher is better)"),
    )
    failed = [v for v in variants if v.error]
    return (pages or Pages()).render(
        "pareto.html",
        title=title,
        chart=chart,
        headers=HEADERS,
        rows=table_rows(variants),
        front=[v.name for v in variants if v.pareto],
        failed=failed,
    )


def _plan_chart(result: PlanResult) -> str:
    """Each region's hourly outlook as steps, the chosen slots shaded, and what happened where a trace holds it."""
    lines = []
    spans = []
    best = result.best
    for index, plan in enumerate(result.plans):
        o = plan.outlook
        t0 = o.start.timestamp()
        xs = [t0 + 3600.0 * (i + 1) for i in range(len(o.values))]
        color = PALETTE[index % len(PALETTE)]
        lines.append(Line(f"{plan.region}: {o.method}", xs, [float(v) for v in o.values], color, step=True, x_start=t0))
        if o.actual is not None:
            actual = [float(v) for v in o.actual[: len(xs)]]
            lines.append(Line(f"{plan.region}: what happened", xs[: len(actual)], actual, color, True, True, t0))
        if plan is best:
            for s in plan.decision.slices:
                start = o.start + timedelta(hours=s.offset_h)
                spans.append(
                    Span(
                        start.timestamp(),
                        (start + timedelta(hours=s.hours)).timestamp(),
                        f"chosen: {numbers.moment(start)} for {s.hours:g} h in {plan.region}",
                        PALETTE[2],
                    )
                )
    now = result.home.outlook.start.timestamp()
    spans.append(Span(now, now + 3600.0 * result.job.duration_h, "starting at submission", "#9aa0a6"))
    return line_chart(
        lines,
        title="Grid intensity outlook (green: the chosen hours; grey: starting now)",
        x_axis=Axis("time (UTC)", kind="time"),
        y_axis=Axis("intensity (gCO2e/kWh)", from_zero=True),
        spans=spans,
    )


def _start_chart(result: PlanResult) -> str:
    """The alternatives: the job's mean intensity for every start hour the window allows, per region."""
    import numpy as np

    from wattwise.schedule.planner import kernel, last_start, start_costs

    job = result.job
    weights = float(kernel(job.duration_h).sum())
    lines = []
    for index, plan in enumerate(result.plans):
        o = plan.outlook
        costs = start_costs(np.asarray(o.values, dtype=float), job.duration_h) / weights
        allowed = costs[: last_start(job.duration_h, job.window_h, job.semantics) + 1]
        xs = [o.start.timestamp() + 3600.0 * i for i in range(len(allowed))]
        lines.append(
            Line(plan.region, xs, [float(v) for v in allowed], PALETTE[index % len(PALETTE)], markers=len(xs) <= 72)
        )
    return line_chart(
        lines,
        title=f"The job's mean intensity by start hour ({job.duration_h:g} h job)",
        x_axis=Axis("start (UTC)", kind="time"),
        y_axis=Axis("mean intensity over the job (gCO2e/kWh)", from_zero=True),
        height=260,
    )


def plan_page(result: PlanResult, data: dict[str, Any], *, pages: Pages | None = None) -> str:
    """A schedule plan: the outlook with the chosen slots and the alternatives, the forecast it relied on and any
    warning. ``data`` is the plan's JSON form (what ``schedule plan --json`` prints)."""
    charts = {"outlook": _plan_chart(result)}
    if not result.job.interruptible:
        charts["starts"] = _start_chart(result)
    return (pages or Pages()).render(
        "plan.html",
        title="wattwise schedule plan",
        plan=data,
        charts=charts,
    )
