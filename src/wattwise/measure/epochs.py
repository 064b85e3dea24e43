"""Reports from a command measured by ``wattwise run``: epochs (so its live panel and record can predict the run)
and served work (so its record gives energy per token and per request).

The command (or any process it starts) calls :func:`report_epoch` at the end of each epoch, and
:func:`report_work` as it serves tokens and requests. ``wattwise run`` listens on a Unix datagram socket whose path
it passes in ``WATTWISE_EPOCH_SOCKET``; an ``epoch [planned]`` datagram ends an epoch in the parent's tracker, which
reads its counters at that moment; a ``work TOKENS REQUESTS PROMPT_TOKENS`` datagram adds to the run's counts
(:mod:`wattwise.measure.work`). Outside ``wattwise run`` both calls do nothing and return False, so a script can
call them unconditionally. A datagram that is not understood is ignored and kept in ``errors``.
"""

from __future__ import annotations

import contextlib
import os
import re
import socket
import tempfile
import threading
from collections.abc import Callable
from pathlib import Path

from wattwise.errors import WattwiseError
from wattwise.measure.work import Count, counted

ENV_VAR = "WATTWISE_EPOCH_SOCKET"
_MAX_DATAGRAM = 256
_PLAIN_NUMBER = re.compile(r"\d+(\.\d*)?(e[+-]?\d+)?")  # what report_work sends: repr() of a finite float
_STOP = b"\0stop"


def report_epoch(planned: int | None = None) -> bool:
    """Tell ``wattwise run`` that an epoch ended (``planned``: the run's total epochs, if known).

    Returns True when a ``wattwise run`` parent received it, False when there is none (not an error).
    """
    path = os.environ.get(ENV_VAR)
    if not path or not hasattr(socket, "AF_UNIX"):
        return False
    return _send(path, b"epoch" if planned is None else f"epoch {int(planned)}".encode())


def report_work(tokens: Count = None, requests: Count = None, prompt_tokens: Count = None) -> bool:
    """Tell ``wattwise run`` that the command served work: ``tokens`` generated (output) tokens, ``requests``
    requests answered, ``prompt_tokens`` prompt tokens read (as :meth:`Tracker.count <wattwise.Tracker.count>`).

    The counts are checked here, in or out of ``wattwise run`` (ConfigError for a negative, NaN, bool or absurd
    one), so a script fails the same way everywhere. Returns True when a ``wattwise run`` parent received them,
    False when there is none (not an error).
    """
    work = counted(tokens, requests, prompt_tokens, "report_work")
    path = os.environ.get(ENV_VAR)
    if not path or not hasattr(socket, "AF_UNIX"):
        return False
    return _send(path, f"work {work.output_tokens!r} {work.requests!r} {work.prompt_tokens!r}".encode())


def _send(path: str, message: bytes) -> bool:
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
            sock.sendto(message, path)
    except OSError:
        return False
    return True


class EpochListener:
    """The parent side: a socket in a private temporary directory and a thread that calls ``on_epoch`` (and
    ``on_work`` with the output tokens, requests and prompt tokens of each work report). A report ``on_work`` refuses
    (ValueError, or a WattwiseError such as ConfigError) is ignored and kept in ``errors``."""

    def __init__(
        self, on_epoch: Callable[[int | None], None], on_work: Callable[[float, float, float], None] | None = None
    ) -> None:
        self._on_epoch = on_epoch
        self._on_work = on_work
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
        if parts and parts[0] == "work":
            self._handle_work(parts[1:], data)
            return
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

    def _handle_work(self, counts: list[str], data: bytes) -> None:
        if self._on_work is None or len(counts) != 3:
            self.errors.append(f"ignored a work report that was not understood: {data[:60]!r}")
            return
        try:
            if any(not _PLAIN_NUMBER.fullmatch(part) for part in counts):  # float() also reads "1_000" and "nan"
                raise ValueError(counts)
            tokens, requests, prompt_tokens = (float(part) for part in counts)
            self._on_work(tokens, requests, prompt_tokens)
        except (ValueError, WattwiseError) as exc:  # not numbers, or counts the tracker refused
            self.errors.append(f"ignored a work report ({data[:60]!r}): {exc}")

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
