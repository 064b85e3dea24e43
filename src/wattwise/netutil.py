"""Listening on a port for wattwise's servers (the dashboard, the Prometheus exporter): one clear line when the
port is taken, the address unknown or the port privileged. The socket is bound before the server starts, so
"in use" is known at once and no other process can take the port in between."""

from __future__ import annotations

import errno
import socket

from wattwise import validate
from wattwise.errors import ConfigError
from wattwise.report.safe import printable

__all__ = ["bind"]


def bind(host: str, port: int) -> socket.socket:
    """A listening socket on host:port, or one clear line saying why not."""
    port = validate.PORT.check_int(port, "--port")
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror:
        raise ConfigError(f"cannot resolve host {printable(host)!r}; use an address such as 127.0.0.1") from None
    family, _, _, _, address = infos[0]
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind(address)
        sock.listen(128)
    except OSError as exc:
        sock.close()
        if exc.errno == errno.EADDRINUSE:
            raise ConfigError(
                f"port {port} on {printable(host)} is already in use; choose another with --port"
            ) from None
        if exc.errno in (errno.EACCES, errno.EPERM):
            raise ConfigError(f"not allowed to listen on port {port}; use a port above 1023") from None
        raise ConfigError(f"cannot listen on {printable(host)}:{port}: {exc.strerror}") from None
    sock.setblocking(False)
    return sock
