"""Live mode: an exporter's counters read when a run starts and when it ends, saved with the run's final record.

:class:`DcgmCounters` and :class:`KeplerCounters` are :class:`~wattwise.RunObserver` s: ``track(observers=[...])``
or ``wattwise run --dcgm URL`` / ``--kepler URL --pod NS/NAME``. They scrape the exporter's ``/metrics`` in
``run_started`` (where the series the run is about must be there and hold numbers: a wrong ``--pod``, GPU or metric
fails as the run starts, not after it) and again in ``external_figures``, which the tracker asks once the run has
ended and before it saves the final record: the figures go into ``run.external`` with that one save, whatever the
store (a file, PostgreSQL, memory, the local spool). Like every observer, one that fails (exporter down, a counter
reset) is warned about in one line and detached; the run itself is stored regardless, without its figures.
``figures`` holds the last run's.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from wattwise import validate
from wattwise.importers.counters import CounterSpec, Reading, checked, increases, scrape
from wattwise.importers.dcgm import Dcgm
from wattwise.importers.fetch import shown_url
from wattwise.importers.kepler import DEFAULT_METRIC, Kepler
from wattwise.measure.observers import RunObserver

if TYPE_CHECKING:
    import httpx

    from wattwise.records import ExternalFigure, Run

__all__ = ["CounterObserver", "DcgmCounters", "KeplerCounters"]

LIVE_TIMEOUT_S = 5.0  # a scrape holds the tracker's start and end: an exporter on the node answers in milliseconds


class CounterObserver(RunObserver):
    """Reads ``spec``'s counter from the exporter at ``url`` when the run starts and ends (see the module)."""

    def __init__(
        self,
        spec: CounterSpec,
        url: str,
        exporter: str,
        *,
        timeout_s: float = LIVE_TIMEOUT_S,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.spec = spec
        self.url = validate.check_http_url(url, f"the {exporter} URL")
        self.exporter = exporter
        self.timeout_s = validate.HTTP_TIMEOUT_S.check(timeout_s, "timeout_s")
        self._transport = transport
        self._start: list[Reading] | None = None
        self.figures: list[ExternalFigure] = []  # what the last run's counters recorded

    def _read(self) -> list[Reading]:
        return scrape(self.url, self.spec, self.exporter, timeout_s=self.timeout_s, transport=self._transport)

    @property
    def _where(self) -> str:
        return f"{self.exporter} at {shown_url(self.url)}"

    def run_started(self, run: Run) -> None:
        """Read the counters now, and check the series the run is about are there and hold energy: a wrong pod, GPU
        or metric fails here, at the start (one warning, the observer detached, the run measured all the same)."""
        self._start, self.figures = None, []
        start = self._read()
        checked(self.spec.select(start, run, self._where), self._where)
        self._start = start

    def external_figures(self, run: Run) -> Sequence[ExternalFigure]:
        """The counters' increase since ``run_started``, read now (the run has ended; its record is not yet saved)."""
        start, self._start = self._start, None
        if start is None:
            return ()
        end = self._read()
        where = self._where
        first = self.spec.select(start, run, where)
        last = self.spec.select(end, run, where)
        found = increases(first, last, what=where, late_from_zero=self.spec.late_from_zero)
        how = f"read from {self.exporter} {shown_url(self.url)} as the run started and as it ended"
        self.figures = [self.spec.figure(inc, how) for inc in found]
        return tuple(self.figures)


class DcgmCounters(CounterObserver):
    """DCGM's GPU energy counters from ``dcgm-exporter`` (``url``: its ``/metrics``, e.g.
    ``http://127.0.0.1:9400/metrics``) over the run: the run's GPUs, or ``gpus`` (indices or UUIDs)."""

    def __init__(
        self,
        url: str,
        *,
        gpus: Sequence[str] = (),
        timeout_s: float = LIVE_TIMEOUT_S,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        chosen = tuple(validate.check_gpu(g) for g in gpus)
        super().__init__(
            Dcgm(chosen),
            url,
            "the DCGM exporter",
            timeout_s=timeout_s,
            transport=transport,
        )


class KeplerCounters(CounterObserver):
    """Kepler's energy counter for one pod (``pod``: ``NAMESPACE/NAME``) from the Kepler exporter of its node
    (``url``: its ``/metrics``)."""

    def __init__(
        self,
        url: str,
        *,
        pod: str,
        metric: str = DEFAULT_METRIC,
        timeout_s: float = LIVE_TIMEOUT_S,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        namespace, name = validate.check_pod(pod)
        super().__init__(
            Kepler(namespace, name, validate.check_metric_name(metric)),
            url,
            "the Kepler exporter",
            timeout_s=timeout_s,
            transport=transport,
        )
