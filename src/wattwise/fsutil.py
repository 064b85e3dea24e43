"""Files wattwise writes under its home (records kept when the store failed, the HTTP cache): private to the user.

Stored commands and provider answers may say more than their owner wants others on the machine to read, so every
file is created 0600 in a directory created 0700, and replaced atomically (a temporary name, then a rename), so a
crash never leaves half a file.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

__all__ = ["make_private_dirs", "write_private"]


def make_private_dirs(path: Path) -> None:
    """Create ``path`` and any missing parents, each 0700 (``mkdir(parents=True)`` gives parents the default mode)."""
    missing = []
    for folder in (path, *path.parents):
        if folder.exists():
            break
        missing.append(folder)
    for folder in reversed(missing):
        with contextlib.suppress(FileExistsError):  # another process made it meanwhile
            folder.mkdir(mode=0o700)


def write_private(path: Path, text: str) -> None:
    """Write ``text`` to a new file readable by its owner only (0600), in a directory only they can enter (0700),
    atomically (a temporary name, then a rename)."""
    make_private_dirs(path.parent)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | getattr(os, "O_NOFOLLOW", 0), 0o600)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
        tmp.replace(path)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise
