"""The trade-off of a set of variants as a terminal table (the HTML page is drawn by :mod:`wattwise.report.pages`)."""

from __future__ import annotations

from collections.abc import Sequence

from wattwise.reduce.base import VariantResult
from wattwise.report.numbers import column as _num
from wattwise.report.numbers import energy_j


def table_rows(variants: Sequence[VariantResult]) -> list[list[str]]:
    rows = []
    for v in variants:
        size = None if v.size_bytes is None else v.size_bytes / 1e6
        rows.append(
            [
                ("★ " if v.pareto else "  ") + v.name,
                v.recipe if len(v.recipe) <= 32 else v.recipe[:31] + "…",  # in full in the JSON and the page
                _num(size, ",.2f"),
                _num(v.latency_ms, ",.3f"),
                "-" if v.energy_j_per_inference is None else energy_j(v.energy_j_per_inference),
                _num(v.metric, ".4f"),
                v.error or "",
            ]
        )
    return rows


HEADERS = ["variant", "recipe", "size MB", "latency ms", "energy / inference", "metric", "error"]


def print_table(variants: Sequence[VariantResult]) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(box=None, header_style="bold", pad_edge=False)
    for h in HEADERS:
        table.add_column(h, justify="left" if h in ("variant", "recipe", "error") else "right")
    for row in table_rows(variants):
        table.add_row(*row)
    console = Console()
    console.print(table)
    console.print("★ on the Pareto front of energy per inference (lower) and metric (higher)", style="dim")
