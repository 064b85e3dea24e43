"""Storing a cluster's figures into a run's record, beside wattwise's own: ``Run.external``, never the totals.

:func:`attach` rewrites the stored record through :meth:`~wattwise.store.base.RunStore.update`, in one transaction:
everything else in the record stays as it was, and a writer saving the same run meanwhile (another ``runs attach``)
is neither lost nor overwritten. Figures replace earlier ones of the same source and scope (attaching again
refreshes them, never doubles them: :meth:`~wattwise.records.Run.with_external`). A run still being measured is
refused: its tracker's next checkpoint would drop the figures; attach them once it has ended (the live observers,
:mod:`~wattwise.importers.live`, need no second write: their figures go in with the run's final record).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from wattwise.errors import ConfigError, CounterError

if TYPE_CHECKING:
    from wattwise.records import ExternalFigure, Run
    from wattwise.store.base import RunStore

__all__ = ["attach"]


def attach(store: RunStore, run: Run, figures: Sequence[ExternalFigure]) -> Run:
    """Store ``figures`` in the record of ``run`` (as read before the counters were) and return the new record.

    Refused, with nothing written: no figures, a run still running, a run whose stored record no longer starts when
    ``run`` did (replaced meanwhile: its counters were read for another window).
    """
    if not figures:
        raise CounterError(f"no cluster figures to attach to run {run.id}; nothing was stored")

    def change(current: Run) -> Run:
        if current.status == "running":
            raise ConfigError(
                f"run {current.id} is still being measured: attach cluster counters once it has ended (its tracker "
                "rewrites the record until then)"
            )
        if current.started_at != run.started_at or current.ended_at != run.ended_at:
            raise CounterError(
                f"run {current.id} was rewritten while its counters were read (it now spans another window); "
                "nothing was stored: try again"
            )
        return current.with_external(figures)

    return store.update(run.id, change)
