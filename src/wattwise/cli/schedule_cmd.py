"""``wattwise schedule plan|evaluate|batch``: when (and where) a flexible job should run."""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import asdict
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from wattwise.carbon import registry
from wattwise.cli.common import save_artifact, save_flags
from wattwise.errors import ConfigError

_SEMANTICS_HELP = "start: may start up to WINDOW after submission; deadline: must finish within WINDOW"


def add_parser(sub: Any) -> None:
    p = sub.add_parser("schedule", help="plan flexible jobs for the hours (and regions) with the cleanest grid")
    verbs = p.add_subparsers(dest="schedule_command", metavar="SUBCOMMAND", parser_class=type(p))
    p.set_defaults(handler=lambda args: _usage(p))

    plan = verbs.add_parser("plan", help="the best start for one job, and what it saves against starting now")
    plan.add_argument("--region", help="the job's region (country, grid zone or cloud region)")
    plan.add_argument("--regions", help="comma-separated regions the job may run in; the best region and time win")
    plan.add_argument("--provider", choices=registry.NAMES, help="where the intensity comes from")
    plan.add_argument("--trace", help="a CSV intensity trace (implies --provider csv)")
    _job_flags(plan)
    plan.add_argument("--interruptible", action="store_true", help="the job may pause: run in the cheapest hours")
    plan.add_argument("--at", help="submission time, ISO 8601 (default now; with --trace, a time inside it)")
    plan.add_argument("--forecaster", default="auto", help="forecaster when the provider gives none (auto)")
    plan.add_argument("--energy-kwh", type=float, help="the job's energy, to give emissions in grams")
    plan.add_argument("--offline", action="store_true", default=None, help="cached or packaged data only")
    plan.add_argument("--json", action="store_true", help="machine-readable output")
    plan.add_argument("--name", default="", help="a name for the plan, with --save")
    save_flags(plan)
    plan.add_argument(
        "--html",
        type=Path,
        metavar="FILE",
        help="also write a page with the outlook, the chosen hours and the alternatives (needs the dashboard extra)",
    )
    plan.set_defaults(handler=handle_plan)

    batch = verbs.add_parser("batch", help="plan many jobs together under a capacity limit (MILP, greedy)")
    batch.add_argument("jobs_file", metavar="JOBS", help="a YAML or JSON jobs file (see the README)")
    batch.add_argument("--capacity", type=int, help="jobs (or GPUs) that may run at once; overrides the file")
    batch.add_argument(
        "--method",
        choices=["auto", "milp", "greedy"],
        default="auto",
        help="auto: the exact MILP up to 1,000 jobs, the greedy beyond",
    )
    batch.add_argument("--region", help="the region (overrides the file)")
    batch.add_argument("--provider", choices=registry.NAMES, help="where the intensity comes from")
    batch.add_argument("--trace", help="a CSV intensity trace (implies --provider csv)")
    batch.add_argument("--at", help="the batch's start, ISO 8601 (default now; with --trace, a time inside it)")
    batch.add_argument("--forecaster", help="forecaster when the provider gives none (auto)")
    batch.add_argument("--offline", action="store_true", default=None, help="cached or packaged data only")
    batch.add_argument("--json", action="store_true", help="machine-readable output")
    batch.set_defaults(handler=handle_batch)

    sub_p = verbs.add_parser("submit", help="plan a job and hand it to Slurm or Ray to start at the planned time")
    sub_p.add_argument("--executor", choices=["slurm", "ray"], required=True, help="the cluster engine")
    sub_p.add_argument("--deadline", required=True, help="the job must finish within this span (12h)")
    sub_p.add_argument("--duration", required=True, help="how long the job runs (3h)")
    sub_p.add_argument("--name", help="the run's name (default: the command's name)")
    sub_p.add_argument(
        "--interruptible", action="store_true", help="the job pauses between the plan's slices (SIGSTOP/SIGCONT)"
    )
    sub_p.add_argument("--region", help="the job's region")
    sub_p.add_argument("--provider", choices=registry.NAMES, help="where the intensity comes from")
    sub_p.add_argument("--trace", help="a CSV intensity trace (implies --provider csv)")
    sub_p.add_argument("--forecaster", default="auto", help="forecaster when the provider gives none (auto)")
    sub_p.add_argument("--sbatch-arg", action="append", default=[], help="an extra sbatch argument (repeatable)")
    sub_p.add_argument("--ray-address", default="auto", help="the Ray cluster to use (auto)")
    sub_p.add_argument("--json", action="store_true", help="machine-readable output")
    sub_p.add_argument("cmd", nargs=argparse.REMAINDER, metavar="-- COMMAND [ARGS...]", help="the job's command")
    sub_p.set_defaults(handler=handle_submit)

    ev = verbs.add_parser("evaluate", help="replay a year of hourly submissions on a trace: oracle, forecast, m7")
    add_replay_flags(ev, "--forecaster", required_job=True)
    ev.set_defaults(handler=handle_evaluate)


