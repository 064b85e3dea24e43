"""Run stores: where measured runs and their samples are kept, opened from one database URL.

``open_store(settings.db_url)`` picks the backend from the URL's scheme. SQLite is built in; PostgreSQL (for
teams, and all ranks of a job) needs psycopg (the ``postgres`` extra).

Accepted URLs:

* ``sqlite:///relative/path.db`` (relative to the working directory; ``~`` is expanded)
* ``sqlite:////absolute/path.db`` (and ``sqlite:///C:/path.db`` on Windows)
* ``sqlite://:memory:`` (a private in-memory database, gone when closed)
* a plain file path ending in ``.db``, ``.sqlite`` or ``.sqlite3``
* ``postgresql://user:password@host:5432/dbname`` (or ``postgres://``)
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from types import MappingProxyType

from wattwise.errors import ConfigError
from wattwise.store.base import RunStore
from wattwise.store.sqlite import MEMORY, SQLiteStore

__all__ = ["SPOOL", "RunStore", "SQLiteStore", "check_url", "is_local", "is_memory", "open_store"]

SPOOL = "spool.db"  # under WATTWISE_HOME: runs measured while a shared store could not be reached

ACCEPTED_FORMS = (
    "sqlite:///relative/path.db, sqlite:////absolute/path.db, sqlite://:memory:, a file path ending in .db or .sqlite, "
    "or postgresql://user@host:5432/dbname"
)
FILE_SUFFIXES = (".db", ".sqlite", ".sqlite3")
_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.\-]+:")  # two letters at least: "C:\runs.db" is a path


def _invalid(url: str, why: str = "unsupported database URL") -> ConfigError:
    return ConfigError(f"{why} {url!r}; WATTWISE_DB (or --db) takes {ACCEPTED_FORMS}")


def _sqlite_path(url: str) -> str:
    """The file (or :data:`MEMORY`) a ``sqlite://`` URL names; ConfigError for a malformed one."""
    rest = url.split("://", 1)[1]
    if rest in ("", MEMORY, "/" + MEMORY):
        return MEMORY
    if not rest.startswith("/"):  # sqlite://host/x.db: SQLite has no host
        raise _invalid(url, "malformed SQLite URL (three slashes before a relative path, four before /)")
    path = rest[1:]
    if not path or path.endswith("/"):
        raise _invalid(url, "SQLite URL without a file name")
    if "?" in path:
        raise _invalid(url, "SQLite URL options are not supported")
    return path


def _open_sqlite(url: str, read_only: bool) -> RunStore:
    return SQLiteStore(_sqlite_path(url), read_only=read_only)


def _open_postgresql(url: str, read_only: bool) -> RunStore:
    from wattwise.store.postgres import PostgresStore

    scheme, rest = url.split("://", 1)
    if "+" in scheme:  # postgresql+psycopg://: the driver is always psycopg 3
        url = "postgresql://" + rest
    return PostgresStore(url, read_only=read_only)


# scheme (before any "+driver") → opener; read-only, so there is no global state to reset
_OPENERS: Mapping[str, Callable[[str, bool], RunStore]] = MappingProxyType(
    {
        "sqlite": _open_sqlite,
        "postgresql": _open_postgresql,
        "postgres": _open_postgresql,
    }
)


def open_store(url: str, *, read_only: bool = False) -> RunStore:
    """Open the run store a database URL names (see the module docstring for the accepted forms).

    ``read_only``: for commands that only read (``runs list|show|export``, reports, the dashboard): nothing is
    created or written, and a store on a read-only filesystem opens. A malformed or unknown URL raises
    :class:`~wattwise.errors.ConfigError`; a store that cannot be opened raises :class:`~wattwise.errors.StoreError`.
    Close the store, or use it as a context manager.
    """
    text = url.strip()
    if "://" in text:
        scheme = text.split("://", 1)[0].lower().split("+", 1)[0]
        opener = _OPENERS.get(scheme)
        if opener is None:
            raise _invalid(url)
        return opener(text, read_only)
    if text == MEMORY:
        return SQLiteStore(MEMORY, read_only=read_only)
    if text.lower().endswith(FILE_SUFFIXES) and not _SCHEME.match(text):
        return SQLiteStore(text, read_only=read_only)
    raise _invalid(url)


def check_url(url: str) -> str:
    """``url`` when it names a store :func:`open_store` can open (its form only: nothing is opened or created);
    ConfigError otherwise, so a bad ``db=`` fails where an integration is built, not when a run ends."""
    text = url.strip()
    if "://" in text:
        scheme = text.split("://", 1)[0].lower().split("+", 1)[0]
        if scheme not in _OPENERS:
            raise _invalid(url)
        if scheme == "sqlite":
            _sqlite_path(text)
        return url
    if text == MEMORY or (text.lower().endswith(FILE_SUFFIXES) and not _SCHEME.match(text)):
        return url
    raise _invalid(url)


def is_memory(url: str) -> bool:
    """Whether the URL names an in-memory store, whose runs are gone when it is closed."""
    text = url.strip()
    if "://" in text:
        return text.split("://", 1)[0].lower().split("+", 1)[0] == "sqlite" and _sqlite_path(text) == MEMORY
    return text == MEMORY


def is_local(url: str) -> bool:
    """Whether the URL names a SQLite store on this machine (else a server, which may be unreachable)."""
    text = url.strip()
    if "://" in text:
        return text.split("://", 1)[0].lower().split("+", 1)[0] == "sqlite"
    return True
