"""Who may read the dashboard, and the headers every answer carries.

* **Token.** Bound to anything but loopback, the dashboard requires a token: ``Authorization: Bearer TOKEN``, or
  ``?token=TOKEN`` once in a browser (answered with a redirect that sets an HttpOnly, SameSite=Strict cookie named
  after the port, and drops the token from the address bar). Cookies are not private to a port: another web app
  on the same host name can read it, so serve a token dashboard on a host without untrusted local web apps.
  A missing or wrong token gets 401 and no data. Tokens are compared in constant time.
* **Host.** With ``allowed_hosts`` (what a loopback bind uses), a request whose ``Host`` header names another
  host gets 421: a page on another site cannot read a local dashboard through DNS rebinding.
* **Headers.** Every answer: a Content-Security-Policy allowing no script and no request elsewhere,
  ``nosniff``, ``no-referrer``, no framing; answers behind a token are not cached.
"""

from __future__ import annotations

import hmac
import json
from collections.abc import Awaitable, Callable, MutableMapping
from http.cookies import SimpleCookie
from typing import Any
from urllib.parse import parse_qsl, urlencode

__all__ = ["COOKIE", "LOOPBACK_HOSTS", "SecurityMiddleware"]

COOKIE = "wattwise_token"
LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "::1", "[::1]")
Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
App = Callable[[Scope, Receive, Send], Awaitable[None]]


def _headers(scope: Scope) -> dict[str, str]:
    return {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", [])}


def _cookie_name(scope: Scope) -> str:
    """The token cookie is named after the port: browsers share cookies between the ports of one host, so two
    dashboards (or a dashboard and another local web app) must not read or overwrite each other's token."""
    server = scope.get("server") or ("", 0)
    return f"{COOKIE}_{server[1] or 0}"


def _host_name(host_header: str) -> str:
    host = host_header.strip().lower()
    if host.startswith("["):
        return host[: host.find("]") + 1] if "]" in host else host
    return host.rsplit(":", 1)[0] if host.count(":") == 1 else host


class SecurityMiddleware:
    def __init__(self, app: App, *, token: str | None, csp: str, allowed_hosts: tuple[str, ...] | None) -> None:
        self.app = app
        self.token = token
        self.csp = csp
        self.allowed_hosts = None if allowed_hosts is None else {h.lower() for h in allowed_hosts}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = _headers(scope)
        if self.allowed_hosts is not None and _host_name(headers.get("host", "")) not in self.allowed_hosts:
            await self._refuse(scope, send, 421, "this dashboard answers only to its own address")
            return
        if self.token is not None:
            query = parse_qsl(scope.get("query_string", b"").decode("latin-1"), keep_blank_values=True)
            given = dict(query).get("token")
            if given is not None:
                if not self._valid(given):
                    await self._refuse(scope, send, 401, "wrong token")
                    return
                await self._set_cookie_and_redirect(scope, send, [(k, v) for k, v in query if k != "token"])
                return
            if not self._valid(self._presented(scope, headers)):
                await self._refuse(scope, send, 401, "a token is required: Authorization: Bearer TOKEN, or ?token=")
                return

        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                extra = self._security_headers()
                message["headers"] = [*message.get("headers", []), *extra]
            await send(message)

        await self.app(scope, receive, with_headers)

    def _presented(self, scope: Scope, headers: dict[str, str]) -> str | None:
        auth = headers.get("authorization", "")
        if auth.lower().startswith("bearer "):
            return auth[7:].strip()
        cookie = SimpleCookie()
        try:
            cookie.load(headers.get("cookie", ""))
        except Exception:  # a malformed Cookie header is no token
            return None
        morsel = cookie.get(_cookie_name(scope))
        return None if morsel is None else morsel.value

    def _valid(self, given: str | None) -> bool:
        assert self.token is not None
        return given is not None and hmac.compare_digest(given.encode("utf-8"), self.token.encode("utf-8"))

    def _security_headers(self) -> list[tuple[bytes, bytes]]:
        pairs = [
            ("content-security-policy", self.csp),
            ("x-content-type-options", "nosniff"),
            ("referrer-policy", "no-referrer"),
            ("x-frame-options", "DENY"),
        ]
        if self.token is not None:
            pairs.append(("cache-control", "no-store"))
        return [(k.encode(), v.encode()) for k, v in pairs]

    async def _refuse(self, scope: Scope, send: Send, status: int, message: str) -> None:
        body = json.dumps({"error": message}).encode()
        headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
        if status == 401:
            headers.append((b"www-authenticate", b'Bearer realm="wattwise"'))
        await send({"type": "http.response.start", "status": status, "headers": headers + self._security_headers()})
        await send({"type": "http.response.body", "body": body if scope.get("method") != "HEAD" else b""})

    async def _set_cookie_and_redirect(self, scope: Scope, send: Send, rest: list[tuple[str, str]]) -> None:
        assert self.token is not None
        path = "/" + str(scope.get("path", "/")).lstrip("/")  # never "//host/…", which a browser reads as a host
        location = path + (f"?{urlencode(rest)}" if rest else "")
        cookie = f"{_cookie_name(scope)}={self.token}; HttpOnly; SameSite=Strict; Path=/"
        headers = [(b"location", location.encode("utf-8")), (b"set-cookie", cookie.encode("latin-1"))]
        await send({"type": "http.response.start", "status": 303, "headers": headers + self._security_headers()})
        await send({"type": "http.response.body", "body": b""})
