"""What a run's page shows, computed once from the record and its samples: the HTML report, the dashboard's run
page, its JSON and the Markdown/LaTeX statement all read a :class:`RunView`.

Series are thinned for display (:data:`DISPLAY_POINTS` per channel, peaks kept); the store keeps the raw samples.
The early prediction is replayed from the run's epoch windows with the tracker's own method, so the page shows
what was predicted after each epoch against what happened.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from wattwise.records import Range, Run, Sample, WindowRecord
from wattwise.report import numbers
from wattwise.report.cluster import RANK_NOTE, ExternalRow, HostRanks, external_rows, external_totals, hosts
from wattwise.report.equivalents import EquivalentRow, equivalents
from wattwise.report.svg import downsample
from wattwise.report.work import work_rows

__all__ = [
    "DISPLAY_POINTS",
    "PowerSeries",
    "PredictionStep",
    "RunView",
    "assumptions",
    "build_run_view",
    "energy_range",
]

DISPLAY_POINTS = 1200  # per channel: about 4 points per pixel column of a 760-px plot, peaks kept
_EPOCH = re.compile(r"^epoch-(\d+)$")


@dataclass(frozen=True, slots=True)
class PowerSeries:
    """One channel's power for display: each ``power_w[i]`` is the mean over the interval ending ``t_s[i]``."""

    channel: str
    component: str
    t_s: list[float]
    power_w: list[float]
    raw_points: int

    def to_dict(self) -> dict[str, Any]:
        return {
            "channel": self.channel,
            "component": self.component,
            "t_s": self.t_s,
            "power_w": self.power_w,
            "raw_points": self.raw_points,
        }


@dataclass(frozen=True, slots=True)
class PredictionStep:
    """The whole run's energy as predicted after ``epochs_seen`` epochs."""

    epochs_seen: int
    energy_j: Range
    duration_s: Range

    def to_dict(self) -> dict[str, Any]:
        return {
            "epochs_seen": self.epochs_seen,
            "energy_j": self.energy_j.to_dict(),
            "duration_s": self.duration_s.to_dict(),
        }


@dataclass(frozen=True, slots=True)
class RunView:
    run: Run
    power: list[PowerSeries]
    predictions: list[PredictionStep]
    epochs: list[WindowRecord]
    equivalents: list[EquivalentRow]
    assumptions: list[tuple[str, str]]
    component_co2e_g: dict[str, float] = field(default_factory=dict)
    energy_range: Range | None = None  # the total's low and high ends: estimated channels' ranges, measured exact
    hosts: list[HostRanks] = field(default_factory=list)  # a distributed run's ranks, by host
    external: list[ExternalRow] = field(default_factory=list)  # the cluster's counters beside wattwise's figures
    external_totals: list[ExternalRow] = field(default_factory=list)  # per source, where it has several
    work: list[tuple[str, str]] = field(default_factory=list)  # served work and energy per token and per request

    @property
    def raw_samples(self) -> int:
        return sum(series.raw_points for series in self.power)

    def to_dict(self) -> dict[str, Any]:
        """The page's data as JSON: the record, the display series, the replayed prediction, the equivalents."""
        return {
            "run": self.run.to_dict(),
            "power": [series.to_dict() for series in self.power],
            "raw_samples": self.raw_samples,
            "predictions": [step.to_dict() for step in self.predictions],
            "component_co2e_g": dict(self.component_co2e_g),
            "energy_range_j": None if self.energy_range is None else self.energy_range.to_dict(),
            "equivalents": list(self.equivalents),
            "assumptions": [{"topic": topic, "text": text} for topic, text in self.assumptions],
            "hosts": [host.to_dict() for host in self.hosts],
            "external": [row.to_dict() for row in self.external],
            "external_totals": [row.to_dict() for row in self.external_totals],
        }


