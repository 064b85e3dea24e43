"""``wattwise dashboard``: a local, read-only web app over the run store."""

from __future__ import annotations

import argparse
import os
from typing import Any


def add_parser(sub: Any) -> None:
    p = sub.add_parser(
        "dashboard",
        help="a local web app over the stored runs (read-only)",
        description="Serve the runs list, each run's report, comparisons, and the same as JSON under /api. Bound "
        "to 127.0.0.1 unless --host says otherwise; any other address requires a token (--token, or "
        "WATTWISE_DASHBOARD_TOKEN, or one made and printed at start).",
    )
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1: this machine only)")
    p.add_argument("--port", type=int, default=8787, help="port (default 8787)")
    p.add_argument("--token", help="the token a non-loopback dashboard requires (default: made at start)")
    p.add_argument("--db", help="run store URL (default: WATTWISE_DB or the SQLite file under WATTWISE_HOME)")
    p.set_defaults(handler=handle)


def handle(args: argparse.Namespace) -> int:
    from wattwise.cli.common import db_only_settings
    from wattwise.dashboard.server import TOKEN_ENV, serve

    token = args.token or os.environ.get(TOKEN_ENV) or None
    serve(db_only_settings(args).db_url, args.host, args.port, token)
    return 0
