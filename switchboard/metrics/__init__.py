"""Prometheus metrics for the server and the channel layers.

Needs ``prometheus_client``: ``pip install "switchboard[metrics]"``.

Nothing is counted through ``prometheus_client`` as things happen: the server keeps plain
integer counters on its :class:`~switchboard.server.runtime.state.ServerState` and every layer
on its :class:`~switchboard.layers.stats.LayerStats`; the collectors here read them when
Prometheus scrapes. Two ways to expose them:

* ``switchboard serve --metrics-port PORT`` (:mod:`switchboard.metrics.endpoint`): a small
  HTTP endpoint in a thread of each server process, answering even while the event loop is
  busy. With ``--workers N``, worker ``k`` answers on ``PORT + k`` with a ``worker="k"`` label.
  The server starts it through :class:`ServerMetrics`, the hook ``switchboard serve`` passes
  it (``Config.metrics``): the server itself imports nothing of this package.
* ``path("metrics/", switchboard.metrics.django.metrics_view)``: the same metrics from inside a
  Django project, for the process that serves the request.

Gateway mode adds ``switchboard_gateway_*`` metrics to a gateway's endpoint
(:mod:`switchboard.metrics.gateway`), and ``manage.py runworker --metrics-port`` serves a
worker's own (:mod:`switchboard.metrics.worker`).

This package does not import Django, except :mod:`switchboard.metrics.django`.
"""

from __future__ import annotations

import socket
from collections.abc import Callable, Iterable
from typing import Any

from switchboard.server.runtime.metrics_hook import MetricsSetupError, RunningEndpoint
from switchboard.server.runtime.state import ServerState

__all__ = ["INSTALL_HINT", "MetricsUnavailableError", "ServerMetrics", "require_prometheus"]

INSTALL_HINT = 'pip install "switchboard[metrics]"'


class MetricsUnavailableError(MetricsSetupError):
    """Metrics were asked for but ``prometheus_client`` is not installed."""


def require_prometheus() -> None:
    """Raise :class:`MetricsUnavailableError` (with the install hint) unless the
    ``prometheus_client`` package can be imported."""
    try:
        import prometheus_client  # noqa: F401
    except ImportError as exc:
        raise MetricsUnavailableError(
            f"metrics need the prometheus_client package ({exc}); install it with: {INSTALL_HINT}"
        ) from exc


class ServerMetrics:
    """The server's ``--metrics-port`` hook (``switchboard.server.runtime.metrics_hook``):
    Prometheus metrics of the server and the channel layers, one endpoint per worker.

    ``gateway_hubs`` adds gateway mode's metrics (:mod:`switchboard.metrics.gateway`): a
    callable returning the gateway hubs running in the process
    (``switchboard.gateway.hub.running_hubs``), given by the entry point, as this package
    does not import the gateway."""

    def __init__(self, gateway_hubs: Callable[[], Iterable[Any]] | None = None) -> None:
        self.gateway_hubs = gateway_hubs

    def require(self) -> None:
        require_prometheus()

    def bind(self, host: str, port: int, slots: int) -> list[socket.socket]:
        from switchboard.metrics.endpoint import bind_metrics_sockets

        return bind_metrics_sockets(host, port, slots)

    def start(self, sock: socket.socket, state: ServerState) -> RunningEndpoint:
        from switchboard.metrics.endpoint import MetricsEndpoint

        endpoint = MetricsEndpoint.for_server(sock, state, self.gateway_hubs)
        endpoint.start()
        return endpoint