FORECASTER_HELP = "p24, m7, anomaly, linear, blend, gbm, lstm or auto (default)"


def add_replay_flags(p: argparse.ArgumentParser, model_flag: str, *, required_job: bool) -> None:
    """The flags of a year's replay on a trace (``schedule evaluate``, ``intensity backtest``)."""
    p.add_argument("--trace", required=True, help="a CSV intensity trace with at least a year of hours")
    if required_job:
        _job_flags(p)
    else:
        p.add_argument("--duration", default="4h", help="the job scheduled on the forecast (4h)")
        p.add_argument("--window", default="24h", help="how far it may move (24h)")
        p.add_argument("--semantics", choices=["start", "deadline"], default="start", help=_SEMANTICS_HELP)
    p.add_argument(model_flag, dest="forecaster", default="auto", help=FORECASTER_HELP)
    p.add_argument("--year", type=int, help="the UTC year of submissions (default: the one the trace covers most)")
    p.add_argument(
        "--emission-factor",
        choices=["lifecycle", "direct"],
        default="lifecycle",
        help="which column of a two-signal trace (Electricity Maps) to use (default lifecycle)",
    )
    p.add_argument("--json", action="store_true", help="machine-readable output")


def _job_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("--duration", required=True, help="how long the job runs: 4h, 90m, 2d")
    p.add_argument("--window", required=True, help="how far the job may move: 24h")
    p.add_argument("--semantics", choices=["start", "deadline"], default="start", help=_SEMANTICS_HELP)


def _usage(parser: argparse.ArgumentParser) -> int:
    parser.print_help(sys.stderr)
    return 2


def when(text: str | None, flag: str) -> datetime | None:
    if text is None:
        return None
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise ConfigError(f"{flag} {text!r} is not an ISO 8601 time (e.g. 2024-05-01T12:00Z)") from None
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def job_from_args(args: argparse.Namespace) -> Any:
    from wattwise.schedule.planner import Job
    from wattwise.validate import JOB_HOURS, WINDOW_HOURS, hours

    duration = hours(args.duration, JOB_HOURS, "--duration")
    window = hours(args.window, WINDOW_HOURS, "--window")
    return Job(duration, window, args.semantics, bool(getattr(args, "interruptible", False)))


def handle_plan(args: argparse.Namespace) -> int:
    from wattwise.schedule.plans import plan_regions

    job = job_from_args(args)
    _check_forecaster(args.forecaster)
    regions: list[str | None] = [args.region]
    if args.regions is not None:
        regions = [r.strip() for r in args.regions.split(",") if r.strip()]
        if not regions:
            raise ConfigError("--regions names no region: give a comma-separated list, e.g. --regions FR,DE,PL")
    if args.regions and args.trace:
        raise ConfigError("--regions compares live regions; a --trace holds one region's values: drop one of them")
    if args.energy_kwh is not None:
        from wattwise.validate import ENERGY_KWH

        ENERGY_KWH.check(args.energy_kwh, "--energy-kwh")
    overrides = {"provider": args.provider, "trace": args.trace, "offline": args.offline}
    result = plan_regions(job, regions, overrides, at=when(args.at, "--at"), forecaster=args.forecaster)
    data = result.as_json(args.energy_kwh)
    page = None
    if args.html is not None:
        from wattwise.report.pages import plan_page

        page = plan_page(data)
    if args.json:
        json.dump(data, sys.stdout, indent=2)
        sys.stdout.write("\n")
    else:
        _print_plan(data)
    if page is not None:
        from wattwise.cli.common import write_output
        from wattwise.report.safe import printable

        write_output(args.html, page)
        print(f"plan page written to {printable(args.html)}", file=sys.stderr if args.json else sys.stdout)
    if args.save:
        save_artifact(args, "plan", args.name, data)
    return 0


