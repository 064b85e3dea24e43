"""The store a run is measured into: the configured one, or, when that is a server that cannot be reached, the
local spool (``<home>/spool.db``) that ``wattwise runs sync`` empties later (see :mod:`wattwise.store.sync`)."""

from __future__ import annotations

import logging
from pathlib import Path

from wattwise.errors import StoreError, StoreRefused, StoreUnreachable
from wattwise.store.base import RunStore

__all__ = ["open_for_run"]

log = logging.getLogger(__name__)  # one line on stderr by Python's last-resort handler


def open_for_run(url: str, home: Path, notes: list[str]) -> RunStore:
    """The store at ``url``; the spool under ``home`` (with a note and one warning line) when ``url`` is a server
    that cannot be reached or refuses the login. A local store that fails still fails: there is nowhere better to
    keep the run."""
    from wattwise.store import SPOOL, SQLiteStore, is_local, open_store

    try:
        return open_store(url)
    except (StoreUnreachable, StoreRefused) as exc:
        if is_local(url):
            raise
        path = home / SPOOL
        try:
            spool = SQLiteStore(path)
        except StoreError:
            raise exc from None
        fix = "; fix WATTWISE_DB (or the db setting)" if isinstance(exc, StoreRefused) else ""
        note = f"{exc}{fix}; the run is kept in {path} until `wattwise runs sync` sends it"
        notes.append(note)
        log.warning("wattwise: %s", note)
        return spool
