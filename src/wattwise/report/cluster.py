"""What a page shows of a distributed run's ranks and of a cluster's own counters, computed once from the record.

:func:`hosts` groups ``Run.ranks`` by host with a subtotal each (node-wide energy is read once per node and split
among that node's ranks by CPU time, so the subtotals add up to the run); ranks ``lost`` or ``missing`` are flagged.
:func:`external_rows` sets each of ``Run.external`` beside wattwise's own figure for the same thing, where one
compares (:func:`wattwise.importers.counterpart`), with the difference; :func:`external_totals` adds each source's
figures up where they cannot overlap (different GPUs, different pods by one metric; never Slurm's jobs). The HTML
report, ``wattwise runs show`` and the dashboard's JSON all read these.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from wattwise.importers.compare import Counterpart, counterpart
from wattwise.importers.dcgm import gpu_uuid
from wattwise.records import ExternalFigure, RankFigure, Run
from wattwise.report import numbers

__all__ = [
    "EXTERNAL_NOTE",
    "FLAGGED",
    "RANK_NOTE",
    "ExternalRow",
    "HostRanks",
    "external_rows",
    "external_totals",
    "hosts",
    "window_text",
]

RANK_NOTE = (
    "Each rank's energy is its own devices (its GPU) plus its share of its node's node-wide energy (CPU, DRAM, "
    "memory, network): that is read once per node and split among the node's ranks by their CPU time, so nothing "
    "is counted twice and the ranks add up to the run."
)
EXTERNAL_NOTE = (
    "What the cluster's own counters recorded, kept beside wattwise's figures and never added to them. Each is "
    "compared with the wattwise figure that covers the same thing, where one does; the counters' windows (their "
    "own readings) may differ from the run's."
)
FLAGGED = {
    "lost": "its last report came before its end (the process died): its figures run to that report",
    "missing": "it never reported: it has no figures",
}


@dataclass(frozen=True, slots=True)
class HostRanks:
    """One host's ranks (by rank) and their subtotals."""

    host: str
    ranks: tuple[RankFigure, ...]
    energy_j: float
    node_share_j: float
    cpu_s: float

    @property
    def flagged(self) -> tuple[RankFigure, ...]:
        return tuple(r for r in self.ranks if r.status in FLAGGED)

    def to_dict(self) -> dict[str, Any]:
        return {
            "host": self.host,
            "ranks": [r.rank for r in self.ranks],
            "energy_j": self.energy_j,
            "node_share_j": self.node_share_j,
            "cpu_s": self.cpu_s,
            "flagged": [{"rank": r.rank, "status": r.status} for r in self.flagged],
        }


def hosts(run: Run) -> list[HostRanks]:
    """The run's ranks grouped by host, hosts in the order of their lowest rank."""
    by_host: dict[str, list[RankFigure]] = {}
    for rank in sorted(run.ranks, key=lambda r: r.rank):
        by_host.setdefault(rank.host, []).append(rank)
    return [
        HostRanks(
            host,
            tuple(ranks),
            sum(r.energy_j for r in ranks),
            sum(r.node_share_j for r in ranks),
            sum(r.cpu_s for r in ranks),
        )
        for host, ranks in by_host.items()
    ]


@dataclass(frozen=True, slots=True)
class ExternalRow:
    """One cluster figure beside wattwise's (``difference_j``: cluster minus wattwise; None when none compares)."""

    figure: ExternalFigure
    wattwise: Counterpart
    difference_j: float | None
    difference: float | None  # as a fraction of wattwise's figure

    @property
    def window(self) -> str:
        return window_text(self.figure)

    def to_dict(self) -> dict[str, Any]:
        return {
            "source": self.figure.source,
            "scope": self.figure.scope,
            "energy_j": self.figure.energy_j,
            "window": self.window,
            "wattwise": {"label": self.wattwise.label, "energy_j": self.wattwise.energy_j, "note": self.wattwise.note},
            "difference_j": self.difference_j,
            "difference": self.difference,
        }


def _row(figure: ExternalFigure, side: Counterpart) -> ExternalRow:
    if side.energy_j is None:
        return ExternalRow(figure, side, None, None)
    diff = figure.energy_j - side.energy_j
    return ExternalRow(figure, side, diff, diff / side.energy_j if side.energy_j > 0 else None)


def external_rows(run: Run) -> list[ExternalRow]:
    """Each of ``run.external`` beside wattwise's own figure, in the record's order."""
    return [_row(figure, counterpart(run, figure)) for figure in run.external]


def _why_not_added(source: str, figures: list[ExternalFigure]) -> str | None:
    """Why one source's figures cannot be added up (they may count the same energy twice), or None when they are
    known not to overlap: DCGM's of different GPUs, Kepler's of different pods by one metric. Slurm's jobs may share
    nodes and hours (or be one job under two node lists), and an unknown source's figures may overlap: never added."""
    if source == "dcgm":
        gpus = [gpu_uuid(f.scope) or f.scope for f in figures]
        return None if len(set(gpus)) == len(gpus) else "two figures of one GPU"
    if source == "kepler":
        pods = [f.scope.split(" (", 1)[0] for f in figures]
        covers = {f.scope[len(pod) :] for f, pod in zip(figures, pods, strict=True)}
        if len(covers) > 1:
            return "figures of different Kepler metrics (a pod's whole energy holds its CPU part)"
        return None if len(set(pods)) == len(pods) else "two figures of one pod"
    return f"{source}'s figures may overlap"


def external_totals(rows: list[ExternalRow]) -> list[ExternalRow]:
    """Per source with more than one figure, all of them added up where they are known not to overlap (see
    :func:`_why_not_added`), beside the sum of their wattwise counterparts when each has one and no two of them
    share a channel (the run's total is never added to a channel inside it)."""
    totals = []
    for source in dict.fromkeys(r.figure.source for r in rows):
        mine = [r for r in rows if r.figure.source == source]
        if len(mine) < 2 or _why_not_added(source, [r.figure for r in mine]) is not None:
            continue
        energy = sum(r.figure.energy_j for r in mine)
        figure = ExternalFigure(source, f"all {len(mine)} figures", energy, detail="the figures above, added up")
        values = [r.wattwise.energy_j for r in mine]
        channels = [c for r in mine for c in r.wattwise.channels]
        if any(v is None for v in values):
            side = Counterpart("–", None, "not every figure has its own wattwise counterpart")
        elif not channels or len(set(channels)) < len(channels):
            side = Counterpart("–", None, "wattwise's counterparts overlap (they share channels): no sum of them")
        else:
            labels = ", ".join(r.wattwise.label for r in mine)
            side = Counterpart(
                labels, sum(v for v in values if v is not None), "the counterparts added up", tuple(channels)
            )
        totals.append(_row(figure, side))
    return totals


def window_text(figure: ExternalFigure) -> str:
    """When a cluster figure's counter was read: ``12:00:05–13:00:10 UTC``, with the date when it is not the same."""
    if figure.started_at is None or figure.ended_at is None:
        return "–"
    start, end = numbers.moment(figure.started_at), numbers.moment(figure.ended_at)
    if start[:10] == end[:10]:
        return f"{start} – {end[11:]}"
    return f"{start} – {end}"
