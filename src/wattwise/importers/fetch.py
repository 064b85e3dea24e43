"""One GET to an exporter or a Prometheus server, with a timeout and a size limit; every failure one clear line.

No cache and no retry: a counter is read at a given moment, and an answer from another moment would be wrong. URLs
are shown without their user, password and query string (:func:`shown_url`), in messages and in stored records.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit, urlunsplit

from wattwise.errors import CounterError

if TYPE_CHECKING:
    import httpx

__all__ = ["DEFAULT_TIMEOUT_S", "MAX_BYTES", "get_json", "get_text", "shown_url"]

DEFAULT_TIMEOUT_S = 10.0
MAX_BYTES = 32 * 1024 * 1024  # an exporter's page for a node with 8 GPUs is some 100 kB; Kepler's a few MB


def shown_url(url: str) -> str:
    """``url`` as messages and records show it: scheme, host, port and path; never a user, password or query."""
    try:
        parts = urlsplit(url)
        host = parts.hostname or ""
        port = f":{parts.port}" if parts.port else ""
    except ValueError:
        return "<an unreadable URL>"
    if ":" in host:
        host = f"[{host}]"
    return urlunsplit((parts.scheme, f"{host}{port}", parts.path, "", ""))


def _detail(body: bytes) -> str:
    text = body[:2000].decode("utf-8", "replace")
    try:
        data = json.loads(text)
    except ValueError:
        data = None
    if isinstance(data, dict) and isinstance(data.get("error"), str):
        return str(data["error"])[:200]  # Prometheus' API: {"status":"error","errorType":...,"error":...}
    return " ".join(text.split())[:200] or "an empty answer"


def _get(
    url: str, params: Mapping[str, str], what: str, timeout_s: float, transport: httpx.BaseTransport | None
) -> bytes:
    import httpx

    from wattwise import __version__

    shown = shown_url(url)
    try:
        with (
            httpx.Client(
                transport=transport, timeout=httpx.Timeout(timeout_s), headers={"User-Agent": f"wattwise/{__version__}"}
            ) as client,
            client.stream("GET", url, params=params) as response,
        ):
            body = bytearray()
            for chunk in response.iter_bytes():
                body += chunk
                if len(body) > MAX_BYTES:
                    raise CounterError(f"{what} at {shown} answered more than {MAX_BYTES >> 20} MiB; is the URL right?")
    except httpx.TimeoutException:
        raise CounterError(f"{what} at {shown} did not answer within {timeout_s:g} s; is it up?") from None
    except (httpx.InvalidURL, httpx.UnsupportedProtocol):
        raise CounterError(f"cannot use {shown} for {what}: give an http:// or https:// URL") from None
    except httpx.HTTPError as exc:  # refused, unknown host, reset, TLS
        reason = " ".join(str(exc).split())[:200] or type(exc).__name__
        raise CounterError(f"cannot reach {what} at {shown} ({reason}); is it running, and is the URL right?") from None
    status = response.status_code
    if status == 404:
        raise CounterError(f"{what} at {shown} answered 404 Not Found; check the URL's path")
    if status in (401, 403):
        raise CounterError(
            f"{what} at {shown} refused the request ({status}): give credentials in the URL if it needs any"
        )
    if not 200 <= status < 300:
        raise CounterError(f"{what} at {shown} answered {status}: {_detail(bytes(body))}")
    return bytes(body)


def get_text(
    url: str, what: str, *, timeout_s: float = DEFAULT_TIMEOUT_S, transport: httpx.BaseTransport | None = None
) -> str:
    """The body of ``GET url`` as text (an exporter's ``/metrics``); ``what`` names the server in errors."""
    return _get(url, {}, what, timeout_s, transport).decode("utf-8", "replace")


def get_json(
    url: str,
    params: Mapping[str, str],
    what: str,
    *,
    timeout_s: float = DEFAULT_TIMEOUT_S,
    transport: httpx.BaseTransport | None = None,
) -> Any:
    """``GET url?params`` parsed as JSON; CounterError when the answer is not JSON (a login page, a proxy's error)."""
    body = _get(url, params, what, timeout_s, transport)
    try:
        return json.loads(body)
    except (ValueError, RecursionError):
        raise CounterError(
            f"{what} at {shown_url(url)} answered something that is not JSON ({_detail(body)[:80]}); is the URL right?"
        ) from None
