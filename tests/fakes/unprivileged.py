"""Run a check as an unprivileged user, so permission errors are real even when the tests run as root."""

from __future__ import annotations

import os
from collections.abc import Callable

NOBODY = 65534


def as_unprivileged(check: Callable[[], str]) -> str:
    """``check()`` as "nobody" in a forked child when we are root (root reads any file whatever its mode), else
    here. The child reports its string through a pipe; an unexpected exception is reported as text."""
    if os.geteuid() != 0:
        return check()
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:
        try:
            os.close(read_end)
            os.setgid(NOBODY)
            os.setuid(NOBODY)
            try:
                message = check()
            except BaseException as exc:
                message = f"unexpected {exc!r}"
            os.write(write_end, message.encode())
        finally:
            os._exit(0)
    os.close(write_end)
    chunks = []
    while chunk := os.read(read_end, 65536):
        chunks.append(chunk)
    os.close(read_end)
    os.waitpid(pid, 0)
    return b"".join(chunks).decode()
