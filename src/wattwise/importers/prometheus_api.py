"""A stored run's counters, after the fact, from a Prometheus server's HTTP API (``/api/v1/query``).

For each end of the run, the raw samples of the counter within :data:`LOOKBACK_S` of that moment are fetched (a range
selector, ``metric{…}[600s]``, evaluated :data:`LOOKBACK_S` after it) and the sample nearest the moment is used, with
its own timestamp: the figure then says exactly which stretch the counter covered (it may differ from the run's by
up to a scrape interval at each end). Resets in between are looked for with ``resets(metric{…}[…])``: any reset
refuses the figure. ``increase()`` is not used: it extrapolates to the window's edges, which is not what was counted.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from wattwise.errors import CounterError
from wattwise.importers.counters import CounterSpec, increases
from wattwise.importers.fetch import DEFAULT_TIMEOUT_S, get_json, shown_url

if TYPE_CHECKING:
    import httpx

    from wattwise.records import ExternalFigure, Run

__all__ = ["LOOKBACK_S", "Prometheus", "Sample", "label_value", "run_window"]

LOOKBACK_S = 300  # Prometheus' own default lookback: a scraped series has a sample at least this often
_API = "/api/v1/query"


def label_value(value: str) -> str:
    """``value`` as a PromQL string literal (quotes and backslashes escaped)."""
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


@dataclass(frozen=True, slots=True)
class Sample:
    """One series' sample: its labels, value and timestamp."""

    labels: dict[str, str]
    value: float
    at: datetime


def run_window(run: Run) -> tuple[datetime, datetime]:
    """When the run started and ended (its last checkpoint's end for a run without ``ended_at``)."""
    end = run.ended_at if run.ended_at is not None else run.started_at + timedelta(seconds=run.duration_s)
    return run.started_at, end


