"""Local HTTP servers for the importers' tests: an exporter serving /metrics pages in turn, and a small Prometheus
that answers the two query shapes wattwise sends (``sel[Ns]`` and ``resets(sel[Ns])``) from stored samples."""

from __future__ import annotations

import contextlib
import itertools
import json
import re
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from string import Template
from typing import Any
from urllib.parse import parse_qs, urlsplit

DATA = Path(__file__).resolve().parents[1] / "data" / "cluster"
Reply = tuple[int, str, bytes]
Answer = Callable[[str, dict[str, str]], Reply]


def page(name: str, **values: float | str) -> str:
    """A recorded exporter page from tests/data/cluster with its counters filled in (``$E0`` → ``values["E0"]``)."""
    return Template((DATA / name).read_text()).substitute({k: str(v) for k, v in values.items()})


class _Quiet(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass


@dataclass
class Server:
    """Serves ``answer(path, query)`` on 127.0.0.1; ``requests`` lists (path, query) as they came."""

    answer: Answer
    requests: list[tuple[str, dict[str, str]]] = field(default_factory=list)

    @contextlib.contextmanager
    def running(self) -> Iterator[str]:
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                parts = urlsplit(self.path)
                query = {k: v[-1] for k, v in parse_qs(parts.query).items()}
                server.requests.append((parts.path, query))
                status, kind, body = server.answer(parts.path, query)
                self.send_response(status)
                self.send_header("Content-Type", kind)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        httpd = _Quiet(("127.0.0.1", 0), Handler)
        thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)
        thread.start()
        try:
            yield f"http://127.0.0.1:{httpd.server_address[1]}"
        finally:
            httpd.shutdown()
            httpd.server_close()
            thread.join(timeout=5)


def pages(*texts: str) -> Answer:
    """An exporter: each GET of /metrics serves the next text (the last one again when they run out)."""
    served = list(texts)

    def answer(path: str, query: dict[str, str]) -> Reply:
        if path != "/metrics":
            return 404, "text/plain", b"404 page not found\n"
        text = served.pop(0) if len(served) > 1 else served[0]
        return 200, "text/plain; version=0.0.4; charset=utf-8", text.encode()

    return answer


_SELECTOR = re.compile(
    r"^(?P<resets>resets\()?(?P<name>[a-zA-Z_:][a-zA-Z0-9_:]*)\{(?P<matchers>[^}]*)\}\[(?P<s>\d+)s\]\)?$"
)
_MATCHER = re.compile(r'\s*([a-zA-Z_]+)\s*(=~|=)\s*"((?:[^"\\]|\\.)*)"\s*,?')


@dataclass
class Series:
    labels: dict[str, str]  # __name__ included
    samples: list[tuple[float, float]]  # (unix time, value)


@dataclass
class FakePrometheus:
    """Stored series, answered as Prometheus' /api/v1/query does for range selectors and resets()."""

    series: list[Series] = field(default_factory=list)

    def _matches(self, series: Series, name: str, matchers: str) -> bool:
        if series.labels.get("__name__") != name:
            return False
        for label, op, raw in _MATCHER.findall(matchers):
            value = raw.replace('\\"', '"').replace("\\\\", "\\")
            have = series.labels.get(label, "")
            if (op == "=" and have != value) or (op == "=~" and re.fullmatch(value, have) is None):
                return False
        return True

    def answer(self, path: str, query: dict[str, str]) -> Reply:
        if path != "/api/v1/query":
            return 404, "text/plain", b"404 page not found\n"
        match = _SELECTOR.match(query.get("query", ""))
        if match is None:
            return _json(400, {"status": "error", "errorType": "bad_data", "error": "parse error: unexpected"})
        at = float(query["time"])
        span = float(match.group("s"))
        chosen = [s for s in self.series if self._matches(s, match.group("name"), match.group("matchers"))]
        if match.group("resets"):
            result = []
            for s in chosen:
                inside = [v for t, v in s.samples if at - span < t <= at]
                if inside:
                    drops = sum(1 for a, b in itertools.pairwise(inside) if b < a)
                    labels = {k: v for k, v in s.labels.items() if k != "__name__"}
                    result.append({"metric": labels, "value": [at, str(drops)]})
            return _json(200, {"status": "success", "data": {"resultType": "vector", "result": result}})
        result = []
        for s in chosen:
            values = [[t, repr(v)] for t, v in s.samples if at - span < t <= at]
            if values:
                result.append({"metric": s.labels, "values": values})
        return _json(200, {"status": "success", "data": {"resultType": "matrix", "result": result}})


def _json(status: int, data: object) -> Reply:
    return status, "application/json", json.dumps(data).encode()
