"""Live mode: an exporter's counters read when a run starts and when it ends, attached to the stored record.

:class:`DcgmCounters` and :class:`KeplerCounters` are :class:`~wattwise.RunObserver` s: ``track(observers=[...])``
or ``wattwise run --dcgm URL`` / ``--kepler URL --pod NS/NAME``. They scrape the exporter's ``/metrics`` in
``run_started`` and ``run_ended``, and, once the tracker has stored the final record, add the figures to it through
the store (:func:`~wattwise.importers.attach.attach`): the store given, or the one ``db_url`` names (default: the
configured store, as the tracker's). Like every observer, one that fails (exporter down, a counter reset) is
warned about in one line and detached; the run itself is stored regardless. ``figures`` and ``run`` hold what was
attached.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import TYPE_CHECKING

from wattwise import validate
from wattwise.errors import CounterError, StoreError
from wattwise.importers.counters import CounterSpec, Reading, increases, scrape
from wattwise.importers.dcgm import Dcgm
from wattwise.importers.fetch import shown_url
from wattwise.importers.kepler import DEFAULT_METRIC, Kepler
from wattwise.measure.observers import RunObserver

if TYPE_CHECKING:
    import httpx

    from wattwise.records import ExternalFigure, Run
    from wattwise.store.base import RunStore

__all__ = ["CounterObserver", "DcgmCounters", "KeplerCounters"]

LIVE_TIMEOUT_S = 5.0  # a scrape holds the tracker's start and end: an exporter on the node answers in milliseconds
log = logging.getLogger(__name__)


class CounterObserver(RunObserver):
    """Reads ``spec``'s counter from the exporter at ``url`` when the run starts and ends (see the module)."""

    def __init__(
        self,
        spec: CounterSpec,
        url: str,
        exporter: str,
        *,
        store: RunStore | None = None,
        db_url: str | None = None,
        timeout_s: float = LIVE_TIMEOUT_S,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.spec = spec
        self.url = validate.check_http_url(url, f"the {exporter} URL")
        self.exporter = exporter
        self.timeout_s = validate.HTTP_TIMEOUT_S.check(timeout_s, "timeout_s")
        self._store = store
        self._db_url = db_url
        self._transport = transport
        self._start: list[Reading] | None = None
        self.figures: list[ExternalFigure] = []
        self.run: Run | None = None  # the stored record with the figures in, once attached

    def _read(self) -> list[Reading]:
        return scrape(self.url, self.spec, self.exporter, timeout_s=self.timeout_s, transport=self._transport)

    def run_started(self, run: Run) -> None:
        self._start = self._read()

    def run_ended(self, run: Run) -> None:
        if self._start is None:
            return
        end = self._read()
        where = f"{self.exporter} at {shown_url(self.url)}"
        first = self.spec.select(self._start, run, where)
        last = self.spec.select(end, run, where)
        found = increases(first, last, what=where, late_from_zero=self.spec.late_from_zero)
        how = f"read from {self.exporter} {shown_url(self.url)} as the run started and as it ended"
        self.figures = [self.spec.figure(inc, how) for inc in found]
        self.run = self._attach(run, self.figures)

    def _attach(self, run: Run, figures: Sequence[ExternalFigure]) -> Run:
        from wattwise.importers.attach import attach

        try:
            if self._store is not None:
                return attach(self._store, run, figures)
            from wattwise.config import Settings
            from wattwise.store import open_store

            with open_store(self._db_url or Settings.load().db_url) as store:
                return attach(store, run, figures)
        except StoreError as exc:
            raise CounterError(
                f"the {self.spec.source} figures of run {run.id} were read but not stored ({exc}); attach them "
                f"later with `wattwise runs attach {run.id} ...` from Prometheus"
            ) from None


class DcgmCounters(CounterObserver):
    """DCGM's GPU energy counters from ``dcgm-exporter`` (``url``: its ``/metrics``, e.g.
    ``http://127.0.0.1:9400/metrics``) over the run: the run's GPUs, or ``gpus`` (indices or UUIDs)."""

    def __init__(
        self,
        url: str,
        *,
        gpus: Sequence[str] = (),
        store: RunStore | None = None,
        db_url: str | None = None,
        timeout_s: float = LIVE_TIMEOUT_S,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        chosen = tuple(validate.check_gpu(g) for g in gpus)
        super().__init__(
            Dcgm(chosen),
            url,
            "the DCGM exporter",
            store=store,
            db_url=db_url,
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
        store: RunStore | None = None,
        db_url: str | None = None,
        timeout_s: float = LIVE_TIMEOUT_S,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        namespace, name = validate.check_pod(pod)
        super().__init__(
            Kepler(namespace, name, validate.check_metric_name(metric)),
            url,
            "the Kepler exporter",
            store=store,
            db_url=db_url,
            timeout_s=timeout_s,
            transport=transport,
        )
