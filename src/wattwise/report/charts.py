"""The plots of a run's page, built from a :class:`~wattwise.report.run_view.RunView` (one SVG string each)."""

from __future__ import annotations

from collections.abc import Callable

from wattwise.records import Run
from wattwise.report import numbers
from wattwise.report.run_view import DISPLAY_POINTS, RunView
from wattwise.report.svg import PALETTE, Axis, Band, Bars, Line, Span, bar_chart, line_chart

__all__ = [
    "component_chart",
    "external_chart",
    "intensity_chart",
    "power_chart",
    "prediction_chart",
    "rank_chart",
    "run_charts",
    "window_chart",
]

_MACHINE = "#bbbbbb"


def power_chart(view: RunView) -> str:
    """Power per channel over the run (each sample a step over its interval); epochs shaded."""
    share = "process tree's share" if view.run.attribution == "process" else "whole machine"
    div, unit = numbers.power_scale(max((max(s.power_w, default=0.0) for s in view.power), default=0.0))
    lines = [
        Line(
            f"{series.channel} ({series.component})",
            series.t_s,
            [w / div for w in series.power_w],
            step=True,
            x_start=0.0,
        )
        for series in view.power
    ]
    spans = []
    for i, w in enumerate(view.epochs[:400]):  # beyond that, shading is noise
        begin = (w.started_at - view.run.started_at).total_seconds()
        label = f"{w.name}: {numbers.energy_j(w.energy_j)} in {numbers.duration_s(w.duration_s)}"
        spans.append(Span(begin, begin + w.duration_s, label, "#9aa0a6" if i % 2 else "#dadce0"))
    title = f"Power over time per channel ({share})" + ("; shaded: epochs" if spans else "")
    if not lines:
        title = "Power over time: no samples stored"
    return line_chart(
        lines,
        title=title,
        x_axis=Axis("time since start", kind="duration"),
        y_axis=Axis(f"power ({unit})", from_zero=True),
        spans=spans,
        max_points=DISPLAY_POINTS * max(1, len(lines)),  # the view already thinned each channel to DISPLAY_POINTS
    )


def component_chart(run: Run) -> str:
    """Energy per channel: the share charged to the run, stacked on the rest of what the machine drew."""
    parts = [c for c in run.components if c.machine_energy_j > 0 or c.energy_j > 0]
    names = [c.name for c in parts]
    charged = [c.energy_j for c in parts]
    rest = [max(0.0, c.machine_energy_j - c.energy_j) for c in parts]
    div, unit = numbers.energy_scale(max([a + b for a, b in zip(charged, rest, strict=True)], default=0.0))
    layers = [Bars("charged to the run", [v / div for v in charged], PALETTE[0])]
    if run.attribution == "process" and any(r > 0 for r in rest):
        layers.append(Bars("rest of the machine", [v / div for v in rest], _MACHINE))
    return bar_chart(
        names,
        layers,
        title="Energy by channel",
        y_axis=Axis(f"energy ({unit})", from_zero=True),
        x_label="channel",
        value_text=lambda v: numbers.energy_j(v * div),
    )


def window_chart(view: RunView) -> str:
    """Energy per window (epochs first, else every top-level window), stacked by channel."""
    windows = view.epochs or [w for w in view.run.windows if w.parent is None]
    channels = [c.name for c in view.run.components if c.in_total]
    div, unit = numbers.energy_scale(max((w.energy_j for w in windows), default=0.0))
    layers = [Bars(name, [w.components.get(name, 0.0) / div for w in windows]) for name in channels]
    return bar_chart(
        [w.name for w in windows],
        [layer for layer in layers if any(v > 0 for v in layer.values)],
        title="Energy per epoch, by channel" if view.epochs else "Energy per window, by channel",
        y_axis=Axis(f"energy ({unit})", from_zero=True),
        x_label="epoch" if view.epochs else "window",
        value_text=lambda v: numbers.energy_j(v * div),
    )


def window_emissions_chart(view: RunView) -> str:
    windows = view.epochs or [w for w in view.run.windows if w.parent is None]
    div, unit = numbers.mass_scale(max((w.co2e_g for w in windows), default=0.0))
    return bar_chart(
        [w.name for w in windows],
        [Bars("emissions", [w.co2e_g / div for w in windows], PALETTE[3])],
        title="Emissions per epoch" if view.epochs else "Emissions per window",
        y_axis=Axis(f"CO2e ({unit})", from_zero=True),
        x_label="epoch" if view.epochs else "window",
        value_text=lambda v: numbers.mass_g(v * div),
    )


def prediction_chart(view: RunView) -> str:
    """The whole run's energy as predicted after each epoch, its range, and what the run used."""
    steps = view.predictions
    xs = [float(s.epochs_seen) for s in steps]
    actual = view.run.energy_j
    label = "measured total" if view.run.status == "complete" else f"measured so far ({view.run.status})"
    div, unit = numbers.energy_scale(max([actual, *(s.energy_j.high for s in steps)]))
    actual /= div
    return line_chart(
        [
            Line("predicted total", xs, [s.energy_j.value / div for s in steps], markers=True),
            Line(label, [xs[0], xs[-1]] if xs else [], [actual, actual] if xs else [], PALETTE[6], dashed=True),
        ],
        bands=[
            Band("predicted range", xs, [s.energy_j.low / div for s in steps], [s.energy_j.high / div for s in steps])
        ],
        title="Early prediction of the whole run against what happened",
        x_axis=Axis("epochs seen"),
        y_axis=Axis(f"energy of the whole run ({unit})", from_zero=True),
    )


