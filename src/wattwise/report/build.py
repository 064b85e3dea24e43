"""Whole pages from stored records: what ``wattwise report`` writes and the dashboard serves."""

from __future__ import annotations

from collections.abc import Iterable

from wattwise.records import Run, Sample
from wattwise.report.charts import run_charts
from wattwise.report.cluster import EXTERNAL_NOTE, FLAGGED, RANK_NOTE
from wattwise.report.compare import Comparison, comparison_charts
from wattwise.report.html import Pages
from wattwise.report.run_view import DISPLAY_POINTS, RunView, build_run_view

__all__ = ["RANK_ROWS", "compare_page", "run_page"]

RANK_ROWS = 512  # rank rows per host in a page's table; the record holds them all


def run_page(
    view: RunView | None = None,
    *,
    run: Run | None = None,
    samples: Iterable[Sample] = (),
    pages: Pages | None = None,
    standalone: bool = True,
    **context: object,
) -> str:
    """A run's page: its plots, tables, assumptions and equivalents (a standalone file unless ``standalone`` is
    false, for the dashboard)."""
    if view is None:
        if run is None:
            raise ValueError("give a RunView or a run")
        view = build_run_view(run, samples)
    return (pages or Pages()).render(
        "run.html",
        standalone=standalone,
        title=f"{view.run.name} · wattwise run {view.run.id}",
        view=view,
        charts=run_charts(view),
        display_points=DISPLAY_POINTS,
        rank_note=RANK_NOTE,
        rank_flags=FLAGGED,
        rank_rows=RANK_ROWS,
        external_note=EXTERNAL_NOTE,
        **context,
    )


def compare_page(
    cmp: Comparison, *, pages: Pages | None = None, standalone: bool = True, run_links: bool = False, **context: object
) -> str:
    """Runs side by side, with their differences called out."""
    return (pages or Pages()).render(
        "compare.html",
        standalone=standalone,
        title=f"wattwise: comparing {len(cmp.runs)} runs",
        cmp=cmp,
        charts=comparison_charts(cmp),
        run_links=run_links,
        **context,
    )