def _fmt_time(iso: str) -> str:
    return datetime.fromisoformat(iso).strftime("%Y-%m-%d %H:%M UTC")


def _print_plan(data: dict[str, Any]) -> None:
    from rich.console import Console
    from rich.markup import escape

    console = Console(highlight=False, soft_wrap=True)
    best = data["best"]
    kind = "interruptible " if data["interruptible"] else ""
    console.print(
        f"[bold]Plan[/bold] for a {data['duration_h']:g} h {kind}job, window {data['window_h']:g} h "
        f"({_SEMANTICS_HELP.split('; ')[0 if data['semantics'] == 'start' else 1]}), "
        f"submitted {_fmt_time(data['submitted_at'])}"
    )
    for r in data["regions"]:
        mark = "→" if r["region"] == best["region"] else " "
        slices = ", ".join(f"{_fmt_time(s['start_at'])} for {s['hours']:g} h" for s in r["slices"])
        console.print(
            f" {mark} {escape(r['region'])}: run {slices}: {r['expected_g_per_kwh']:,.1f} g/kWh expected, "
            f"{r['now_g_per_kwh']:,.1f} if started now"
        )
        f = r["forecast"]
        console.print(
            f"     outlook: {escape(f['method'])}; {escape(f['source'])}; issued {_fmt_time(f['issued_at'])}, "
            f"{f['horizon_h']} h",
            style="dim",
        )
        if f["warning"]:
            console.print(f"     [yellow]warning: {escape(f['warning'])}[/yellow]")
        if r.get("actual_savings_pct") is not None:
            console.print(
                f"     in hindsight (the trace holds these hours): {r['actual_g_per_kwh']:,.1f} g/kWh as planned "
                f"vs {r['actual_now_g_per_kwh']:,.1f} at once: {r['actual_savings_pct']:.1f} % saved"
            )
    line = f"expected savings against starting now in {escape(data['home_region'])}: {best['savings_pct']:.1f} %"
    if best.get("co2e_g") is not None:
        line += f" ({best['co2e_g']:,.0f} g CO2e instead of {best['now_co2e_g']:,.0f} g)"
    console.print(f"[bold]{line}[/bold]")


def handle_evaluate(args: argparse.Namespace) -> int:
    from wattwise.carbon.csvtrace import CsvTraceProvider
    from wattwise.schedule.evaluate import evaluate
    from wattwise.schedule.hourly import to_hourly

    job = job_from_args(args)
    _check_forecaster(args.forecaster)
    trace = CsvTraceProvider(args.trace, emission_factor=args.emission_factor)
    if args.emission_factor == "direct" and trace.layout != "electricitymaps":
        raise ConfigError(
            f"{args.trace} has one intensity column ({trace.column}): --emission-factor chooses between the two of "
            "an Electricity Maps export; drop it"
        )
    result = evaluate(
        to_hourly(trace.series), job.duration_h, job.window_h, job.semantics, args.forecaster, year=args.year
    )
    data: dict[str, Any] = {
        "trace": str(args.trace),
        "column": trace.column,
        "source": trace.source,
        **asdict(result),
        "share_of_oracle_pct": result.share_of_oracle_pct,
        "policy": "re-plan at every hour while waiting (plan_once_savings_pct: planned at submission only)",
        "baseline": "m7 (mean of the same hour over the last 7 days), planned at submission",
    }
    if args.json:
        json.dump(data, sys.stdout, indent=2)
        sys.stdout.write("\n")
        return 0
    print(
        f"{args.trace} ({trace.column}), {result.year}: {result.submissions:,} hourly submissions"
        + (f", {result.skipped:,} skipped (their window touches a gap or the trace's end)" if result.skipped else "")
    )
    print(f"job {result.duration_h:g} h, window {result.window_h:g} h, {result.semantics} semantics")
    print(f"  oracle (hindsight)          {result.oracle_savings_pct:6.1f} %")
    print(
        f"  forecaster {result.forecaster:<16} {result.savings_pct:6.1f} %   "
        f"({result.share_of_oracle_pct:.0f} % of the oracle; planned once: {result.plan_once_savings_pct:.1f} %)"
    )
    print(f"  baseline m7, planned once   {result.baseline_savings_pct:6.1f} %")
    print(f"  MAPE (next 24 h)            {result.mape_pct:6.1f} %   (m7: {result.baseline_mape_pct:.1f} %)")
    if result.chosen:
        print("  auto used: " + ", ".join(f"{k} {v} weeks" for k, v in sorted(result.chosen.items())))
    print(f"  plans took {result.plan_seconds:.2f} s, forecasts {result.forecast_seconds:.2f} s")
    return 0


