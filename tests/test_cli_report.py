"""``wattwise report`` and ``wattwise dashboard`` from the command line, in-process through ``main()``."""

from __future__ import annotations

import socket
import sqlite3
from pathlib import Path

import pytest

from tests.report.runs import store_with_runs
from wattwise.cli.main import main
from wattwise.store import open_store

pytest.importorskip("jinja2")


@pytest.fixture
def db(tmp_path: Path) -> str:
    path = tmp_path / "runs.db"
    with open_store(str(path)) as store:
        store_with_runs(store, 2)
    return str(path)


def test_report_latest_writes_a_self_contained_page(
    db: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    assert main(["report", "latest", "--db", db]) == 0
    out = capsys.readouterr().out
    written = list(tmp_path.glob("wattwise-report-*.html"))
    assert len(written) == 1 and written[0].name in out and "opens offline" in out
    page = written[0].read_text(encoding="utf-8")
    assert 'id="chart-power"' in page and "<script" not in page
    assert not list(tmp_path.glob(".*.tmp"))  # written whole, through a temporary file


def test_report_markdown_latex_and_compare(db: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["report", "latest", "--format", "markdown", "--db", db]) == 0
    assert "| gpu:0 (gpu) | measured |" in capsys.readouterr().out
    assert main(["report", "latest", "--format", "latex", "--output", str(tmp_path / "s.tex"), "--db", db]) == 0
    assert r"\begin{tabular}" in (tmp_path / "s.tex").read_text()
    ids = [r.id for r in open_store(db, read_only=True).list_runs()]
    assert main(["report", "--compare", *ids, "--html", str(tmp_path / "c.html"), "--db", db]) == 0
    assert 'id="chart-energy"' in (tmp_path / "c.html").read_text()
    capsys.readouterr()
    assert main(["report", "--compare", *ids, "--format", "markdown", "--db", db]) == 0
    assert "What differs:" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["report"], "give a run id"),
        (["report", "zzzz9999"], "no run matches 'zzzz9999'"),
        (["report", "latest", "--format", "markdown", "--html", "x.html"], "--html writes the HTML report"),
        (["report", "latest", "--output", "x.md"], "--output is for markdown or latex"),
        (["report", "--compare", "latest"], "at least two runs"),
        (["report", "latest", "--html", "/proc/no/such/dir/r.html"], "cannot write"),
    ],
)
def test_report_bad_input_is_one_line(
    db: str, argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main([*argv, "--db", db]) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1 and "Traceback" not in err


def test_report_on_a_database_that_is_not_a_store(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    foreign = tmp_path / "other.db"
    with sqlite3.connect(foreign) as conn:
        conn.execute("CREATE TABLE invoices (id INTEGER)")
    assert main(["report", "latest", "--db", str(foreign)]) != 0
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "not a wattwise run store" in err and "Traceback" not in err


def test_dashboard_port_in_use_is_one_line(db: str, capsys: pytest.CaptureFixture[str]) -> None:
    pytest.importorskip("uvicorn")
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        assert main(["dashboard", "--port", str(port), "--db", db]) == 2
    err = capsys.readouterr().err
    assert f"port {port} on 127.0.0.1 is already in use" in err and err.count("\n") == 1


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--port", "70000"], "port"),
        (["--host", "0.0.0.0", "--token", "short"], "16 to 256"),
        (["--host", "no.such.host.invalid"], "cannot resolve host"),
    ],
)
def test_dashboard_bad_flags(db: str, argv: list[str], message: str, capsys: pytest.CaptureFixture[str]) -> None:
    pytest.importorskip("uvicorn")
    assert main(["dashboard", *argv, "--db", db]) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1


def test_dashboard_on_a_foreign_database(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    pytest.importorskip("uvicorn")
    foreign = tmp_path / "other.db"
    with sqlite3.connect(foreign) as conn:
        conn.execute("CREATE TABLE invoices (id INTEGER)")
    assert main(["dashboard", "--port", "8787", "--db", str(foreign)]) != 0
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "not a wattwise run store" in err


def test_a_non_loopback_dashboard_makes_a_token(db: str) -> None:
    pytest.importorskip("starlette")
    from wattwise.dashboard.server import is_loopback, prepare

    _, token = prepare(db, "0.0.0.0", None)
    assert token is not None and len(token) >= 24
    _, none = prepare(db, "127.0.0.1", None)
    assert none is None
    assert is_loopback("::1") and is_loopback("localhost") and not is_loopback("192.168.1.2")
