"""Fixtures for the live providers: a local replay server, a refused port, a fake clock and sleep, a client."""

from __future__ import annotations

import socket
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.carbon.providers.replay import FakeClock, ReplayServer, Sleeps
from wattwise.carbon.http import HttpClient
from wattwise.config import Settings


@pytest.fixture(autouse=True)
def no_proxies(monkeypatch: pytest.MonkeyPatch) -> None:
    """A proxy from the environment must not carry requests for 127.0.0.1 anywhere."""
    for var in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")


@pytest.fixture(autouse=True)
def no_internet(monkeypatch: pytest.MonkeyPatch) -> None:
    """Any connection to a host other than this machine fails the test, whatever the code under test does."""
    real = socket.create_connection

    def local_only(address: tuple[str, int], *args: Any, **kwargs: Any) -> socket.socket:
        if address[0] not in ("127.0.0.1", "localhost", "::1"):
            raise AssertionError(f"a test tried to reach {address[0]}:{address[1]}")
        return real(address, *args, **kwargs)

    monkeypatch.setattr(socket, "create_connection", local_only)


@pytest.fixture
def replay() -> Iterator[Callable[[str], ReplayServer]]:
    servers: list[ReplayServer] = []

    def start(folder: str) -> ReplayServer:
        servers.append(ReplayServer(folder))
        return servers[-1]

    yield start
    for server in servers:
        server.close()


@pytest.fixture
def refused_url() -> str:
    """A local address where nothing listens: connecting is refused at once."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}"


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def sleeps(clock: FakeClock) -> Sleeps:
    return Sleeps(clock)


@pytest.fixture
def live_settings(isolated_env: Path) -> Settings:
    """Settings whose home (and so the HTTP cache) is the test's own; short timeout, test credentials."""
    return Settings.load(
        {
            "http_timeout_s": 2.0,
            "electricitymaps_api_key": "em-secret-key-123456",
            "watttime_username": "wt-user",
            "watttime_password": "wt-secret-pass-654321",
        }
    )


@pytest.fixture
def make_client(live_settings: Settings, sleeps: Sleeps, clock: FakeClock) -> Iterator[Callable[..., HttpClient]]:
    """Builds HttpClients with no real sleeping, the fake clock and no jitter (back-off is then exact)."""
    clients: list[HttpClient] = []

    def build(
        name: str = "test", label: str = "Test API", settings: Settings | None = None, **options: Any
    ) -> HttpClient:
        options.setdefault("sleep", sleeps)
        options.setdefault("clock", clock)
        options.setdefault("jitter", lambda: 1.0)
        client = HttpClient(settings or live_settings, name=name, label=label, **options)
        clients.append(client)
        return client

    yield build
    for client in clients:
        client.close()
