"""A real headless Chromium for browser tests, and a dashboard served for real by uvicorn in a thread.

The browser is Debian's ``chromium`` driven through its ``chromedriver``, both found on PATH; Selenium Manager is
kept offline (``SE_OFFLINE``) so nothing is ever downloaded. :func:`missing` says why a browser cannot be started,
so a test module can skip with that reason.
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import os
import shutil
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from wattwise.errors import ConfigError

__all__ = ["LiveServer", "chrome", "missing", "requests_sent", "serve_in_thread"]

CHROME_ARGS = (
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-dev-shm-usage",
)


def missing() -> str | None:
    """Why no browser can be started here (a missing program or package), or None."""
    if importlib.util.find_spec("selenium") is None:
        return "selenium is not installed (pip install -e '.[test]')"
    for program, package in (("chromium", "chromium"), ("chromedriver", "chromium-driver")):
        if shutil.which(program) is None:
            return f"{program} is not on PATH (apt-get install {package})"
    for module in ("uvicorn", "starlette", "jinja2"):
        if importlib.util.find_spec(module) is None:
            return f"{module} is not installed (pip install -e '.[dashboard]')"
    return None


@contextlib.contextmanager
def chrome(width: int = 1280, height: int = 900) -> Iterator[Any]:
    """A headless Chromium with the performance and browser logs kept; quit on exit."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = shutil.which("chromium") or "chromium"
    for arg in CHROME_ARGS:
        options.add_argument(arg)
    options.add_argument(f"--window-size={width},{height}")
    options.set_capability("goog:loggingPrefs", {"performance": "ALL", "browser": "ALL"})
    service = Service(executable_path=shutil.which("chromedriver") or "chromedriver")
    before = os.environ.get("SE_OFFLINE")
    os.environ["SE_OFFLINE"] = "true"  # Selenium Manager: never download a browser or a driver
    try:
        driver = webdriver.Chrome(options=options, service=service)
    finally:
        if before is None:
            del os.environ["SE_OFFLINE"]
        else:
            os.environ["SE_OFFLINE"] = before
    try:
        driver.set_page_load_timeout(20)
        yield driver
    finally:
        driver.quit()


def requests_sent(driver: Any) -> list[str]:
    """The URLs of every ``Network.requestWillBeSent`` in the performance log since it was last read (reading it
    empties it)."""
    urls = []
    for entry in driver.get_log("performance"):
        message = json.loads(entry["message"])["message"]
        if message.get("method") == "Network.requestWillBeSent":
            urls.append(str(message["params"]["request"]["url"]))
    return urls


@dataclass
class LiveServer:
    url: str
    server: Any
    thread: threading.Thread


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@contextlib.contextmanager
def serve_in_thread(app: Any, timeout_s: float = 10.0) -> Iterator[LiveServer]:
    """``app`` served by uvicorn on 127.0.0.1 (a free port, bound with the dashboard's own :func:`bind`), in a
    background thread; stopped and joined on exit."""
    import uvicorn

    from wattwise.netutil import bind

    for attempt in range(5):  # the probed port may be taken before we bind it
        port = _free_port()
        try:
            sock = bind("127.0.0.1", port)
            break
        except ConfigError:
            if attempt == 4:
                raise
    config = uvicorn.Config(app, log_level="warning", access_log=False, lifespan="off")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, name=f"uvicorn-{port}", daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + timeout_s
        while not server.started:
            if not thread.is_alive():
                raise RuntimeError("the dashboard server stopped before it started")
            if time.monotonic() > deadline:
                raise RuntimeError(f"the dashboard server did not start within {timeout_s} s")
            time.sleep(0.02)
        yield LiveServer(f"http://127.0.0.1:{port}", server, thread)
    finally:
        server.should_exit = True
        thread.join(timeout_s)
        sock.close()
        if thread.is_alive():
            raise RuntimeError("the dashboard server did not stop")
