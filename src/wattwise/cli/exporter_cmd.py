"""``wattwise exporter``: the machine's power, energy and emissions as Prometheus metrics."""

from __future__ import annotations

import argparse
from typing import Any

from wattwise.cli.common import add_settings_flags, settings_from_args


def add_parser(sub: Any) -> None:
    p = sub.add_parser(
        "exporter",
        help="serve the machine's power and energy as Prometheus metrics (/metrics)",
        description="Read this machine's power channels every --interval seconds and serve them on /metrics in "
        "Prometheus' text format: wattwise_energy_joules_total and wattwise_power_watts per channel, "
        "wattwise_emissions_grams_total and the grid intensity. Counters continue across restarts.",
    )
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (0.0.0.0: scraped from elsewhere)")
    p.add_argument("--port", type=int, default=9464, help="port (default 9464)")
    add_settings_flags(p)
    p.set_defaults(handler=handle)


def handle(args: argparse.Namespace) -> int:
    import signal
    import sys

    from wattwise.integrations.exporter import Exporter
    from wattwise.integrations.prometheus import MachineMeter
    from wattwise.netutil import bind

    settings = settings_from_args(args)
    sock = bind(args.host, args.port)  # a port in use fails before the meters are opened
    try:
        meter = MachineMeter(settings)
    except BaseException:
        sock.close()
        raise
    exporter = Exporter(meter, sock, interval_s=settings.interval_s)

    def stop(signum: int, frame: object) -> None:  # SIGTERM (systemd, Docker) stops it as Ctrl-C does
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, stop)
    print(f"wattwise exporter on http://{args.host}:{exporter.port}/metrics (Ctrl-C stops it)", flush=True)
    try:
        exporter.serve_forever()
    except KeyboardInterrupt:
        saved = "counters saved" if exporter.saved else "counters NOT saved (see the warning above)"
        print(f"wattwise exporter stopped; {saved}", file=sys.stderr)
    return 0
