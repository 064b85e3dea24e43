"""Storing a cluster's figures into a run's record, beside wattwise's own: ``Run.external``, never the totals.

:func:`attach` rewrites the stored record through :meth:`~wattwise.store.base.RunStore.update`, in one transaction:
everything else in the record stays as it was, and a writer saving the same run meanwhile (another ``runs attach``)
is neither lost nor overwritten. Figures replace earlier ones of the same source and scope (attaching again
refreshes them, never doubles them: :meth:`~wattwise.records.Run.with_external`). A run still being measured is
refused: its tracker's next checkpoint would drop the figures; attach them once it has ended (the live observers,
:mod:`~wattwise.importers.live`, need no second write: their figures go in with the run's final record).
:func:`detach` removes figures again (``wattwise runs attach ID --remove SOURCE[:SCOPE]``), in one transaction too.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from wattwise.errors import ConfigError, CounterError

if TYPE_CHECKING:
    from wattwise.records import ExternalFigure, Run
    from wattwise.store.base import RunStore

__all__ = ["attach", "detach"]


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


def detach(store: RunStore, run_id: str, source: str, scope: str | None = None) -> tuple[Run, list[ExternalFigure]]:
    """Remove the figures of ``source`` (only the one of ``scope``, when given) from the stored record of run
    ``run_id``; the new record and the figures removed. Refused, with nothing written: a run still running, no
    figure that matches (the message lists those the run has)."""
    removed: list[ExternalFigure] = []

    def change(current: Run) -> Run:
        if current.status == "running":
            raise ConfigError(f"run {current.id} is still being measured: remove cluster figures once it has ended")
        gone = [f for f in current.external if f.source == source and (scope is None or f.scope == scope)]
        if not gone:
            from wattwise.report.safe import printable

            wanted = source if scope is None else f"{source}:{scope}"
            held = "; ".join(f"{f.source}:{f.scope}" for f in current.external) or "none"
            message = f"run {current.id} has no cluster figure {wanted} to remove (it has: {held}); nothing changed"
            raise ConfigError(printable(message))
        removed[:] = gone
        return current.replace(external=tuple(f for f in current.external if f not in gone))

    return store.update(run_id, change), removed
