"""``wattwise report``: a run's (or several runs') report as a self-contained HTML file, Markdown or LaTeX."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from wattwise.errors import ConfigError


def add_parser(sub: Any) -> None:
    p = sub.add_parser(
        "report",
        help="a run's report: an HTML file with plots (opens offline), or a Markdown/LaTeX footprint statement",
        description="Write the report of a stored run: power over time per component, energy and emissions by "
        "component and by epoch, the grid intensity used, the early prediction against what happened, every "
        "assumption, and equivalents with their sources. With --compare, several runs side by side.",
    )
    p.add_argument("ref", nargs="?", metavar="ID|latest", help="a run id, a unique prefix of one, or 'latest'")
    p.add_argument("--compare", nargs="+", metavar="ID", help="compare runs side by side (the first is the baseline)")
    p.add_argument(
        "--html", type=Path, metavar="FILE", help="the HTML file to write (default: wattwise-report-<id>.html here)"
    )
    p.add_argument(
        "--format",
        dest="fmt",
        choices=["html", "markdown", "latex"],
        default="html",
        help="html (a file), or a footprint statement for a paper or model card, printed (default: html)",
    )
    p.add_argument("--output", "-o", type=Path, metavar="FILE", help="with markdown/latex: write here, not stdout")
    p.add_argument("--db", help="run store URL (default: WATTWISE_DB or the SQLite file under WATTWISE_HOME)")
    p.set_defaults(handler=handle)


def handle(args: argparse.Namespace) -> int:
    from wattwise.cli.common import open_store_from_args, write_output
    from wattwise.report.safe import printable

    refs = ([args.ref] if args.ref else []) + list(args.compare or [])
    if not refs:
        raise ConfigError("give a run id (or 'latest'), or --compare ID ID ...; `wattwise runs list` shows ids")
    if args.compare is None and len(refs) > 1:
        raise ConfigError("one run per report; use --compare to set runs side by side")
    if args.html is not None and args.fmt != "html":
        raise ConfigError("--html writes the HTML report; for markdown or latex use --output")
    if args.output is not None and args.fmt == "html":
        raise ConfigError("--output is for markdown or latex; the HTML report is written with --html FILE")
    compare = args.compare is not None
    if compare and len(refs) < 2:
        raise ConfigError("--compare needs at least two runs")
    with open_store_from_args(args) as store:
        runs = [store.get(ref) for ref in refs]
        if compare:
            text, default_name = _comparison(runs, args.fmt)
        else:
            text, default_name = _single(store, runs[0], args.fmt)
    if args.fmt == "html":
        path = args.html if args.html is not None else Path(default_name)
        size = write_output(path, text)
        print(f"report written to {printable(path)} ({size / 1024:,.0f} KiB; opens offline in any browser)")
        return 0
    if args.output is not None:
        write_output(args.output, text)
        print(f"{args.fmt} statement written to {printable(args.output)}")
        return 0
    sys.stdout.write(text)
    return 0


def _single(store: Any, run: Any, fmt: str) -> tuple[str, str]:
    from wattwise.report.run_view import build_run_view

    if fmt == "html":
        from wattwise.report.build import run_page
        from wattwise.report.html import Pages

        pages = Pages()  # before reading samples: a missing extra fails fast
        view = build_run_view(run, store.iter_samples(run.id))
        return run_page(view, pages=pages), f"wattwise-report-{run.id}.html"
    view = build_run_view(run, ())
    from wattwise.report import statement

    return (statement.markdown(view) if fmt == "markdown" else statement.latex(view)), ""


def _comparison(runs: list[Any], fmt: str) -> tuple[str, str]:
    from wattwise.report.compare import compare

    cmp = compare(runs)
    if fmt == "html":
        from wattwise.report.build import compare_page

        return compare_page(cmp), f"wattwise-compare-{runs[0].id}.html"
    from wattwise.report.statement import comparison_table

    return comparison_table(cmp, latex=fmt == "latex"), ""
