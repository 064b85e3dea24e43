"""``wattwise hardware list``: the packaged accelerator and CPU catalogue, as a table or as JSON with every source."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

_KINDS = ("gpu", "tpu", "accelerator", "cpu")


def add_parser(sub: Any) -> None:
    p = sub.add_parser(
        "hardware", help="the hardware catalogue: TDP, dense peak FLOP/s, memory and bandwidth, embodied carbon"
    )
    verbs = p.add_subparsers(dest="hardware_command", metavar="SUBCOMMAND", parser_class=type(p))
    p.set_defaults(handler=lambda args: _usage(p))
    listing = verbs.add_parser("list", help="every device with its figures (sources with --json)")
    listing.add_argument("--json", action="store_true", help="every field and source, as a JSON array")
    listing.add_argument("--kind", choices=_KINDS, help="only this kind of device")
    listing.set_defaults(handler=handle)


def _usage(parser: argparse.ArgumentParser) -> int:
    parser.print_help(sys.stderr)
    return 2


def handle(args: argparse.Namespace) -> int:
    from wattwise.estimate.hardware import HardwareCatalogue

    rows = [hw for hw in HardwareCatalogue().all() if args.kind is None or hw.kind == args.kind]
    if args.json:
        json.dump([hw.to_dict() for hw in rows], sys.stdout, indent=2)
        sys.stdout.write("\n")
        return 0
    from rich.console import Console
    from rich.table import Table

    table = Table(box=None, header_style="bold", pad_edge=False)
    table.add_column("name", no_wrap=True)
    table.add_column("kind")
    table.add_column("year", justify="right")
    table.add_column("TDP W", justify="right")
    table.add_column("bf16/fp16 TFLOP/s", justify="right")
    table.add_column("memory GB", justify="right")
    table.add_column("GB/s", justify="right")
    table.add_column("embodied kg", justify="right")
    for hw in rows:
        peak = "-"
        for dtype in ("bf16", "fp16"):
            if dtype in hw.peak_tflops:
                peak = _num(hw.peak_tflops[dtype]) + ("" if dtype == "bf16" else " (fp16)")
                break
        table.add_row(
            hw.name,
            hw.kind,
            "-" if hw.year is None else str(hw.year),
            _num(hw.tdp_w),
            peak,
            _num(hw.memory_gb),
            _num(hw.memory_bandwidth_gbs),
            _num(hw.embodied_kgco2e),
        )
    console = Console()
    console.print(table)
    console.print(
        "Peaks are dense (no sparsity); '-' means not published. `wattwise hardware list --json` gives every source."
    )
    return 0


def _num(value: float | None) -> str:
    return "-" if value is None else f"{value:g}"
