"""``--metrics-port`` as a hook: the server binds the endpoint's sockets and starts it through
an object it is given (``Config.metrics``), so that it imports no metrics library.

``switchboard serve`` passes :class:`switchboard.metrics.ServerMetrics` (Prometheus); code
that builds its own :class:`~switchboard.server.runtime.config.Config` with ``metrics_port``
passes it (or any object with these three methods) as ``metrics``.
"""

from __future__ import annotations

import socket
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from switchboard.server.runtime.config import Config
    from switchboard.server.runtime.state import ServerState

__all__ = ["MetricsHook", "MetricsSetupError", "RunningEndpoint", "metrics_hook"]


class MetricsSetupError(RuntimeError):
    """``metrics_port`` was given but metrics cannot be served: no hook, or a hook that cannot
    work (``switchboard.metrics.MetricsUnavailableError``: ``prometheus_client`` missing)."""


class RunningEndpoint(Protocol):
    """A running endpoint."""

    def close(self) -> None:
        """Stop answering (the socket stays open: the supervisor keeps it for a successor)."""
        ...


class MetricsHook(Protocol):
    """What serves ``--metrics-port``."""

    def require(self) -> None:
        """Raise :class:`MetricsSetupError` if metrics cannot be served, before anything is
        imported or bound."""
        ...

    def bind(self, host: str, port: int, slots: int) -> list[socket.socket]:
        """One listening socket per worker slot (``port``, ``port + 1``...), bound before any
        worker starts; raises ``ListenError`` naming the address."""
        ...

    def start(self, sock: socket.socket, state: ServerState) -> RunningEndpoint:
        """Serve the metrics of the server whose state is ``state`` on ``sock``, from a thread
        of its own, until the endpoint is closed."""
        ...


def metrics_hook(config: Config) -> MetricsHook:
    """The hook that serves ``config.metrics_port``."""
    if config.metrics is None:
        raise MetricsSetupError(
            "metrics_port needs a metrics hook: Config(metrics=...), such as "
            "switchboard.metrics.ServerMetrics() (switchboard serve passes that one)"
        )
    return config.metrics
