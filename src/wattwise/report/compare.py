"""Runs side by side: the figures of each, their differences against the first, and what differs in how they
were measured (the differences a reader must know before trusting a comparison).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from wattwise.errors import ConfigError
from wattwise.records import Run
from wattwise.report import numbers
from wattwise.report.run_view import epoch_windows
from wattwise.report.svg import Axis, Bars, Line, bar_chart, line_chart

__all__ = ["MAX_COMPARED", "Comparison", "compare", "comparison_charts"]

MAX_COMPARED = 12
NOTABLE = 0.10  # a relative difference in a figure is called out from this size on

_METRICS: tuple[tuple[str, str, Callable[[float], str]], ...] = (
    ("energy_j", "energy (IT)", numbers.energy_j),
    ("machine_energy_j", "machine energy", numbers.energy_j),
    ("co2e_g", "emissions (CO2e)", numbers.mass_g),
    ("water_l", "water", numbers.volume_l),
    ("duration_s", "duration", numbers.duration_s),
    ("intensity_g_per_kwh", "grid intensity", numbers.intensity),
)


@dataclass(frozen=True, slots=True)
class Comparison:
    runs: list[Run]
    rows: list[dict[str, Any]]  # per metric: label, the formatted values, the change against the first run
    windows: list[dict[str, Any]]  # per window name present in every run: the energy of each
    callouts: list[str]

    def to_dict(self) -> dict[str, Any]:
        return {
            "runs": [r.to_dict() for r in self.runs],
            "metrics": self.rows,
            "windows": self.windows,
            "callouts": self.callouts,
        }


def _value(run: Run, key: str) -> float:
    return float(getattr(run, key))


def _change(value: float, base: float) -> float | None:
    return None if base == 0 else value / base - 1


def _callouts(runs: Sequence[Run]) -> list[str]:
    """What a reader must know: first what makes the comparison unfair, then the notable differences in energy,
    emissions and duration against the first run."""
    base = runs[0]
    out = []
    for attr, label in (
        ("region", "regions"),
        ("intensity_source", "intensity sources"),
        ("signal", "intensity signals (average or marginal)"),
        ("emissions_method", "emission methods"),
        ("pue", "PUEs"),
        ("attribution", "attributions"),
        ("source", "measurement sources (measured or estimated)"),
        ("host", "hosts"),
    ):
        values = {str(getattr(run, attr)) for run in runs}
        if len(values) > 1:
            shown = ", ".join(sorted(v if len(v) <= 60 else v[:59] + "…" for v in values))
            out.append(f"different {label}: {shown}; figures that depend on them are not like for like")
    statuses = {run.status for run in runs}
    if statuses != {"complete"}:
        out.append(f"not every run is complete ({', '.join(sorted(statuses))}): a partial run's figures are lower")
    for index, run in enumerate(runs[1:], start=2):
        changes = []
        for key, label, fmt in (_METRICS[0], _METRICS[2], _METRICS[4]):  # energy, emissions, duration
            change = _change(_value(run, key), _value(base, key))
            if change is not None and abs(change) >= NOTABLE:
                changes.append(f"{label} {numbers.signed_percent(change)} ({fmt(_value(run, key))})")
        if changes:
            out.append(f"run {index}, {run.name}: " + "; ".join(changes) + " against run 1")
    return out


def compare(runs: Sequence[Run]) -> Comparison:
    """The comparison of 2 to :data:`MAX_COMPARED` runs, the first being the one the others are set against."""
    if not 2 <= len(runs) <= MAX_COMPARED:
        raise ConfigError(f"compare 2 to {MAX_COMPARED} runs (got {len(runs)}); give their ids or prefixes")
    ids = [run.id for run in runs]
    if len(set(ids)) != len(ids):
        raise ConfigError("a run is given twice; compare different runs")
    base = runs[0]
    rows = []
    for key, label, fmt in _METRICS:
        values = [_value(run, key) for run in runs]
        rows.append(
            {
                "key": key,
                "label": label,
                "values": values,
                "text": [fmt(v) for v in values],
                "change": [None, *[_change(v, values[0]) for v in values[1:]]],
                "change_text": [
                    "",
                    *["–" if (c := _change(v, values[0])) is None else numbers.signed_percent(c) for v in values[1:]],
                ],
            }
        )
    names = [w.name for w in base.windows if w.parent is None]
    by_run = [{w.name: w for w in run.windows if w.parent is None} for run in runs]
    windows = []
    for name in names:
        if all(name in found for found in by_run):
            energies = [found[name].energy_j for found in by_run]
            windows.append(
                {
                    "name": name,
                    "energy_j": energies,
                    "text": [numbers.energy_j(e) for e in energies],
                    "change_text": [
                        "",
                        *[
                            "–" if (c := _change(e, energies[0])) is None else numbers.signed_percent(c)
                            for e in energies[1:]
                        ],
                    ],
                }
            )
    return Comparison(list(runs), rows, windows, _callouts(runs))


def comparison_charts(cmp: Comparison) -> dict[str, str]:
    labels = [f"{i}. {run.name}" for i, run in enumerate(cmp.runs, start=1)]  # numbered as in the table
    channels: list[str] = []
    for run in cmp.runs:
        channels += [c.name for c in run.components if c.in_total and c.name not in channels]
    e_div, e_unit = numbers.energy_scale(max(run.energy_j for run in cmp.runs))
    m_div, m_unit = numbers.mass_scale(max(run.co2e_g for run in cmp.runs))
    layers = [
        Bars(name, [next((c.energy_j for c in run.components if c.name == name), 0.0) / e_div for run in cmp.runs])
        for name in channels
    ]
    charts = {
        "energy": bar_chart(
            labels,
            [layer for layer in layers if any(v > 0 for v in layer.values)],
            title="Energy per run, by channel",
            y_axis=Axis(f"energy ({e_unit})", from_zero=True),
            x_label="run",
            value_text=lambda v: numbers.energy_j(v * e_div),
        ),
        "emissions": bar_chart(
            labels,
            [Bars("emissions", [run.co2e_g / m_div for run in cmp.runs])],
            title="Emissions per run",
            y_axis=Axis(f"CO2e ({m_unit})", from_zero=True),
            x_label="run",
            value_text=lambda v: numbers.mass_g(v * m_div),
        ),
    }
    epochs = [epoch_windows(run.windows) for run in cmp.runs]
    if sum(1 for e in epochs if e) >= 2:
        w_div, w_unit = numbers.energy_scale(max(w.energy_j for e in epochs for w in e))
        charts["epochs"] = line_chart(
            [
                Line(
                    label, [float(i + 1) for i in range(len(e))], [w.energy_j / w_div for w in e], markers=len(e) <= 60
                )
                for label, e in zip(labels, epochs, strict=True)
                if e
            ],
            title="Energy per epoch",
            x_axis=Axis("epoch"),
            y_axis=Axis(f"energy ({w_unit})", from_zero=True),
        )
    return charts
