"""Listening sockets: bound once, before any worker or application starts."""

from __future__ import annotations

import os
import socket

from switchboard.server.runtime.config import Config
from switchboard.server.runtime.metrics_hook import metrics_hook


class ListenError(OSError):
    """The listening socket could not be set up (port in use, no permission, bad fd...)."""

    def __str__(self) -> str:
        return str(self.args[-1]) if self.args else super().__str__()


def bind_socket(config: Config) -> socket.socket:
    """The listening socket the config names (shared by worker processes when forking).

    Raises :class:`ListenError` (an ``OSError`` with the original ``errno``) with a message
    that names the address.
    """
    sock: socket.socket | None = None
    try:
        if config.fd is not None:
            sock = socket.socket(fileno=config.fd)
        elif config.uds:
            if os.path.exists(config.uds):
                os.unlink(config.uds)
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            sock.bind(config.uds)
            os.chmod(config.uds, 0o666)
        else:
            family = socket.AF_INET6 if ":" in config.host else socket.AF_INET
            sock = socket.socket(family, socket.SOCK_STREAM)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind((config.host, config.port))
        sock.listen(config.backlog)
    except OSError as exc:
        if sock is not None and config.fd is None:
            sock.close()
        reason = exc.strerror or str(exc)
        where = _configured_address(config)
        raise ListenError(exc.errno, f"Cannot listen on {where}: {reason}") from exc
    sock.setblocking(False)
    return sock


def _configured_address(config: Config) -> str:
    if config.fd is not None:
        return f"fd {config.fd}"
    if config.uds:
        return f"unix:{config.uds}"
    host = f"[{config.host}]" if ":" in config.host else config.host
    return f"{host}:{config.port}"


def listening_address(sock: socket.socket, fd: int | None = None, scheme: str = "http") -> str:
    """What to tell an operator: ``http://127.0.0.1:8000``, ``unix:/path``, ``fd 3 (...)``."""
    name = sock.getsockname()
    if sock.family == socket.AF_UNIX:
        path = name.decode(errors="replace") if isinstance(name, bytes) else name
        where = f"unix:{path}"
    else:
        host, port = name[:2]
        where = f"{scheme}://[{host}]:{port}" if ":" in host else f"{scheme}://{host}:{port}"
    return where if fd is None else f"fd {fd} ({where})"


def bind_metrics_sockets(config: Config) -> list[socket.socket]:
    """The --metrics-port sockets, one per worker slot (none without --metrics-port)."""
    if config.metrics_port is None:
        return []
    hook = metrics_hook(config)
    return hook.bind(config.metrics_host, config.metrics_port, max(config.workers, 1))