def intensity_chart(run: Run) -> str:
    """The grid intensity the emissions used, over the run: the stored series, or the one figure applied."""
    start = run.started_at.timestamp()
    end = start + max(run.duration_s, 1e-3)
    if run.intensity_series:
        xs: list[float] = []
        ys: list[float] = []
        for step in run.intensity_series:
            t0 = max(start, step.start.timestamp())
            t1 = min(end, step.start.timestamp() + step.duration_s)
            if t1 <= t0:  # a step outside the run (the series is stored as the provider answered)
                continue
            xs += [t0, t1]
            ys += [step.intensity_g_per_kwh, step.intensity_g_per_kwh]
        forecast = any(step.forecast for step in run.intensity_series)
        title = "Grid intensity over the run" + (" (partly forecast)" if forecast else "")
    else:
        xs, ys = [start, end], [run.intensity_g_per_kwh] * 2
        title = f"Grid intensity: one figure for the whole run ({run.emissions_method})"
    return line_chart(
        [Line(_short(f"{run.intensity_source} ({run.signal})"), xs, ys, PALETTE[2])],
        title=title,
        x_axis=Axis("time (UTC)", kind="time"),
        y_axis=Axis("intensity (gCO2e/kWh)", from_zero=True),
        height=240,
    )


def _short(text: str, most: int = 90) -> str:
    return text if len(text) <= most else text[: most - 1] + "…"


RANK_BARS = 48  # more ranks than this are drawn per host


def rank_chart(view: RunView) -> str:
    """Each rank's energy (per host beyond :data:`RANK_BARS` ranks): its own devices, stacked with its share of the
    node-wide energy."""
    if len(view.run.ranks) <= RANK_BARS:
        groups = [(f"rank {r.rank}", r.energy_j, r.node_share_j) for h in view.hosts for r in h.ranks]
        title, x_label = "Energy per rank", "rank"
    else:
        groups = [(h.host, h.energy_j, h.node_share_j) for h in view.hosts]
        title, x_label = f"Energy per host ({len(view.run.ranks)} ranks)", "host"
    div, unit = numbers.energy_scale(max((g[1] for g in groups), default=0.0))
    own = [max(0.0, total - share) / div for _, total, share in groups]
    return bar_chart(
        [g[0] for g in groups],
        [
            Bars("own devices", own, PALETTE[0]),
            Bars("share of node-wide energy", [g[2] / div for g in groups], _MACHINE),
        ],
        title=title,
        y_axis=Axis(f"energy ({unit})", from_zero=True),
        x_label=x_label,
        value_text=lambda v: numbers.energy_j(v * div),
    )


def _external_name(scope: str) -> str:
    """A cluster figure's bar label: what sets it apart first (bar labels are cut to their room): a DCGM GPU by its
    index (the UUID is in the table), a Kepler metric's part before its pod (``cpu, dram: ml/train``)."""
    scope = scope.split(" GPU-", 1)[0]
    if scope.endswith(")") and " (" in scope:
        whole, part = scope[:-1].rsplit(" (", 1)
        return f"{part}: {whole.removeprefix('pod ')}"
    return scope


def _energy_in(div: float) -> Callable[[float], str]:
    """A bar's value (in units of ``div`` joules) as energy text."""
    return lambda value: numbers.energy_j(value * div)


def external_chart(view: RunView) -> str:
    """Each cluster figure next to wattwise's figure for the same thing (where one compares), one chart per source:
    a job's whole node and a pod's CPU part differ a hundredfold, and on one axis the smaller would not show."""
    charts = []
    for source in dict.fromkeys(row.figure.source for row in view.external):
        names: list[str] = []
        cluster: list[float] = []
        ours: list[float] = []
        for row in (r for r in view.external if r.figure.source == source):
            names.append(_external_name(row.figure.scope))
            cluster.append(row.figure.energy_j)
            ours.append(0.0)
            if row.wattwise.energy_j is not None:
                names.append(f"wattwise {row.wattwise.label.split(' (', 1)[0]}")
                cluster.append(0.0)
                ours.append(row.wattwise.energy_j)
        div, unit = numbers.energy_scale(max([*cluster, *ours], default=0.0))
        charts.append(
            bar_chart(
                names,
                [Bars(source, [v / div for v in cluster], PALETTE[4]), Bars("wattwise", [v / div for v in ours])],
                title=f"{source} beside wattwise's figures (not added to the total)",
                y_axis=Axis(f"energy ({unit})", from_zero=True),
                x_label="figure",
                height=240,
                value_text=_energy_in(div),
            )
        )
    return "".join(charts)


def run_charts(view: RunView) -> dict[str, str]:
    """Every chart of a run's page, by name (a chart with nothing to show is left out)."""
    charts = {"power": power_chart(view), "components": component_chart(view.run)}
    if view.epochs or any(w.parent is None for w in view.run.windows):
        charts["windows"] = window_chart(view)
        charts["window_emissions"] = window_emissions_chart(view)
    if view.predictions:
        charts["prediction"] = prediction_chart(view)
    charts["intensity"] = intensity_chart(view.run)
    if view.hosts:
        charts["ranks"] = rank_chart(view)
    if view.external:
        charts["external"] = external_chart(view)
    return charts
