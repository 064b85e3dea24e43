"""``wattwise exporter``: serves the machine's power and energy as Prometheus metrics on ``/metrics``.

A sampling thread reads the meters every ``interval_s``; the HTTP server (the standard library's, one thread per
scrape) renders the latest figures. GET ``/metrics`` only; anything else is 404 (405 for other methods).
"""

from __future__ import annotations

import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from wattwise.integrations.prometheus import CONTENT_TYPE, MachineMeter, exposition

__all__ = ["Exporter"]


class _Handler(BaseHTTPRequestHandler):
    server: _Server

    def do_GET(self) -> None:  # the standard library's name
        if self.path.split("?", 1)[0] != "/metrics":
            self._send(404, b"wattwise exporter: metrics are at /metrics\n", "text/plain; charset=utf-8")
            return
        body = exposition(self.server.meter.families()).encode("utf-8")
        self._send(200, body, CONTENT_TYPE)

    def do_POST(self) -> None:
        self._send(405, b"read-only: GET /metrics\n", "text/plain; charset=utf-8")

    do_PUT = do_DELETE = do_PATCH = do_POST

    def _send(self, status: int, body: bytes, content_type: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        return  # no line per scrape


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    meter: MachineMeter


class Exporter:
    """The meter's sampling thread and the HTTP server, on a socket bound beforehand (:func:`wattwise.netutil.bind`)."""

    def __init__(self, meter: MachineMeter, sock: socket.socket, *, interval_s: float = 1.0) -> None:
        self.meter = meter
        self.interval_s = interval_s
        sock.setblocking(True)
        self.server = _Server(sock.getsockname()[:2], _Handler, bind_and_activate=False)
        self.server.socket.close()
        self.server.socket = sock
        self.server.meter = meter
        self._stop = threading.Event()
        self.saved = False  # the counters were written at close
        self._sampler = threading.Thread(target=self._sample, name="wattwise-exporter-sampler", daemon=True)

    @property
    def port(self) -> int:
        return int(self.server.socket.getsockname()[1])

    def _sample(self) -> None:
        while not self._stop.wait(self.interval_s):
            self.meter.sample()

    def serve_forever(self) -> None:
        self._sampler.start()
        try:
            self.server.serve_forever(poll_interval=0.2)
        finally:
            self.close()

    def shutdown(self) -> None:
        """From another thread: stop serving (``serve_forever`` returns and saves the counters)."""
        self.server.shutdown()

    def close(self) -> None:
        self._stop.set()
        if self._sampler.is_alive():
            self._sampler.join(5)
        self.server.server_close()
        self.saved = self.meter.close()
