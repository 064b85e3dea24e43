"""A real PostgreSQL server for the store's tests: Debian's postgresql, a fresh cluster in a temporary directory,
listening on 127.0.0.1 on a free port, stopped by its process id.

Run as root (CI), the cluster belongs to the ``postgres`` user the Debian package creates (the server refuses to
run as root); otherwise to the current user. ``scripts/test.sh`` installs the package where it is missing.
"""

from __future__ import annotations

import itertools
import os
import shutil
import signal
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

__all__ = ["PgServer", "missing", "start"]

USER = "wattwise"


def _bin_dir() -> Path | None:
    found = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"), key=lambda p: int(p.parts[-3]))
    if found:
        return found[-1].parent
    initdb = shutil.which("initdb")
    return None if initdb is None else Path(initdb).parent


def missing() -> str | None:
    """Why no server can be started here, or None."""
    try:
        import psycopg  # noqa: F401
    except ImportError:
        return "psycopg is not installed"
    if _bin_dir() is None:
        return "PostgreSQL's initdb is not installed (apt-get install postgresql)"
    if os.geteuid() == 0 and shutil.which("runuser") is None:
        return "running as root without runuser to drop to the postgres user"
    return None


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@dataclass
class PgServer:
    root: Path
    port: int
    pid: int
    _names: itertools.count[int] = field(default_factory=itertools.count)

    def url(self, database: str = "postgres") -> str:
        return f"postgresql://{USER}@127.0.0.1:{self.port}/{database}"

    def new_database(self) -> str:
        """A fresh, empty database's URL."""
        import psycopg

        name = f"t{os.getpid()}_{next(self._names)}"
        with psycopg.connect(self.url(), autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')  # a name made here, not from input
        return self.url(name)

    def stop(self) -> None:
        """Stop the server by its process id and remove its directory."""
        try:
            os.kill(self.pid, signal.SIGINT)  # "fast" shutdown
            for _ in range(200):
                if _gone(self.pid):
                    break
                time.sleep(0.05)
            else:
                os.kill(self.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        shutil.rmtree(self.root, ignore_errors=True)


def _gone(pid: int) -> bool:
    """Whether the server has exited (reaped here when pg_ctl left it as this process's child)."""
    try:
        done, _ = os.waitpid(pid, os.WNOHANG)
        return done == pid
    except ChildProcessError:  # not our child: ask the kernel
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        return False


def start() -> PgServer:
    """A new cluster in a new temporary directory (outside pytest's, which the postgres user cannot enter),
    started and ready. :meth:`PgServer.stop` stops it and removes the directory."""
    import tempfile

    bin_dir = _bin_dir()
    assert bin_dir is not None
    root = Path(tempfile.mkdtemp(prefix="wattwise-pg-"))
    root.chmod(0o755)
    prefix: list[str] = []
    if os.geteuid() == 0:
        shutil.chown(root, "postgres")
        prefix = ["runuser", "-u", "postgres", "--"]
    data = root / "data"
    subprocess.run(
        [*prefix, str(bin_dir / "initdb"), "-D", str(data), "-U", USER, "--auth=trust", "-E", "UTF8", "--no-locale"],
        check=True,
        capture_output=True,
        timeout=120,
    )
    port = _free_port()
    options = f"-p {port} -k {root} -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=60"
    subprocess.run(
        [*prefix, str(bin_dir / "pg_ctl"), "-D", str(data), "-o", options, "-l", str(root / "log"), "-w", "start"],
        check=True,
        capture_output=True,
        timeout=120,
    )
    pid = int((data / "postmaster.pid").read_text().splitlines()[0])
    return PgServer(root, port, pid)
