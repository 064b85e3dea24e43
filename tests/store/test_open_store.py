from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

import wattwise.store
from tests.fakes.unprivileged import as_unprivileged
from wattwise.config import Settings
from wattwise.errors import ConfigError, StoreError
from wattwise.store import SQLiteStore, open_store
from wattwise.store.base import this_host

FIX = "set WATTWISE_HOME to a writable directory or WATTWISE_DB to another URL"


def test_public_names() -> None:
    assert sorted(wattwise.store.__all__) == [
        "RunStore",
        "SPOOL",
        "SQLiteStore",
        "check_url",
        "is_local",
        "is_memory",
        "open_store",
    ]


def test_check_url_takes_what_open_store_takes_and_opens_nothing(tmp_path: Path) -> None:
    from wattwise.store import check_url, is_memory

    for url in (f"sqlite:///{tmp_path}/a/runs.db", str(tmp_path / "b" / "runs.sqlite"), "postgresql://u@h/db"):
        assert check_url(url) == url and not is_memory(url)
    assert list(tmp_path.iterdir()) == []  # nothing created
    for url in ("sqlite://:memory:", ":memory:", "sqlite://", "sqlite:///:memory:"):
        assert check_url(url) == url and is_memory(url)
    for bad in ("mysql://x", "sqlite://host/x.db", "runs.txt", "sqlite:///dir/"):
        with pytest.raises(ConfigError, match="WATTWISE_DB"):
            check_url(bad)


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("sqlite:///runs.db", "runs.db"),
        ("sqlite:///sub/dir/runs.db", "sub/dir/runs.db"),
        ("sqlite:///./x.sqlite", "x.sqlite"),
        ("sqlite:////{tmp}/abs/runs.db", "abs/runs.db"),
        ("SQLite:////{tmp}/upper.db", "upper.db"),
        ("  sqlite:///padded.db\n", "padded.db"),
        ("runs.db", "runs.db"),
        ("data/runs.sqlite", "data/runs.sqlite"),
        ("/{tmp}/plain.sqlite3", "plain.sqlite3"),
        ("sqlite://:memory:", None),
        ("sqlite:///:memory:", None),
        ("sqlite://", None),
        (":memory:", None),
    ],
)
def test_accepted_urls(url: str, expected: str | None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    tmp = str(tmp_path).lstrip("/")  # "/{tmp}" is tmp_path
    store = open_store(url.replace("{tmp}", tmp))
    try:
        assert isinstance(store, SQLiteStore)
        if expected is None:
            assert store.path is None
        else:
            assert store.path is not None
            assert store.path.resolve() == (tmp_path / expected).resolve()  # relative to the working dir
            assert store.path.is_file()
    finally:
        store.close()


def test_the_default_settings_url_opens(tmp_path: Path) -> None:
    settings = Settings(home=tmp_path / "home")
    with open_store(settings.db_url) as store:
        assert isinstance(store, SQLiteStore)
        assert store.path == tmp_path / "home" / "wattwise.db"


def test_a_home_relative_url_is_expanded(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    with open_store("sqlite:///~/ww/runs.db") as store:
        assert isinstance(store, SQLiteStore)
        assert store.path == tmp_path / "ww" / "runs.db"


@pytest.mark.parametrize(
    "url",
    [
        "",
        "   ",
        "foo",
        "sqlite:/x",
        "sqlite:/x.db",
        "sqlite:x.db",
        "mysql://",
        "mysql://user@host/db",
        "file:///tmp/x.db",
        "sqlite://host/x.db",
        "sqlite:///",
        "sqlite:///dir/",
        "sqlite:///x.db?mode=ro",
        "runs.txt",
    ],
)
def test_malformed_urls_show_the_accepted_forms(url: str) -> None:
    with pytest.raises(ConfigError) as caught:
        open_store(url)
    message = str(caught.value)
    assert "\n" not in message
    assert repr(url) in message
    assert message.endswith(
        "; WATTWISE_DB (or --db) takes sqlite:///relative/path.db, sqlite:////absolute/path.db, sqlite://:memory:, "
        "a file path ending in .db or .sqlite, or postgresql://user@host:5432/dbname"
    )


@pytest.mark.parametrize(
    "url",
    ["postgresql://u:secret@127.0.0.1:1/wattwise", "postgres://u@127.0.0.1:1/w", "postgresql+psycopg://127.0.0.1:1/w"],
)
def test_a_postgresql_server_that_is_down_is_one_line_without_the_password(url: str) -> None:
    pytest.importorskip("psycopg")
    with pytest.raises(StoreError) as caught:
        open_store(url)
    message = str(caught.value)
    assert message.startswith("cannot reach the run store postgres") and "\n" not in message
    assert "secret" not in message


# --- opening errors --------------------------------------------------------------------------------------


def test_a_file_where_the_directory_should_be(tmp_path: Path) -> None:
    blocker = tmp_path / "home"
    blocker.write_text("not a directory")
    target = blocker / "deeper" / "wattwise.db"
    with pytest.raises(StoreError) as caught:
        open_store(f"sqlite:///{target}")
    assert str(caught.value) == (f"cannot create run store at {target}: {blocker} is a file, not a directory; {FIX}")
    assert blocker.read_text() == "not a directory"


def test_a_directory_where_the_file_should_be(tmp_path: Path) -> None:
    with pytest.raises(StoreError) as caught:
        SQLiteStore(tmp_path)
    assert str(caught.value) == f"cannot create run store at {tmp_path}: it is a directory; {FIX}"


def open_as_unprivileged(path: Path) -> str:
    """Try to open a store at ``path`` as a user who may not write there; return the error message."""
    this_host()  # imports socket now: the child may not be allowed to read the standard library

    def check() -> str:
        try:
            SQLiteStore(path).close()
        except StoreError as exc:
            return str(exc)
        return "opened"

    return as_unprivileged(check)


@pytest.mark.skipif(not hasattr(os, "fork"), reason="POSIX permissions")
@pytest.mark.parametrize("nested", [False, True], ids=["file", "directory"])
def test_an_unwritable_directory_says_permission_denied(nested: bool) -> None:
    public = Path(tempfile.mkdtemp(prefix="wattwise-test-"))  # pytest's tmp_path is private to its owner
    try:
        public.chmod(0o755)
        locked = public / "locked"
        locked.mkdir(mode=0o555)
        target = locked / "home" / "wattwise.db" if nested else locked / "wattwise.db"
        message = open_as_unprivileged(target)
        left = list(locked.iterdir())
    finally:
        shutil.rmtree(public)
    if message == "opened":
        pytest.skip("this environment ignores directory permissions")
    assert message == f"cannot create run store at {target}: Permission denied; {FIX}"
    assert left == []


def test_a_file_that_is_not_a_database_is_left_byte_identical(tmp_path: Path) -> None:
    db = tmp_path / "wattwise.db"
    content = b"my thesis, chapter 3\n" * 500
    db.write_bytes(content)
    with pytest.raises(StoreError) as caught:
        open_store(str(db))
    assert str(caught.value) == (
        f"{db} is not a SQLite database (file is not a database); it was left untouched; "
        "point WATTWISE_DB to another file or move this one away"
    )
    assert db.read_bytes() == content
    assert sorted(p.name for p in tmp_path.iterdir()) == ["wattwise.db"]


def test_a_new_store_file_is_private(db_path: Path) -> None:
    SQLiteStore(db_path).close()
    if sys.platform != "win32":
        assert db_path.stat().st_mode & 0o077 == 0


def test_importing_the_store_stays_cheap() -> None:
    code = (
        "import sys, wattwise.store; "
        "print(sorted(m for m in ('csv', 'socket', 'rich', 'psutil', 'pynvml', 'wattwise.store.export') "
        "if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
