"""``--metrics-port``: the metrics over HTTP from a thread of each server process.

The listening sockets are bound before the workers are forked (like the server's own socket),
so a port in use fails at startup, and a worker replaced in a rolling restart serves on its
predecessor's socket without a race for the port. A thread, not the event loop, answers the
scrapes: metrics stay readable while an application keeps the loop busy, which is when an
operator needs them most.
"""

from __future__ import annotations

import logging
import socket
import threading
from http.server import ThreadingHTTPServer

from prometheus_client import CollectorRegistry, MetricsHandler

from switchboard.server.runtime.listen import ListenError
from switchboard.server.runtime.state import ServerState

from .collectors import build_registry
from .gateway import HubsSource

__all__ = ["MetricsEndpoint", "bind_metrics_sockets", "metrics_address"]

logger = logging.getLogger("switchboard.server")


def metrics_address(host: str, port: int) -> str:
    return f"http://[{host}]:{port}/metrics" if ":" in host else f"http://{host}:{port}/metrics"


def bind_metrics_sockets(host: str, port: int, workers: int) -> list[socket.socket]:
    """One listening socket per worker slot: ``port``, ``port + 1``, ...

    Raises :class:`~switchboard.server.runtime.listen.ListenError` naming the address in use.
    """
    socks: list[socket.socket] = []
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    for slot in range(workers):
        where = f"[{host}]:{port + slot}" if ":" in host else f"{host}:{port + slot}"
        sock = socket.socket(family, socket.SOCK_STREAM)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind((host, port + slot))
            sock.listen(64)
        except OSError as exc:
            sock.close()
            for other in socks:
                other.close()
            reason = exc.strerror or str(exc)
            raise ListenError(exc.errno, f"Cannot listen on {where} (metrics): {reason}") from exc
        socks.append(sock)
    return socks


class _HTTPServer(ThreadingHTTPServer):
    daemon_threads = True


class MetricsEndpoint:
    """Serves ``registry`` (any path, ``/metrics`` by convention) on an already bound socket."""

    def __init__(self, sock: socket.socket, registry: CollectorRegistry) -> None:
        sock.setblocking(True)
        server = _HTTPServer(
            sock.getsockname()[:2], MetricsHandler.factory(registry), bind_and_activate=False
        )
        server.socket.close()  # the one it made; ours is bound and listening already
        server.socket = sock
        self.server = server
        self.address = metrics_address(*sock.getsockname()[:2])
        self._thread = threading.Thread(
            target=server.serve_forever,
            kwargs={"poll_interval": 0.1},
            name="switchboard-metrics",
            daemon=True,
        )

    @classmethod
    def for_server(
        cls, sock: socket.socket, state: ServerState, gateway_hubs: HubsSource | None = None
    ) -> MetricsEndpoint:
        registry = build_registry(lambda: [state], worker=state.worker, gateway_hubs=gateway_hubs)
        return cls(sock, registry)

    def start(self) -> None:
        self._thread.start()
        logger.info("Metrics on %s", self.address)

    def close(self) -> None:
        """Stop answering. The socket stays open: the supervisor keeps it for a replacement
        worker (closing our copy would not close it for others anyway)."""
        if self._thread.is_alive():
            self.server.shutdown()
