"""``wattwise runs list|show|export``: find stored runs again."""

from __future__ import annotations

import argparse
import json
import sys
from contextlib import ExitStack
from pathlib import Path
from typing import Any, TextIO

from wattwise.errors import ConfigError, StoreError


def add_parser(sub: Any) -> None:
    runs = sub.add_parser("runs", help="list, show and export stored runs")
    runs_sub = runs.add_subparsers(dest="runs_command", metavar="SUBCOMMAND", parser_class=type(runs))
    runs.set_defaults(handler=lambda args: _usage(runs))

    lst = runs_sub.add_parser("list", help="the newest runs, one line each")
    lst.add_argument("--limit", type=int, default=20, help="how many runs (default 20)")
    lst.add_argument("--status", choices=["running", "complete", "incomplete", "failed"])
    lst.add_argument("--name", help="only runs of this name")
    lst.add_argument("--json", action="store_true", help="a JSON array of run records")
    lst.add_argument("--db", help="run store URL (default: WATTWISE_DB or the SQLite file under WATTWISE_HOME)")
    lst.set_defaults(handler=handle_list)

    show = runs_sub.add_parser("show", help="one run in full")
    show.add_argument("ref", metavar="ID|latest", help="a run id, a unique prefix of one, or 'latest'")
    show.add_argument("--json", action="store_true", help="the run record as JSON")
    show.add_argument("--samples", action="store_true", help="with --json: include the power time series")
    show.add_argument("--db", help="run store URL")
    show.set_defaults(handler=handle_show)

    exp = runs_sub.add_parser("export", help="export runs (or one run's samples) as CSV or JSON")
    exp.add_argument("--format", required=True, choices=["csv", "json"], dest="fmt")
    exp.add_argument("--output", "-o", type=Path, help="file to write (default: stdout)")
    exp.add_argument("--limit", type=int, default=None, help="only the newest N runs")
    exp.add_argument("--samples", metavar="ID", help="export the samples of this run instead (CSV only)")
    exp.add_argument("--db", help="run store URL")
    exp.set_defaults(handler=handle_export)

    imp = runs_sub.add_parser(
        "import", help="store run records from a JSON file (e.g. one saved when the store failed)"
    )
    imp.add_argument("file", type=Path, help="a JSON run record, or a list of them (as `runs export --format json`)")
    imp.add_argument("--db", help="run store URL")
    imp.set_defaults(handler=handle_import)


def handle_import(args: argparse.Namespace) -> int:
    from wattwise.records import Run

    try:
        data = json.loads(args.file.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(f"cannot read {args.file}: {exc.strerror}") from exc
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ConfigError(f"{args.file} is not a JSON run record: {exc}") from exc
    records = data if isinstance(data, list) else [data]
    try:
        runs = [Run.from_dict(r) for r in records]
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise ConfigError(f"{args.file} is not a wattwise run record (missing or bad field: {exc})") from exc
    with _open(args) as store:
        for run in runs:
            store.save(run)
    print(f"stored {len(runs)} run(s): {', '.join(r.id for r in runs)}", file=sys.stderr)
    return 0


def _usage(parser: argparse.ArgumentParser) -> int:
    parser.print_help(sys.stderr)
    return 2


def _open(args: argparse.Namespace) -> Any:
    from wattwise.cli.common import db_only_settings
    from wattwise.store import open_store

    return open_store(db_only_settings(args).db_url)


def handle_list(args: argparse.Namespace) -> int:
    if args.limit is not None and args.limit < 1:
        raise ConfigError(f"--limit must be a positive number (got {args.limit})")
    with _open(args) as store:
        runs = store.list_runs(limit=args.limit, status=args.status, name=args.name)
    if args.json:
        json.dump([r.to_dict() for r in runs], sys.stdout, indent=2)
        sys.stdout.write("\n")
        return 0
    from rich.console import Console

    from wattwise.report.terminal import runs_table

    console = Console() if sys.stdout.isatty() else Console(width=160)
    if not runs:
        console.print("no runs stored yet: try `wattwise run -- python your_script.py`")
        return 0
    console.print(runs_table(runs))
    return 0


def handle_show(args: argparse.Namespace) -> int:
    with _open(args) as store:
        run = store.get(args.ref)
        samples = list(store.iter_samples(run.id)) if (args.json and args.samples) else None
    if args.json:
        data = run.to_dict()
        if samples is not None:
            data["samples"] = [
                {"t_s": s.t_s, "channel": s.channel, "power_w": s.power_w, "energy_j": s.energy_j} for s in samples
            ]
        json.dump(data, sys.stdout, indent=2)
        sys.stdout.write("\n")
        return 0
    from rich.console import Console

    from wattwise.report.terminal import run_summary

    (Console() if sys.stdout.isatty() else Console(width=160)).print(run_summary(run))
    return 0


def handle_export(args: argparse.Namespace) -> int:
    from wattwise.store.export import export_runs, export_samples

    if args.limit is not None and args.limit < 1:
        raise ConfigError(f"--limit must be a positive number (got {args.limit})")
    if args.samples and args.fmt != "csv":
        raise ConfigError("--samples exports CSV only; use --format csv")
    with _open(args) as store, ExitStack() as stack:
        out: TextIO = sys.stdout
        if args.output is not None:
            try:
                out = stack.enter_context(args.output.open("w", encoding="utf-8", newline=""))
            except OSError as exc:
                raise StoreError(f"cannot write {args.output}: {exc.strerror}") from exc
        if args.samples:
            run = store.get(args.samples)
            count = export_samples(store, run.id, out)
        else:
            count = export_runs(store.list_runs(limit=args.limit), args.fmt, out)
    if args.output is not None:
        print(f"wrote {count} rows to {args.output}", file=sys.stderr)
    return 0