class Prometheus:
    """Instant queries against one Prometheus server (``url``: its base, e.g. ``http://prometheus:9090``)."""

    def __init__(
        self, url: str, *, timeout_s: float = DEFAULT_TIMEOUT_S, transport: httpx.BaseTransport | None = None
    ) -> None:
        base = url.rstrip("/")
        self.url = base[: -len(_API)] if base.endswith(_API) else base
        self.shown = shown_url(self.url)
        self.timeout_s = timeout_s
        self._transport = transport

    def _garbage(self, why: str) -> CounterError:
        return CounterError(
            f"Prometheus at {self.shown} answered JSON that is not its query API's ({why}); give the server's base "
            "URL, such as http://prometheus:9090"
        )

    def query(self, expr: str, at: datetime) -> tuple[str, list[Any]]:
        """``expr`` evaluated at ``at``: (resultType, result), as the API gives them."""
        data = get_json(
            self.url + _API,
            {"query": expr, "time": f"{at.timestamp():.3f}"},
            "Prometheus",
            timeout_s=self.timeout_s,
            transport=self._transport,
        )
        if not isinstance(data, dict) or data.get("status") != "success":
            error = data.get("error") if isinstance(data, dict) else None
            if isinstance(error, str):
                raise CounterError(f"Prometheus at {self.shown} refused the query {expr}: {error[:200]}")
            raise self._garbage('no status "success"')
        body = data.get("data")
        if not isinstance(body, dict) or not isinstance(body.get("result"), list):
            raise self._garbage("no data.result list")
        return str(body.get("resultType")), body["result"]

    def _labels(self, item: object) -> dict[str, str]:
        metric = item.get("metric") if isinstance(item, dict) else None
        if not isinstance(metric, dict) or not all(isinstance(v, str) for v in metric.values()):
            raise self._garbage("a series without its labels")
        return {str(k): v for k, v in metric.items() if k != "__name__"}

    def _point(self, pair: object) -> tuple[datetime, float]:
        if not (isinstance(pair, list) and len(pair) == 2 and isinstance(pair[0], int | float)):
            raise self._garbage('a sample that is not [time, "value"]')
        try:
            value = float(pair[1])
            at = datetime.fromtimestamp(float(pair[0]), UTC)
        except (TypeError, ValueError, OverflowError, OSError):
            raise self._garbage('a sample that is not [time, "value"]') from None
        return at, value

    def nearest(self, selector: str, moment: datetime, lookback_s: int = LOOKBACK_S) -> list[Sample]:
        """Each series' sample nearest ``moment`` among those within ``lookback_s`` of it."""
        kind, result = self.query(f"{selector}[{2 * lookback_s}s]", moment + timedelta(seconds=lookback_s))
        if kind != "matrix":
            raise self._garbage(f"a {kind} where a range query gives a matrix")
        found = []
        for item in result:
            values = item.get("values") if isinstance(item, dict) else None
            if not isinstance(values, list):
                raise self._garbage("a series without values")
            points = [self._point(pair) for pair in values]
            if points:
                at, value = min(points, key=lambda p: (abs((p[0] - moment).total_seconds()), p[0]))
                found.append(Sample(self._labels(item), value, at))
        return found

    def resets(self, selector: str, start: datetime, end: datetime) -> list[tuple[dict[str, str], float]]:
        """How often each series was reset between ``start`` and ``end`` (``resets()``), both samples included (a
        range ``[Ns]`` leaves its left end out: one more second takes the sample at ``start`` in)."""
        span_s = max(1, math.ceil((end - start).total_seconds())) + 1
        kind, result = self.query(f"resets({selector}[{span_s}s])", end)
        if kind != "vector":
            raise self._garbage(f"a {kind} where resets() gives a vector")
        out = []
        for item in result:
            value = item.get("value") if isinstance(item, dict) else None
            out.append((self._labels(item), self._point(value)[1]))
        return out

    def figures(self, spec: CounterSpec, selector: str, run: Run) -> list[ExternalFigure]:
        """``spec``'s figures for ``run``: the counter's samples nearest its start and end, no reset between."""
        start, end = run_window(run)
        what = f"{spec.metric} in Prometheus at {self.shown}"
        readings = []
        for moment, which in ((start, "start"), (end, "end")):
            samples = self.nearest(selector, moment)
            if not samples:
                raise CounterError(
                    f"{what}: no sample of {selector} within {LOOKBACK_S} s of the run's {which} "
                    f"({moment:%Y-%m-%d %H:%M:%S} UTC): was it scraped then, and is the selector right?"
                )
            chosen = [spec.reading(s.labels, s.value, s.at) for s in samples]
            readings.append(spec.select([r for r in chosen if r is not None], run, what))
        first, last = readings
        span = (min(r.at for r in first), max(r.at for r in last))
        span_s = (span[1] - span[0]).total_seconds()
        run_s = (end - start).total_seconds()
        if abs(span_s - run_s) > 0.5 * run_s or span_s <= 0:
            raise CounterError(
                f"{what}: the samples nearest the run's start and end span {span_s:.0f} s, the run {run_s:.0f} s: "
                "the run is too short for the counter's scrape interval; measure it live instead (`wattwise run "
                "--dcgm URL` or `--kepler URL`)"
            )
        by_key = {r.key: r for r in last}
        for labels, count in self.resets(selector, *span):
            reading = spec.reading(labels, 0.0, span[1])
            if reading is not None and reading.key in by_key and count > 0:
                raise CounterError(
                    f"{what}: the counter of {reading.scope} was reset {count:g} time(s) during the run (the "
                    "exporter, the driver or the node restarted), so the run's energy cannot be read from it; "
                    "nothing was stored"
                )
        how = (
            f"from Prometheus {self.shown}: its samples nearest the run's start and end (this figure's start and "
            "end are theirs), no reset between"
        )
        found = increases(first, last, what=what, late_from_zero=spec.late_from_zero)
        return [spec.figure(inc, how) for inc in found]