def _power_series(run: Run, samples: Iterable[Sample], points: int) -> list[PowerSeries]:
    by_channel: dict[str, tuple[list[float], list[float]]] = {}
    for sample in samples:
        xs, ys = by_channel.setdefault(sample.channel, ([], []))
        xs.append(sample.t_s)
        ys.append(sample.power_w)
    kinds = {c.name: c.component for c in run.components}
    order = [c.name for c in run.components] + sorted(set(by_channel) - set(kinds))
    series = []
    for channel in order:
        if channel not in by_channel:
            continue
        xs, ys = by_channel[channel]
        shown_x, shown_y = downsample(xs, ys, max(1, points // 4))
        series.append(PowerSeries(channel, kinds.get(channel, channel), shown_x, shown_y, len(xs)))
    return series


def epoch_windows(windows: Sequence[WindowRecord]) -> list[WindowRecord]:
    """The top-level ``epoch-N`` windows, in epoch order."""
    found = [(int(m.group(1)), w) for w in windows if w.parent is None and (m := _EPOCH.match(w.name))]
    return [w for _, w in sorted(found, key=lambda pair: pair[0])]


def replay_predictions(run: Run, epochs: Sequence[WindowRecord]) -> list[PredictionStep]:
    """The prediction the tracker made (or would have made) after each epoch, from the stored epoch windows.

    The energy seen before the first epoch ended is what the run had used by then, counted from its start: the
    tracker's prediction adds the remaining epochs to the energy so far. Needs the planned epoch count.
    """
    from wattwise.measure.prediction import predict

    planned = run.prediction.epochs_planned if run.prediction is not None else len(epochs)
    if not epochs or planned < 1:
        return []
    steps = []
    energies = [w.energy_j for w in epochs]
    durations = [w.duration_s for w in epochs]
    start = run.started_at
    for k in range(1, len(epochs) + 1):
        last = epochs[k - 1]
        elapsed_s = (last.started_at - start).total_seconds() + last.duration_s
        prediction = predict(
            energies[:k], durations[:k], planned, sum(energies[:k]), elapsed_s, run.pue, run.intensity_g_per_kwh
        )
        if prediction is not None:
            steps.append(PredictionStep(k, prediction.energy_j, prediction.duration_s))
    return steps


def assumptions(run: Run) -> list[tuple[str, str]]:
    """Every assumption behind the figures, as (topic, text): what was measured and what was estimated (with
    ranges), the grid intensity and its source, PUE, water, attribution and the run's notes."""
    rows: list[tuple[str, str]] = []
    for c in run.components:
        what = f"{c.source} by {c.method}"
        if c.source == "estimated" and c.low_j is not None and c.high_j is not None:
            what += f", range {numbers.energy_j(c.low_j)}–{numbers.energy_j(c.high_j)}"
        if not c.in_total:
            what += "; overlaps another channel, not added to the total"
        rows.append((f"{c.name} ({c.component})", f"{what}. {c.detail}".strip()))
    fallback = " (the chosen provider failed; the packaged annual figure was used)" if run.intensity_fallback else ""
    rows.append(
        (
            "grid intensity",
            f"{numbers.intensity(run.intensity_g_per_kwh)} in {run.region}, {run.signal} signal, "
            f"{run.emissions_method}; source: {run.intensity_source}{fallback}",
        )
    )
    rows.append(("PUE", f"{run.pue:g}: facility energy = IT energy × PUE; emissions use facility energy"))
    if run.water_source:
        rows.append(("water", run.water_source))
    share = "the measured process tree's share" if run.attribution == "process" else "the whole machine"
    rows.append(("attribution", f"totals count {share}; machine energy {numbers.energy_j(run.machine_energy_j)}"))
    if run.prediction is not None:
        rows.append(("prediction", f"{run.prediction.method}: see the prediction chart for its stated range"))
    if run.ranks:
        rows.append(("ranks", f"{len(run.ranks)} ranks. {RANK_NOTE}"))
    for figure in run.external:
        rows.append((f"cluster counter: {figure.source} {figure.scope}", f"{figure.detail}; kept beside the total"))
    rows.extend(("note", note) for note in run.notes)
    return rows


def energy_range(run: Run) -> Range | None:
    """The total energy's range: each estimated channel's stated low and high, measured channels as measured;
    None when every channel counted was measured (the total is exact)."""
    counted = [c for c in run.components if c.in_total]
    if not any(c.source == "estimated" and c.low_j is not None for c in counted):
        return None
    low = sum(c.low_j if c.source == "estimated" and c.low_j is not None else c.energy_j for c in counted)
    high = sum(c.high_j if c.source == "estimated" and c.high_j is not None else c.energy_j for c in counted)
    return Range(run.energy_j, low, high)


def build_run_view(run: Run, samples: Iterable[Sample], *, points: int = DISPLAY_POINTS) -> RunView:
    """Everything a run's page shows; ``samples`` is read once (pass the store's iterator)."""
    epochs = epoch_windows(run.windows)
    cluster = external_rows(run)
    counted = sum(c.energy_j for c in run.components if c.in_total)
    co2e = {c.name: (run.co2e_g * c.energy_j / counted if counted > 0 and c.in_total else 0.0) for c in run.components}
    return RunView(
        run=run,
        power=_power_series(run, samples, points),
        predictions=replay_predictions(run, epochs),
        epochs=epochs,
        # the grid supplied the facility's energy (IT energy × PUE): that is what a household or a phone would draw
        equivalents=equivalents(
            run.energy_j * run.pue,
            run.co2e_g,
            run.water_l,
            energy_note=f"facility energy at PUE {run.pue:g}" if run.pue != 1 else "",
        ),
        energy_range=energy_range(run),
        assumptions=assumptions(run),
        component_co2e_g=co2e,
        hosts=hosts(run),
        external=cluster,
        external_totals=external_totals(cluster),
        work=work_rows(run),
    )
