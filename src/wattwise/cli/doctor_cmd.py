"""``wattwise doctor``: what can be measured here, what cannot, why, and how to fix it."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from wattwise.errors import WattwiseError


def add_parser(sub: Any) -> None:
    p = sub.add_parser("doctor", help="list each power source, whether it works here, and how to fix it")
    p.add_argument("--json", action="store_true", help="machine-readable report")
    p.add_argument("--regions", action="store_true", help="list the region codes the packaged table knows")
    p.set_defaults(handler=handle)


def _settings_report() -> dict[str, Any]:
    """Settings, grid figure and store, each with the problem instead of a traceback when it is broken."""
    from wattwise.carbon.service import IntensityService
    from wattwise.config import Settings
    from wattwise.store import open_store

    report: dict[str, Any] = {}
    try:
        settings = Settings.load()
    except WattwiseError as exc:
        return {"settings_error": str(exc)}
    report["settings"] = {
        "attribution": settings.attribution,
        "pue": settings.pue if settings.pue is not None else "auto",
        "interval_s": settings.interval_s,
    }
    try:
        service = IntensityService(settings)
        grid = service.region.intensity
        facility = service.facility()
        report["grid"] = {
            "region": service.region.code,
            "provider": service.provider_name,
            "intensity_g_per_kwh": round(grid.intensity_g_per_kwh, 1),
            "source": grid.source,
            "note": service.region.note or grid.note,
            "pue": facility.pue,
            "pue_source": facility.pue_source,
            "wue_l_per_kwh": facility.wue_l_per_kwh,
            "offsite_water_l_per_kwh": facility.offsite_water_l_per_kwh,
        }
    except WattwiseError as exc:
        report["grid_error"] = str(exc)
    report["store"] = {"url": settings.db_url}
    try:
        with open_store(settings.db_url) as store:
            store.list_runs(limit=1)
        report["store"]["ok"] = True
    except WattwiseError as exc:
        report["store"].update(ok=False, error=str(exc))
    return report


def _print_gpus(console: Any, details: Any) -> None:
    """One line per GPU: what it can measure, MIG, power limit, process list; then versions and attribution."""
    from rich.markup import escape

    driver, bindings = escape(str(details["driver"])), escape(str(details["bindings"]))
    console.print(f"GPUs (NVIDIA driver {driver}, bindings {bindings}):")
    for g in details["gpus"]:
        if "name" not in g:  # a GPU that cannot be opened
            console.print(f"  gpu:{g['index']}: {escape(str(g['measures']))}")
            continue
        facts = [str(g["measures"])]
        facts.append("MIG on: the whole physical GPU is metered" if g["mig"] else "MIG off")
        if g["power_limit_w"] is not None:
            facts.append(f"power limit {g['power_limit_w']:g} W")
        facts.append("process list: yes" if g["process_list"] else "process list: no (charged whole)")
        if g["module_includes_cpu"]:
            facts.append("module counter includes its CPU and memory")
        who = f"gpu:{g['index']} {escape(str(g['name']))} ({escape(str(g['uuid']))})"
        console.print(f"  {who}: {escape('; '.join(facts))}")
    console.print(f"  attribution: {escape(str(details['attribution']))}")


def handle(args: argparse.Namespace) -> int:
    from wattwise.config import Settings
    from wattwise.devices import probe_all

    if args.regions:
        from wattwise.carbon.regions import RegionResolver

        print("\n".join(RegionResolver().names()))
        return 0
    try:
        settings = Settings.load()
    except WattwiseError:
        settings = Settings()
    probes = probe_all(settings)
    extra = _settings_report()
    if args.json:
        data = {
            "sources": [
                {
                    "source": p.source,
                    "available": p.available,
                    "summary": p.summary,
                    "fix": p.fix,
                    "channels": [{"name": c.name, "source": c.source, "method": c.method} for c in p.channels],
                    **({"details": dict(p.details)} if p.details else {}),
                }
                for p in probes
            ],
            **extra,
        }
        json.dump(data, sys.stdout, indent=2)
        sys.stdout.write("\n")
        return 0
    from rich.console import Console
    from rich.table import Table

    console = Console()
    table = Table(box=None, header_style="bold", pad_edge=False, show_lines=False)
    table.add_column("source")
    table.add_column("here")
    table.add_column("what it found / how to fix", overflow="fold")
    for p in probes:
        mark = "[green]yes[/green]" if p.available else "[yellow]no[/yellow]"
        text = p.summary + (f"\n[bold]fix:[/bold] {p.fix}" if p.fix else "")
        table.add_row(p.source, mark, text)
    console.print(table)
    for p in probes:
        if p.details and p.details.get("gpus"):
            _print_gpus(console, p.details)
    for key in ("settings_error", "grid_error"):
        if key in extra:
            console.print(f"[red]{extra[key]}[/red]")
    if "grid" in extra:
        g = extra["grid"]
        console.print(
            f"grid: {g['region']} {g['intensity_g_per_kwh']} g/kWh annual ({g['source']}); provider {g['provider']}; "
            f"PUE {g['pue']:g} ({g['pue_source']})"
        )
        if g["note"]:
            console.print(f"[yellow]note:[/yellow] {g['note']}")
    store = extra.get("store", {})
    if store:
        state = "[green]ok[/green]" if store.get("ok") else f"[red]{store.get('error')}[/red]"
        console.print(f"store: {store['url']} {state}")
    return 0