def handle_batch(args: argparse.Namespace) -> int:
    from wattwise.carbon.service import IntensityService
    from wattwise.config import Settings
    from wattwise.schedule.batch import check_batch, plan_batch
    from wattwise.schedule.jobsfile import load
    from wattwise.schedule.outlook import outlook
    from wattwise.schedule.planner import Job
    from wattwise.validate import CAPACITY

    spec = load(args.jobs_file)
    capacity = CAPACITY.check_int(args.capacity, "--capacity") if args.capacity is not None else spec.capacity
    given = spec.settings
    overrides = {
        "region": args.region or given.get("region"),
        "provider": args.provider or given.get("provider"),
        "trace": args.trace or given.get("trace"),
        "offline": args.offline,
    }
    at = when(args.at or given.get("at"), "--at")
    need = max((job.starts()[-1] + job.span if job.starts() else 1) for job in spec.jobs)
    check_batch(spec.jobs, capacity, max(need, 1))  # an impossible job is named before any outlook is fetched
    _check_forecaster(args.forecaster or given.get("forecaster", "auto"))
    service = IntensityService(Settings.load(overrides))
    try:
        view = outlook(
            service,
            Job(1, max(need - 1, 0), "start"),
            at=at,
            forecaster=args.forecaster or given.get("forecaster", "auto"),
        )
    finally:
        service.close()
    result = plan_batch(spec.jobs, view.values, capacity, method=args.method)
    rows: list[dict[str, Any]] = []
    for job in spec.jobs:
        start = result.starts[job.name]
        rows.append(
            {
                "name": job.name,
                "start_at": (view.start + timedelta(hours=start)).isoformat(),
                "start_offset_h": start,
                "duration_h": job.duration_h,
                "deadline_h": job.deadline_h,
                "power_kw": job.power_kw,
                "units": job.units,
            }
        )
    data = {
        "method": result.method,
        "capacity": capacity,
        "jobs": rows,
        "emissions_g": result.emissions_g,
        "queue_emissions_g": result.queue_emissions_g,
        "savings_pct": result.savings_pct,
        "gap_to_optimum_pct": result.gap_to_optimum_pct,
        "seconds": result.seconds,
        "notes": result.notes,
        "start": view.start.isoformat(),
        "forecast": {
            "source": view.source,
            "method": view.method,
            "issued_at": view.issued_at.isoformat(),
            "horizon_h": view.horizon_h,
            "warning": view.warning,
        },
    }
    if args.json:
        json.dump(data, sys.stdout, indent=2)
        sys.stdout.write("\n")
        return 0
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    console = Console(highlight=False, soft_wrap=True)
    table = Table(box=None, header_style="bold", pad_edge=False)
    for col in ("job", "start (UTC)", "h", "deadline h", "kW", "units"):
        table.add_column(col, justify="left" if col in ("job", "start (UTC)") else "right")
    for r in rows:
        table.add_row(
            escape(r["name"]),
            _fmt_time(r["start_at"]),
            f"{r['duration_h']:g}",
            f"{r['deadline_h']:g}",
            f"{r['power_kw']:g}",
            str(r["units"]),
        )
    console.print(table)
    console.print(f"outlook: {escape(view.method)}; {escape(view.source)}", style="dim")
    if view.warning:
        console.print(f"[yellow]warning: {escape(view.warning)}[/yellow]")
    for line in result.notes:
        if not line.startswith("greedy:"):
            console.print(f"note: {escape(line)}", style="dim")
    gap = "" if result.gap_to_optimum_pct is None else f"; greedy within {result.gap_to_optimum_pct:.2f} % of it"
    console.print(
        f"[bold]{result.method}[/bold], capacity {capacity}: {result.emissions_g / 1000:,.2f} kg CO2e against "
        f"{result.queue_emissions_g / 1000:,.2f} kg as a plain queue would run them: "
        f"{result.savings_pct:.1f} % saved (solved in {result.seconds:.2f} s{gap})"
    )
    return 0


