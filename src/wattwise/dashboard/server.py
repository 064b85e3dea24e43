"""Start the dashboard: check the address, the token and the store before serving, then run uvicorn.

Every refusal is one line (a ConfigError): a port already in use, a non-loopback address without a token, a
database that is not a wattwise store. The socket is bound here, before uvicorn starts, so "in use" is known
at once and no other process can take the port in between.
"""

from __future__ import annotations

import ipaddress
import re
import secrets
import socket
import sys
from typing import TYPE_CHECKING

from wattwise.errors import ConfigError
from wattwise.report.safe import printable

if TYPE_CHECKING:
    from starlette.applications import Starlette

__all__ = ["TOKEN_ENV", "is_loopback", "prepare", "serve"]

TOKEN_ENV = "WATTWISE_DASHBOARD_TOKEN"
_TOKEN = re.compile(r"^[A-Za-z0-9._~-]{16,256}$")


def is_loopback(host: str) -> bool:
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def check_token(token: str) -> str:
    if not _TOKEN.match(token):
        raise ConfigError(
            "the dashboard token must be 16 to 256 letters, digits, '.', '_', '~' or '-'; leave it out and one is made"
        )
    return token


def prepare(db_url: str, host: str, token: str | None) -> tuple[Starlette, str | None]:
    """The app over the read-only store, and the token in force (made here when a non-loopback bind needs one)."""
    from wattwise.dashboard.app import create_app
    from wattwise.dashboard.auth import LOOPBACK_HOSTS
    from wattwise.store import open_store

    loopback = is_loopback(host)
    if token is not None:
        check_token(token)
    elif not loopback:
        token = secrets.token_urlsafe(24)
    store = open_store(db_url, read_only=True)
    store.count()  # a foreign or damaged database fails here, in one line, before anything is served
    notes = list(getattr(store, "notes", ()))
    missing = next((n for n in notes if n.startswith("no run store at")), None)
    if missing is not None:
        store.close()
        raise ConfigError(f"{missing}: check --db (or WATTWISE_DB), or measure a run first with `wattwise run`")
    for note in notes:
        print(f"wattwise: note: {note}", file=sys.stderr)
    allowed = (*LOOPBACK_HOSTS, host.lower()) if loopback else None
    return create_app(store, token=token, store_label=_label(db_url), allowed_hosts=allowed), token


def _label(db_url: str) -> str:
    return printable(db_url if len(db_url) <= 80 else "…" + db_url[-79:])


def serve(db_url: str, host: str, port: int, token: str | None) -> None:
    """Serve until interrupted."""
    try:
        import uvicorn
    except ImportError:
        from wattwise.report.html import missing_extra

        raise missing_extra("the dashboard") from None
    app, token = prepare(db_url, host, token)
    from wattwise.netutil import bind

    sock = bind(host, port)
    shown = f"[{host}]" if ":" in host and not host.startswith("[") else host
    url = f"http://{shown}:{port}/"
    if token is not None:
        if host in ("0.0.0.0", "::"):  # every interface: name this machine, which other machines can reach
            url = f"http://{socket.gethostname()}:{port}/"
        print(f"wattwise dashboard on {url}?token={token} (read-only; the token is required; Ctrl-C stops it)")
    else:
        print(f"wattwise dashboard on {url} (read-only, this machine only; Ctrl-C stops it)")
    sys.stdout.flush()
    config = uvicorn.Config(app, log_level="warning", access_log=False, lifespan="off")
    uvicorn.Server(config).run(sockets=[sock])
