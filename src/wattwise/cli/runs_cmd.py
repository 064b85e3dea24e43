"""``wattwise runs list|show|export|import|sync|attach``: find stored runs again (attach: :mod:`.attach_cmd`)."""

from __future__ import annotations

import argparse
import json
import sys
from contextlib import ExitStack
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

from wattwise.errors import ConfigError, StoreError

if TYPE_CHECKING:
    from wattwise.records import Run


def add_parser(sub: Any) -> None:
    runs = sub.add_parser("runs", help="list, show, export stored runs and attach a cluster's counters to them")
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
        "import",
        help="store run records from a JSON file (e.g. one saved when the store failed)",
        description="Store run records from FILE: one record, or a list of them as `runs export --format json` "
        "writes. Every record is checked as the store checks what it measures, and nothing is stored unless "
        "all of them pass; a run whose id is already stored is refused unless --replace is given.",
    )
    imp.add_argument("file", type=Path, help="a JSON run record, or a list of them (as `runs export --format json`)")
    imp.add_argument("--replace", action="store_true", help="overwrite runs whose id is already stored")
    imp.add_argument("--db", help="run store URL")
    imp.set_defaults(handler=handle_import)

    syn = runs_sub.add_parser(
        "sync",
        help="send runs kept locally (a shared store was unreachable, or refused a final save) to the store",
        description="Send every finished run of the local spool (<home>/spool.db, where runs go while a shared "
        "store cannot be reached) and every record under <home>/unsaved/ to the store --db (or WATTWISE_DB) names. "
        "Each is sent exactly once: a run already stored there as it is here is not sent again, and what was sent "
        "is removed locally. Runs still being measured stay until they end.",
    )
    syn.add_argument("--db", help="run store URL to send them to (default: WATTWISE_DB)")
    syn.set_defaults(handler=handle_sync)

    from wattwise.cli import attach_cmd

    attach_cmd.add_parser(runs_sub)


MAX_IMPORT_BYTES = 64 * 1024 * 1024  # thousands of records; a larger file is not a wattwise export


def handle_import(args: argparse.Namespace) -> int:
    from wattwise.errors import RunExistsError
    from wattwise.record_schema import check_run, run_from_dict
    from wattwise.records import Sample
    from wattwise.report.safe import printable

    path: Path = args.file
    try:
        if path.is_dir():
            raise ConfigError(f"{printable(path)} is a directory; give a JSON file written by `wattwise runs export`")
        if path.stat().st_size > MAX_IMPORT_BYTES:
            raise ConfigError(f"{printable(path)} is larger than {MAX_IMPORT_BYTES >> 20} MiB; not a run record file")
        data = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(f"cannot read {printable(path)}: {exc.strerror or exc}") from exc
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise ConfigError(f"{printable(path)} is not a JSON run record: {printable(exc)}") from None
    records = data if isinstance(data, list) else [data]
    if not records:
        raise ConfigError(f"{printable(path)} holds an empty list: no run records to import")
    where = printable(path.name)
    parsed: list[tuple[Run, list[Sample]]] = []
    seen: set[str] = set()
    for i, record in enumerate(records):
        label = f"{where}[{i}]" if isinstance(data, list) else where
        run = run_from_dict(record, label)
        check_run(run, label)
        if run.id in seen:
            raise ConfigError(f"{label}: run id {run.id} appears twice in the file; nothing was imported")
        seen.add(run.id)
        parsed.append((run, _samples(record, label)))
    with _open(args, write=True) as store:
        if not store.persistent:
            raise ConfigError("the store is in memory: nothing imported there would be kept; give a file with --db")
        try:
            store.add(parsed, replace=args.replace)  # one transaction: every record, or none
        except RunExistsError as exc:
            raise ConfigError(str(exc)) from None
    print(f"stored {len(parsed)} run(s): {', '.join(run.id for run, _ in parsed)}", file=sys.stderr)
    return 0


def handle_sync(args: argparse.Namespace) -> int:
    from wattwise.cli.common import db_only_settings
    from wattwise.store.sync import sync

    settings = db_only_settings(args)
    with _open(args, write=True) as target:
        report = sync(target, settings.home, parse_file=_parse_records)
    print(report.summary(), file=sys.stderr)
    return 1 if report.refused else 0


def _parse_records(path: Path) -> list[tuple[Run, list[Any]]]:
    """The records of a file under unsaved/, checked as `runs import` checks them."""
    from wattwise.record_schema import check_run, run_from_dict

    data = json.loads(path.read_text(encoding="utf-8"))
    records = data if isinstance(data, list) else [data]
    parsed = []
    for i, record in enumerate(records):
        label = f"{path.name}[{i}]" if isinstance(data, list) else path.name
        run = run_from_dict(record, label)
        check_run(run, label)
        parsed.append((run, _samples(record, label)))
    return parsed


def _samples(record: object, where: str) -> list[Any]:
    """The ``samples`` a record file may carry (records saved under unsaved/ do), checked like the store's."""
    from wattwise import validate
    from wattwise.records import Sample

    raw = record.get("samples") if isinstance(record, dict) else None
    if raw is None:
        return []
    if not isinstance(raw, list):
        raise ConfigError(f"{where}: samples must be a list")
    out = []
    for i, item in enumerate(raw):
        ok = isinstance(item, dict) and isinstance(item.get("channel"), str) and 0 < len(item["channel"]) <= 200
        values = [item.get(k) for k in ("t_s", "power_w", "energy_j")] if ok else []
        if not ok or not all(validate.is_number(v) for v in values):
            raise ConfigError(
                f"{where}: samples[{i}] must have a channel (1-200 characters) and numbers t_s, power_w and energy_j"
            )
        t_s, power_w, energy_j = (float(v) for v in values)
        if not (validate.DURATION_S.contains(t_s) and validate.SAMPLE_POWER_W.contains(power_w)):
            raise ConfigError(f"{where}: samples[{i}] has t_s or power_w out of range")
        if not validate.ENERGY_J.contains(abs(energy_j)):
            raise ConfigError(f"{where}: samples[{i}] has energy_j out of range")
        out.append(Sample(t_s=t_s, channel=item["channel"], power_w=power_w, energy_j=energy_j))
    return out


def _usage(parser: argparse.ArgumentParser) -> int:
    parser.print_help(sys.stderr)
    return 2


def _open(args: argparse.Namespace, *, write: bool = False) -> Any:
    from wattwise.cli.common import open_store_from_args

    return open_store_from_args(args, write=write)


def handle_list(args: argparse.Namespace) -> int:
    if args.limit is not None and args.limit < 1:
        raise ConfigError(f"--limit must be a positive number (got {args.limit})")
    with _open(args) as store:
        runs = store.list_runs(limit=args.limit, status=args.status, name=args.name)
        total = store.count() if not runs else 0
    if args.json:
        json.dump([r.to_dict() for r in runs], sys.stdout, indent=2)
        sys.stdout.write("\n")
        return 0
    from rich.console import Console

    from wattwise.report.terminal import runs_table

    console = Console() if sys.stdout.isatty() else Console(width=160)
    if not runs:
        if total == 0:
            console.print("no runs stored yet: try `wattwise run -- python your_script.py`", highlight=False)
            return 0
        from wattwise.report.safe import printable

        filters = [
            f"--{key} {printable(value)!r}" for key, value in (("status", args.status), ("name", args.name)) if value
        ]
        console.print(
            f"no runs match {' and '.join(filters)}; the store holds {total} run(s): "
            "`wattwise runs list` shows the newest",
            highlight=False,
            markup=False,
        )
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
