"""The terminal's view of a distributed run's ranks and of a cluster's counters (``wattwise runs show``)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from wattwise.records import Run
from wattwise.report import numbers
from wattwise.report.cluster import EXTERNAL_NOTE, FLAGGED, RANK_NOTE, external_rows, external_totals, hosts
from wattwise.report.safe import plain

if TYPE_CHECKING:
    from rich.console import RenderableType

__all__ = ["MAX_RANK_ROWS", "cluster_parts"]

MAX_RANK_ROWS = 64  # beyond this, the terminal shows one line per host (--json has every rank)


def _ranks(run: Run) -> list[RenderableType]:
    from rich.table import Table

    groups = hosts(run)
    table = Table(box=None, header_style="bold", pad_edge=False, title=None)
    for col, justify in (
        ("rank", "right"),
        ("local", "right"),
        ("host", "left"),
        ("energy", "right"),
        ("node-wide share", "right"),
        ("CPU time", "right"),
        ("status", "left"),
    ):
        table.add_column(col, justify=justify)  # type: ignore[arg-type]
    per_rank = len(run.ranks) <= MAX_RANK_ROWS
    for group in groups:
        if per_rank:
            for k in group.ranks:
                style = "bold red" if k.status in FLAGGED else ""
                figures = (
                    ("–", "–", "–")
                    if k.status == "missing"
                    else (
                        numbers.energy_j(k.energy_j),
                        numbers.energy_j(k.node_share_j),
                        numbers.duration_s(k.cpu_s),
                    )
                )
                table.add_row(
                    str(k.rank),
                    str(k.local_rank),
                    plain(k.host or "–"),
                    *figures,
                    plain(k.status.upper() if k.status in FLAGGED else k.status, style=style),
                )
        flagged = f"{len(group.flagged)} flagged" if group.flagged else ""
        table.add_row(
            "",
            "",
            plain(f"{group.host or 'unknown host'}: {len(group.ranks)} rank(s)", style="bold"),
            plain(numbers.energy_j(group.energy_j), style="bold"),
            numbers.energy_j(group.node_share_j),
            numbers.duration_s(group.cpu_s),
            plain(flagged, style="bold red"),
        )
    parts: list[RenderableType] = [table, plain(RANK_NOTE, style="dim")]
    if not per_rank:
        parts.append(plain(f"{len(run.ranks)} ranks: one line per host here; --json lists every rank", style="dim"))
    for group in groups:
        for k in group.flagged:
            parts.append(
                plain(f"rank {k.rank} on {k.host or 'an unknown host'} is {k.status}: {FLAGGED[k.status]}", style="red")
            )
    return parts


def _external(run: Run) -> list[RenderableType]:
    from rich.table import Table

    rows = external_rows(run)
    table = Table(box=None, header_style="bold", pad_edge=False)
    for col, justify in (
        ("cluster counter", "left"),
        ("energy", "right"),
        ("wattwise figure", "left"),
        ("wattwise", "right"),
        ("difference", "right"),
    ):
        table.add_column(col, justify=justify)  # type: ignore[arg-type]
    for row in [*rows, *external_totals(rows)]:
        diff = "–"
        if row.difference_j is not None:
            diff = ("+" if row.difference_j >= 0 else "−") + numbers.energy_j(abs(row.difference_j))
            if row.difference is not None:
                diff += f" ({numbers.signed_percent(row.difference)})"
        table.add_row(
            plain(f"{row.figure.source} {row.figure.scope}"),
            numbers.energy_j(row.figure.energy_j),
            plain(row.wattwise.label),
            "–" if row.wattwise.energy_j is None else numbers.energy_j(row.wattwise.energy_j),
            diff,
        )
    parts: list[RenderableType] = [table, plain(EXTERNAL_NOTE, style="dim")]
    for row in rows:
        parts.append(
            plain(f"  {row.figure.source} {row.figure.scope} ({row.window}): {row.figure.detail}", style="dim")
        )
    return parts


def cluster_parts(run: Run, *, details: bool = True) -> list[RenderableType]:
    """The ranks table with per-host subtotals and the cluster counters beside wattwise's figures; nothing for a
    single-process run with no counters attached. ``details``: with each counter's source line."""
    parts: list[RenderableType] = []
    if run.ranks:
        parts.extend(_ranks(run))
    if run.external:
        found = _external(run)
        parts.extend(found if details else found[:1])
    return parts
