"""The trade-off of a set of variants as a terminal table and as a self-contained HTML page with an SVG plot."""

from __future__ import annotations

import html
from collections.abc import Sequence

from wattwise.reduce.base import VariantResult


def _num(value: float | None, fmt: str) -> str:
    return "-" if value is None else format(value, fmt)


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
                _num(v.energy_j_per_inference, ".3g"),
                _num(v.metric, ".4f"),
                v.error or "",
            ]
        )
    return rows


HEADERS = ["variant", "recipe", "size MB", "latency ms", "J / inference", "metric", "error"]


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


def html_page(variants: Sequence[VariantResult], title: str = "wattwise optimize") -> str:
    """A page with the table and a scatter plot (energy per inference vs metric), no external assets."""
    pts = [v for v in variants if v.energy_j_per_inference is not None and v.metric is not None]
    width, height, pad = 640, 400, 60
    svg = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" role="img" '
        f'aria-label="energy per inference against metric">'
    ]
    if pts:
        xs = [v.energy_j_per_inference for v in pts if v.energy_j_per_inference is not None]
        ys = [v.metric for v in pts if v.metric is not None]
        x0, x1 = min(xs), max(xs)
        y0, y1 = min(ys), max(ys)
        x1 = x1 if x1 > x0 else x0 * 1.1 + 1e-12
        y1 = y1 if y1 > y0 else y0 + 1e-6

        def sx(x: float) -> float:
            return pad + (x - x0) / (x1 - x0) * (width - 2 * pad)

        def sy(y: float) -> float:
            return height - pad - (y - y0) / (y1 - y0) * (height - 2 * pad)

        svg.append(f'<line x1="{pad}" y1="{height - pad}" x2="{width - pad}" y2="{height - pad}" stroke="#444"/>')
        svg.append(f'<line x1="{pad}" y1="{pad}" x2="{pad}" y2="{height - pad}" stroke="#444"/>')
        svg.append(
            f'<text x="{width / 2}" y="{height - 15}" text-anchor="middle" font-size="12">energy per inference '
            f"(J): {x0:.3g} – {x1:.3g}</text>"
        )
        svg.append(
            f'<text x="15" y="{height / 2}" font-size="12" transform="rotate(-90 15 {height / 2})" '
            f'text-anchor="middle">metric: {y0:.4g} – {y1:.4g}</text>'
        )
        for v in pts:
            assert v.energy_j_per_inference is not None and v.metric is not None
            x, y = sx(v.energy_j_per_inference), sy(v.metric)
            color = "#d62728" if v.pareto else "#1f77b4"
            svg.append(
                f'<circle cx="{x:.1f}" cy="{y:.1f}" r="5" fill="{color}"><title>{html.escape(v.name)}</title></circle>'
            )
            svg.append(f'<text x="{x + 7:.1f}" y="{y - 7:.1f}" font-size="11">{html.escape(v.name)}</text>')
    svg.append("</svg>")
    head = "".join(f"<th>{html.escape(h)}</th>" for h in HEADERS)
    body = "".join(
        "<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in row) + "</tr>" for row in table_rows(variants)
    )
    return (
        f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
        "<style>body{font-family:sans-serif;margin:2em}td,th{padding:.2em .8em;text-align:right}"
        "td:first-child,td:nth-child(2),th:first-child{text-align:left}</style></head><body>"
        f"<h1>{html.escape(title)}</h1>{''.join(svg)}<p>Red: on the Pareto front (lower energy, higher metric)."
        f"</p><table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table></body></html>\n"
    )
