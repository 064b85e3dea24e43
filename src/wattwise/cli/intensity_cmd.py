"""``wattwise intensity now|history|forecast``: grid carbon intensity for a region, from any provider."""

from __future__ import annotations

import argparse
import json
import math
import sys
from datetime import UTC, datetime
from typing import Any

from wattwise.carbon import registry
from wattwise.carbon.base import IntensitySeries
from wattwise.errors import ConfigError

_MAX_ROWS = 60


def add_parser(sub: Any) -> None:
    p = sub.add_parser("intensity", help="grid carbon intensity now, in the past, or forecast, for a region")
    verbs = p.add_subparsers(dest="intensity_command", metavar="SUBCOMMAND", parser_class=type(p))
    p.set_defaults(handler=lambda args: _usage(p))
    bt = verbs.add_parser("backtest", help="a forecaster's error (MAPE) and the savings scheduling on it achieves")
    from wattwise.cli.schedule_cmd import add_replay_flags, handle_evaluate

    add_replay_flags(bt, "--model", required_job=False)
    bt.set_defaults(handler=handle_evaluate)
    for name, text in (("now", "the latest value"), ("history", "past values"), ("forecast", "values ahead")):
        v = verbs.add_parser(name, help=text)
        v.add_argument("--region", help="ISO country code, grid zone (US-CAL-CISO) or cloud region (aws:eu-west-1)")
        v.add_argument("--provider", choices=registry.NAMES)
        v.add_argument("--trace", help="a CSV intensity series (implies --provider csv)")
        v.add_argument("--intensity", type=float, help="a fixed value in g/kWh (implies --provider fixed)")
        v.add_argument("--offline", action="store_true", default=None, help="cached or packaged data only")
        v.add_argument("--json", action="store_true", help="machine-readable output")
        if name == "history":
            v.add_argument("--from", dest="start", required=True, help="start, ISO 8601 (UTC if no offset)")
            v.add_argument("--to", dest="end", required=True, help="end, ISO 8601 (UTC if no offset)")
        if name == "forecast":
            v.add_argument("--hours", type=float, default=48.0, help="how far ahead (default 48)")
            v.add_argument(
                "--model", help="forecast from history with p24, m7, anomaly, linear, gbm, lstm or auto instead"
            )
            v.add_argument("--at", help="with --model and --trace: forecast as of this time (ISO 8601)")
        v.set_defaults(handler=handle)


def _usage(parser: argparse.ArgumentParser) -> int:
    parser.print_help(sys.stderr)
    return 2


def _when(text: str, flag: str) -> datetime:
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise ConfigError(f"{flag} {text!r} is not an ISO 8601 time (e.g. 2024-05-01T12:00Z)") from None
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def handle(args: argparse.Namespace) -> int:
    from wattwise.carbon.service import IntensityService
    from wattwise.config import Settings

    overrides = {
        "region": args.region,
        "provider": args.provider,
        "trace": args.trace,
        "offline": args.offline,
        "intensity": args.intensity,
    }
    service = IntensityService(Settings.load(overrides))
    try:
        if args.intensity_command == "now":
            series = service.latest()
        elif args.intensity_command == "history":
            start, end = _when(args.start, "--from"), _when(args.end, "--to")
            if end <= start:
                raise ConfigError(f"--to ({end.isoformat()}) must be after --from ({start.isoformat()})")
            series = service.history(start, end)
        else:
            if not (math.isfinite(args.hours) and 0 < args.hours <= 240):
                raise ConfigError(f"--hours must be above 0 and at most 240 (got {args.hours:g})")
            if args.model is not None:
                series = _model_series(service, args)
            else:
                if args.at is not None:
                    raise ConfigError("--at goes with --model (a forecast made as of a past time)")
                series = service.forecast(args.hours)
    finally:
        service.close()
    data = _as_json(series, service.region.code, service.provider_name)
    if args.intensity_command == "history" and not series.constant:
        data["intensity_g_per_kwh"] = series.mean_over(start, end) or data["intensity_g_per_kwh"]
    if args.json:
        json.dump(data, sys.stdout, indent=2)
        sys.stdout.write("\n")
        return 0
    _print(data)
    return 0


def _as_json(series: IntensitySeries, region: str, provider: str) -> dict[str, Any]:
    points = []
    for p in series.points:
        end = None if math.isinf(p.duration_s) else p.end.isoformat()
        start = None if math.isinf(p.duration_s) else p.start.isoformat()
        points.append(
            {"start": start, "end": end, "intensity_g_per_kwh": p.intensity_g_per_kwh, "forecast": p.forecast}
        )
    values = [p.intensity_g_per_kwh for p in series.points]
    return {
        "region": region,
        "zone": series.region,
        "provider": "static" if series.fallback else provider,
        "intensity_g_per_kwh": _headline(series),
        "min_g_per_kwh": min(values) if values else None,
        "max_g_per_kwh": max(values) if values else None,
        "signal": series.signal,
        "source": series.source,
        "fallback": series.fallback,
        "static": series.constant,
        "note": series.note,
        "points": points,
    }


def _headline(series: IntensitySeries) -> float | None:
    """The latest point for `now`; the time-weighted mean for a range."""
    if not series.points:
        return None
    if len(series.points) == 1:
        return series.points[0].intensity_g_per_kwh
    total = sum(p.duration_s for p in series.points)
    return sum(p.intensity_g_per_kwh * p.duration_s for p in series.points) / total


def _print(data: dict[str, Any]) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console()
    headline = data["intensity_g_per_kwh"]
    value = "no data" if headline is None else f"{headline:,.1f} g/kWh"
    console.print(
        f"[bold]{data['region']}[/bold] ({data['zone']}): {value}  {data['signal']} signal, "
        f"{data['provider']}: {data['source']}"
    )
    if data["static"] and not data["fallback"]:
        console.print("[yellow]a static annual average (no network used): the same value at every hour[/yellow]")
    if data["fallback"]:
        console.print(f"[yellow]fallback: {data['note']}[/yellow]")
    elif data["note"]:
        console.print(f"note: {data['note']}", style="dim")
    points = [p for p in data["points"] if p["start"] is not None]
    if len(points) > 1:
        table = Table(box=None, header_style="bold", pad_edge=False)
        table.add_column("from (UTC)")
        table.add_column("g/kWh", justify="right")
        table.add_column("")
        step = max(1, math.ceil(len(points) / _MAX_ROWS))
        for p in points[::step]:
            start = datetime.fromisoformat(p["start"])
            table.add_row(
                start.strftime("%Y-%m-%d %H:%M"),
                f"{p['intensity_g_per_kwh']:,.1f}",
                "forecast" if p["forecast"] else "",
            )
        console.print(table)
        if step > 1:
            console.print(f"(every {step}th of {len(points)} points; --json has all)", style="dim")
        console.print(f"min {data['min_g_per_kwh']:,.1f}, max {data['max_g_per_kwh']:,.1f} g/kWh")


def _model_series(service: Any, args: argparse.Namespace) -> IntensitySeries:
    from datetime import timedelta

    from wattwise.carbon.base import IntensityPoint
    from wattwise.schedule.outlook import model_outlook

    if args.model != "auto":
        from wattwise.schedule.forecast import forecaster

        forecaster(args.model)
    at = _when(args.at, "--at") if args.at is not None else None
    view = model_outlook(service, math.ceil(args.hours), args.model, at=at)
    points = tuple(
        IntensityPoint(view.start + timedelta(hours=i), 3600.0, float(v), True) for i, v in enumerate(view.values)
    )
    return IntensitySeries(view.region, "average", f"{view.method}; {view.source}", points)
