from __future__ import annotations

import subprocess
import sys
import threading

import pytest

from wattwise.measure.epochs import ENV_VAR, EpochListener, report_epoch


def test_report_epoch_outside_wattwise_run_is_a_no_op(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(ENV_VAR, raising=False)
    assert report_epoch() is False
    monkeypatch.setenv(ENV_VAR, "/nonexistent/socket")
    assert report_epoch() is False  # no listener: still not an error


def test_listener_receives_reports_from_a_child_process() -> None:
    got: list[int | None] = []
    done = threading.Event()

    def on_epoch(planned: int | None) -> None:
        got.append(planned)
        if len(got) == 3:
            done.set()

    listener = EpochListener(on_epoch)
    try:
        code = "import wattwise\nwattwise.report_epoch()\nwattwise.report_epoch(planned=7)\nwattwise.report_epoch(0)\n"
        env = {**listener.env(), "PATH": "/usr/bin:/bin"}
        subprocess.run([sys.executable, "-c", code], env=env, check=True, timeout=30)
        assert done.wait(5)
    finally:
        listener.close()
    assert got == [None, 7, None]


def test_garbage_datagrams_are_reported_not_fatal() -> None:
    import socket

    got: list[int | None] = []
    listener = EpochListener(got.append)
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.sendto(b"hello", listener.path)
        sock.sendto(b"epoch many", listener.path)
    listener.close()  # drains what was sent
    assert got == [None]
    assert len(listener.errors) == 2
