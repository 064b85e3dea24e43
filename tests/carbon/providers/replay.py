"""A real HTTP server on 127.0.0.1 that replays recorded provider responses and scripted failures, and the fake
clock and sleep the clients under test run on. Nothing here touches the internet."""

from __future__ import annotations

import contextlib
import json
import re
import socket
import threading
from collections import deque
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

DATA = Path(__file__).resolve().parents[2] / "data" / "providers"
NOW = datetime(2025, 3, 10, 12, 20, tzinfo=UTC)  # the recorded files' "now"


@dataclass(frozen=True)
class Reply:
    """One scripted answer: a status, a body (a recorded file, JSON data or raw text), headers, a delay, or a
    dropped connection."""

    status: int = 200
    file: str | None = None
    json: Any = None
    text: str | None = None
    headers: dict[str, str] = field(default_factory=dict)
    delay_s: float = 0.0
    drop: bool = False


@dataclass(frozen=True)
class Hit:
    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]


class ReplayServer:
    """Serves ``routes`` (a path regex → a recorded file of ``folder``; the first that matches wins); ``script``
    queues answers for a path that are used, in order, before the route; ``hits`` records every request."""

    def __init__(self, folder: str) -> None:
        self.folder = DATA / folder
        self.routes: list[tuple[re.Pattern[str], Reply]] = []
        self.scripts: list[tuple[re.Pattern[str], deque[Reply]]] = []
        self.hits: list[Hit] = []
        self.stop = threading.Event()
        self._lock = threading.Lock()
        self._httpd = _QuietServer(("127.0.0.1", 0), _handler(self))
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(target=self._httpd.serve_forever, kwargs={"poll_interval": 0.01}, daemon=True)
        self._thread.start()

    @property
    def base_url(self) -> str:
        host, port = self._httpd.server_address[:2]
        return f"http://{host!s}:{port}"

    def serve(self, pattern: str, file: str, **reply: Any) -> None:
        self.routes.append((re.compile(pattern), Reply(file=file, **reply)))

    def script(self, pattern: str, *replies: Reply) -> None:
        self.scripts.append((re.compile(pattern), deque(replies)))

    def count(self, pattern: str = ".*") -> int:
        return sum(1 for hit in self.hits if re.fullmatch(pattern, hit.path))

    def requests(self, pattern: str = ".*") -> list[Hit]:
        return [hit for hit in self.hits if re.fullmatch(pattern, hit.path)]

    def answer(self, method: str, raw_path: str, headers: dict[str, str]) -> Reply:
        parts = urlsplit(raw_path)
        with self._lock:
            self.hits.append(Hit(method, parts.path, dict(parse_qsl(parts.query)), headers))
            for pattern, queue in self.scripts:
                if queue and pattern.fullmatch(parts.path):
                    return queue.popleft()
            for pattern, reply in self.routes:
                if pattern.fullmatch(parts.path):
                    return reply
        return Reply(status=404, json={"error": f"no route for {parts.path}"})

    def body(self, reply: Reply) -> bytes:
        if reply.file is not None:
            return (self.folder / reply.file).read_bytes()
        if reply.text is not None:
            return reply.text.encode()
        return json.dumps(reply.json if reply.json is not None else {}).encode()

    def close(self) -> None:
        self.stop.set()
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(timeout=5)


class _QuietServer(ThreadingHTTPServer):
    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # a client that hung up (timeout and drop tests) is expected, not an error


def _handler(server: ReplayServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        wbufsize = 1 << 16  # headers and body leave in one write: no 40 ms delayed-ACK stall per request

        def do_GET(self) -> None:
            reply = server.answer("GET", self.path, {k.lower(): v for k, v in self.headers.items()})
            if reply.delay_s and server.stop.wait(reply.delay_s):
                return
            if reply.drop:
                self.close_connection = True
                self.connection.shutdown(socket.SHUT_RDWR)
                return
            body = server.body(reply)
            self.send_response(reply.status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            for name, value in reply.headers.items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(body)
            self.wfile.flush()

        def handle(self) -> None:
            with contextlib.suppress(OSError):  # the client gave up (a timeout test): nothing to answer
                super().handle()

        def log_message(self, format: str, *args: Any) -> None:
            pass

    return Handler


class Sleeps:
    """Stands in for time.sleep: records how long the client wanted to wait, and does not wait."""

    def __init__(self, clock: FakeClock | None = None) -> None:
        self.calls: list[float] = []
        self._clock = clock

    def __call__(self, seconds: float) -> None:
        self.calls.append(seconds)
        if self._clock is not None:
            self._clock.advance(seconds)


class FakeClock:
    """Epoch seconds that move only when told; ``dt`` is the same moment as a UTC datetime."""

    def __init__(self, start: datetime = NOW) -> None:
        self.now = start.timestamp()

    def __call__(self) -> float:
        return self.now

    def dt(self) -> datetime:
        return datetime.fromtimestamp(self.now, UTC)

    def advance(self, seconds: float) -> None:
        self.now += seconds