def handle_submit(args: argparse.Namespace) -> int:
    from wattwise.carbon.service import IntensityService
    from wattwise.config import Settings
    from wattwise.schedule.deferred import Deferred, _windows
    from wattwise.schedule.executors import executor, submit
    from wattwise.schedule.outlook import outlook
    from wattwise.schedule.planner import Job, plan
    from wattwise.validate import JOB_HOURS, WINDOW_HOURS, hours

    command = list(args.cmd)
    if command[:1] == ["--"]:
        command = command[1:]
    if not command:
        raise ConfigError("no command given; usage: wattwise schedule submit --executor slurm ... -- COMMAND")
    job = Job(
        hours(args.duration, JOB_HOURS, "--duration"),
        hours(args.deadline, WINDOW_HOURS, "--deadline"),
        "deadline",
        bool(args.interruptible),
    )
    _check_forecaster(args.forecaster)
    settings = Settings.load({"region": args.region, "provider": args.provider, "trace": args.trace})
    engine = executor(args.executor, sbatch_args=args.sbatch_arg, ray_address=args.ray_address)
    service = IntensityService(settings)
    now = datetime.now(UTC)
    try:
        view = outlook(service, job, forecaster=args.forecaster, now=now)
    finally:
        service.close()
    decision = plan(view.values, job.duration_h, job.window_h, "deadline", interruptible=job.interruptible)
    state = Deferred(
        job, now, now + timedelta(hours=job.window_h), decision, view, windows=_windows(decision, view, now)
    )
    record = state.as_record()
    record["duration_note"] = f"expected duration {job.duration_h:g} h (given)"
    run_args = [flag for flag, value in (("--region", args.region), ("--trace", args.trace)) if value]
    run_args = [x for flag in run_args for x in (flag, getattr(args, flag[2:]))]
    if args.provider:
        run_args += ["--provider", args.provider]
    name = args.name or command[0].rsplit("/", 1)[-1]
    begin = state.windows[0][0]
    job_id, plan_file = submit(
        engine, command, record, begin_at=begin, name=name, home=settings.home, run_args=run_args
    )
    data = {
        "executor": args.executor,
        "job_id": job_id,
        "begin_at": begin.isoformat(),
        "plan_file": str(plan_file),
        **record,
    }
    if args.json:
        json.dump(data, sys.stdout, indent=2)
        sys.stdout.write("\n")
    else:
        print(
            f"{args.executor} job {job_id}: {name} starts {_fmt_time(begin.isoformat())} "
            f"(deadline {_fmt_time(record['deadline_at'])}); expected {decision.expected_g_per_kwh:,.0f} g/kWh "
            f"against {decision.now_g_per_kwh:,.0f} now; plan in {plan_file}"
        )
        if view.warning:
            print(f"warning: {view.warning}")
    return 0


def _check_forecaster(name: str) -> None:
    """An unknown forecaster is one line before anything is fetched or planned."""
    if name != "auto":
        from wattwise.schedule.forecast import forecaster

        forecaster(name)
