"""The pages that are not about a stored run: the optimizer's trade-off and a schedule plan.

Both go through the same templates and number formatting as run reports (:mod:`wattwise.report.html`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any

from wattwise.report import numbers
from wattwise.report.html import Pages
from wattwise.report.svg import PALETTE, Axis, Line, Point, Span, line_chart, scatter_chart

if TYPE_CHECKING:
    from wattwise.reduce.base import VariantResult

__all__ = ["estimate_page", "pareto_page", "plan_page"]


def pareto_page(
    variants: Sequence[VariantResult], *, title: str = "wattwise optimize", pages: Pages | None = None
) -> str:
    """Every variant's energy per inference against its metric, the Pareto front joined, and the table."""
    from wattwise.reduce.render import HEADERS, table_rows

    measured = [v for v in variants if v.energy_j_per_inference is not None and v.metric is not None]
    div, unit = numbers.energy_scale(max((v.energy_j_per_inference or 0.0 for v in measured), default=0.0))
    points = [
        Point(v.name, (v.energy_j_per_inference or 0.0) / div, v.metric or 0.0, v.pareto, v.recipe) for v in measured
    ]
    chart = scatter_chart(
        points,
        title="Energy per inference against the metric (better: to the left and up)",
        x_axis=Axis(f"energy per inference ({unit})", from_zero=True),
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


def _hours(plan: dict[str, Any], key: str) -> tuple[float, list[float], list[float]]:
    """(start, xs, ys) of a region's outlook series ``key`` (values or actual), gaps left out."""
    outlook = plan["outlook"]
    t0 = datetime.fromisoformat(outlook["start"]).timestamp()
    series = outlook.get(key) or []
    pairs = [(t0 + 3600.0 * (i + 1), float(v)) for i, v in enumerate(series) if v is not None]
    return t0, [x for x, _ in pairs], [y for _, y in pairs]


def _plan_chart(data: dict[str, Any]) -> str:
    """Each region's hourly outlook as steps, the chosen slots shaded, and what happened where a trace holds it."""
    lines = []
    spans = []
    best = data["best"]["region"]
    for index, plan in enumerate(data["regions"]):
        color = PALETTE[index % len(PALETTE)]
        t0, xs, ys = _hours(plan, "values")
        lines.append(Line(f"{plan['region']}: {plan['forecast']['method']}", xs, ys, color, step=True, x_start=t0))
        _, ax, ay = _hours(plan, "actual")
        if ax:
            lines.append(Line(f"{plan['region']}: what happened", ax, ay, color, True, True, t0))
        if plan["region"] == best:
            for s in plan["slices"]:
                start = datetime.fromisoformat(s["start_at"])
                label = f"chosen: {numbers.moment(start)} for {s['hours']:g} h in {plan['region']}"
                spans.append(Span(start.timestamp(), start.timestamp() + 3600.0 * s["hours"], label, PALETTE[2]))
    now = datetime.fromisoformat(data["submitted_at"]).timestamp()
    spans.append(Span(now, now + 3600.0 * data["duration_h"], "starting at submission", "#9aa0a6"))
    return line_chart(
        lines,
        title="Grid intensity outlook (green: the chosen hours; grey: starting now)",
        x_axis=Axis("time (UTC)", kind="time"),
        y_axis=Axis("intensity (gCO2e/kWh)", from_zero=True),
        spans=spans,
    )


def _start_chart(data: dict[str, Any]) -> str:
    """The alternatives: the job's mean intensity for every start hour the window allows, per region."""
    from wattwise.schedule.planner import kernel, last_start

    weights = list(kernel(data["duration_h"]))
    latest = last_start(data["duration_h"], data["window_h"], data["semantics"])
    lines = []
    for index, plan in enumerate(data["regions"]):
        outlook = plan["outlook"]
        t0 = datetime.fromisoformat(outlook["start"]).timestamp()
        values = outlook["values"]
        xs, ys = [], []
        for start in range(latest + 1):
            hours = values[start : start + len(weights)]
            if len(hours) < len(weights) or any(v is None for v in hours):
                continue
            xs.append(t0 + 3600.0 * start)
            ys.append(sum(w * v for w, v in zip(weights, hours, strict=True)) / sum(weights))
        lines.append(Line(plan["region"], xs, ys, PALETTE[index % len(PALETTE)], markers=len(xs) <= 72))
    return line_chart(
        lines,
        title=f"The job's mean intensity by start hour ({data['duration_h']:g} h job)",
        x_axis=Axis("start (UTC)", kind="time"),
        y_axis=Axis("mean intensity over the job (gCO2e/kWh)", from_zero=True),
        height=260,
    )


def plan_page(data: dict[str, Any], *, pages: Pages | None = None, standalone: bool = True, **context: Any) -> str:
    """A schedule plan from its JSON form (what ``schedule plan --json`` prints, and what ``--save`` stores): the
    outlook with the chosen slots and the alternatives, the forecast it relied on and any warning."""
    charts = {"outlook": _plan_chart(data)}
    if not data["interruptible"]:
        charts["starts"] = _start_chart(data)
    return (pages or Pages()).render(
        "plan.html", standalone=standalone, title="wattwise schedule plan", plan=data, charts=charts, **context
    )


_TRAINING_ROWS: tuple[tuple[str, str, str], ...] = (
    ("accelerator_hours", "accelerator-hours", "count"),
    ("energy_kwh", "energy, facility", "kwh"),
    ("accelerator_energy_kwh", "of which accelerators (IT)", "kwh"),
    ("host_energy_kwh", "of which hosts (IT)", "kwh"),
    ("operational_co2e_kg", "operational emissions (CO2e)", "kg"),
    ("embodied_co2e_kg", "embodied emissions (CO2e)", "kg"),
    ("total_co2e_kg", "total emissions (CO2e)", "kg"),
    ("water_onsite_l", "water, on-site", "l"),
    ("water_offsite_l", "water, off-site", "l"),
    ("cost_usd", "cost (USD)", "count"),
)
_INFERENCE_ROWS: tuple[tuple[str, str, str], ...] = (
    ("energy_wh_per_request", "energy per request", "wh"),
    ("energy_wh_per_1k_tokens", "energy per 1,000 tokens", "wh"),
    ("co2e_g_per_request", "CO2e per request", "g"),
    ("co2e_g_per_1k_tokens", "CO2e per 1,000 tokens", "g"),
    ("energy_kwh_per_day", "energy per day", "kwh"),
    ("co2e_kg_per_day", "CO2e per day", "kg"),
    ("water_l_per_day", "water per day", "l"),
)
_FORMATS: dict[str, Callable[[float], str]] = {
    "count": numbers.sig,
    "kwh": numbers.energy_kwh,
    "wh": lambda wh: numbers.energy_kwh(wh / 1000.0),
    "kg": numbers.mass_kg,
    "g": numbers.mass_g,
    "l": numbers.volume_l,
}


def _estimate_rows(kind: str, data: dict[str, Any]) -> list[tuple[str, str, str]]:
    """(quantity, value, low–high) for each figure the estimate has, each in the unit its value calls for."""
    rows = []
    for key, label, unit in _TRAINING_ROWS if kind == "training-estimate" else _INFERENCE_ROWS:
        value = data.get(key)
        if not isinstance(value, int | float):
            continue
        fmt = _FORMATS[unit]
        low, high = data.get("low", {}).get(key), data.get("high", {}).get(key)
        rng = f"{fmt(low)}–{fmt(high)}" if isinstance(low, int | float) and isinstance(high, int | float) else "–"
        rows.append((label, fmt(value), rng))
    return rows


def estimate_page(
    kind: str,
    data: dict[str, Any],
    *,
    name: str = "",
    pages: Pages | None = None,
    standalone: bool = True,
    **context: Any,
) -> str:
    """A training or inference estimate from its JSON form: the figures with their ranges, the equivalents of the
    totals, the inputs and every assumption."""
    from wattwise.report.equivalents import equivalents
    from wattwise.units import kwh_to_j

    if kind == "training-estimate":
        eq = equivalents(kwh_to_j(data["energy_kwh"]), data["total_co2e_kg"] * 1000.0, data["water_l"])
    else:
        eq = equivalents(
            kwh_to_j(data["energy_kwh_per_day"]), data["co2e_kg_per_day"] * 1000.0, data["water_l_per_day"]
        )
    return (pages or Pages()).render(
        "estimate.html",
        rows=_estimate_rows(kind, data),
        standalone=standalone,
        title=f"wattwise {kind.replace('-', ' ')}" + (f": {name}" if name else ""),
        kind=kind,
        name=name,
        est=data,
        equivalents=eq,
        **context,
    )
