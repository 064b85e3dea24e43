"""Epoch reports from a command measured by ``wattwise run``, so its live panel and record can predict the run.

The command (or any process it starts) calls :func:`report_epoch` at the end of each epoch. ``wattwise run``
listens on a Unix datagram socket whose path it passes in ``WATTWISE_EPOCH_SOCKET``; each datagram ends an
epoch in the parent's tracker, which reads its counters at that moment. Outside ``wattwise run`` the call does
nothing and returns False, so a training script can call it unconditionally.
"""

from __future__ import annotations

import contextlib
import os
import socket
import tempfile
import threading
from collections.abc import Callable
from pathlib import Path

ENV_VAR = "WATTWISE_EPOCH_SOCKET"
_MAX_DATAGRAM = 256
_STOP = b"\0stop"


def report_epoch(planned: int | None = None) -> bool:
    """Tell ``wattwise run`` that an epoch ended (``planned``: the run's total epochs, if known).

    Returns True when a ``wattwise run`` parent received it, False when there is none (not an error).
    """
    path = os.environ.get(ENV_VAR)
    if not path or not hasattr(socket, "AF_UNIX"):
        return False
    message = b"epoch" if planned is None else f"epoch {int(planned)}".encode()
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
            sock.sendto(message, path)
    except OSError:
        return False
    return True


class EpochListener:
    """The parent side: a socket in a private temporary directory and a thread that calls ``on_epoch``."""

    def __init__(self, on_epoch: Callable[[int | None], None]) -> None:
        self._on_epoch = on_epoch
        # wattwise-<pid>-…: a directory left by a killed wattwise is removed at the next start (see supervise)
        self._dir = Path(tempfile.mkdtemp(prefix=f"wattwise-{os.getpid()}-"))
        self.path = str(self._dir / "epochs.sock")
        self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self._sock.bind(self.path)
        self._closing = threading.Event()
        self.errors: list[str] = []
        self._thread = threading.Thread(target=self._serve, name="wattwise-epochs", daemon=True)
        self._thread.start()

    def env(self) -> dict[str, str]:
        return {ENV_VAR: self.path}

    def _serve(self) -> None:
        while True:
            try:
                data = self._sock.recv(_MAX_DATAGRAM)
            except OSError:
                break
            if data == _STOP and self._closing.is_set():
                break
            self._handle(data)

    def _handle(self, data: bytes) -> None:
        parts = data.decode(errors="replace").split()
        if not parts or parts[0] != "epoch":
            self.errors.append(f"ignored an epoch report that was not understood: {data[:40]!r}")
            return
        planned: int | None = None
        if len(parts) > 1:
            try:
                planned = int(parts[1])
            except ValueError:
                self.errors.append(f"ignored a planned epoch count that is not a number: {parts[1][:20]!r}")
        self._on_epoch(planned if planned is not None and planned > 0 else None)

    def close(self) -> None:
        """Stop listening after handling what was already sent; remove the socket and its directory."""
        self._closing.set()
        with contextlib.suppress(OSError), socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as waker:
            waker.sendto(_STOP, self.path)  # datagrams arrive in order: everything sent before is handled
        self._thread.join(timeout=5.0)
        self._sock.close()
        with contextlib.suppress(OSError):
            Path(self.path).unlink()
        with contextlib.suppress(OSError):
            self._dir.rmdir()
