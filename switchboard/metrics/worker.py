"""``manage.py runworker --metrics-port PORT``: a worker's metrics at
``http://127.0.0.1:PORT/metrics``, from a thread (as ``switchboard serve --metrics-port``).

What it serves: the channel layers' metrics (``switchboard_layer_*``), the default registry's
(process and GC), and for a gateway-mode worker (``runworker --gateway``)
``switchboard_gateway_worker_*``: the connections it serves now and its ``WorkerStats``
counters; for a task worker (``runworker --tasks``) ``switchboard_tasks_*``
(:mod:`switchboard.metrics.tasks`). The runners are read by their attributes (this package
imports neither ``switchboard.gateway`` nor ``switchboard.tasks``): a runner with ``served`` (a
mapping) and ``stats`` is a gateway worker; one with ``queues``, ``running`` and ``stats``
holding ``counts``, ``run_times`` and ``queue_depths`` is a task worker.
"""

from __future__ import annotations

import socket
from collections.abc import Iterable, Iterator, Mapping
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from switchboard.metrics import require_prometheus

if TYPE_CHECKING:
    from prometheus_client.core import Metric

    from switchboard.metrics.endpoint import MetricsEndpoint

__all__ = ["GatewayWorkerCollector", "WorkerMetricsEndpoint", "serve_worker_metrics"]

HOST = "127.0.0.1"

# WorkerStats counter -> help.
_COUNTERS = (
    ("connections_started", "Consumers started for relayed connections (resumed included)."),
    ("resumed", "Consumers started for connections moved here from another worker."),
    ("released", "Connections handed back to their gateway as this worker stopped."),
    ("failures", "Consumers that raised."),
    ("events_in", "Client events delivered to consumers."),
    ("stale_messages", "Gateway messages for a connection this worker no longer serves."),
    ("malformed_messages", "Malformed messages dropped."),
)


@runtime_checkable
class ServesRelayedConnections(Protocol):
    """What is read of a ``switchboard.gateway.worker.GatewayWorker``."""

    name: str
    served: Mapping[str, Any]
    stats: Any


class GatewayWorkerCollector:
    """``switchboard_gateway_worker_*`` of the gateway workers given (summed if several)."""

    def __init__(self, workers: Iterable[ServesRelayedConnections]) -> None:
        self.workers = list(workers)

    def collect(self) -> Iterator[Metric]:
        from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

        if not self.workers:
            return
        served = GaugeMetricFamily(
            "switchboard_gateway_worker_connections",
            "Relayed connections whose consumers this worker runs now.",
        )
        served.add_metric([], sum(len(worker.served) for worker in self.workers))
        yield served
        for attr, doc in _COUNTERS:
            family = CounterMetricFamily(f"switchboard_gateway_worker_{attr}", doc)
            family.add_metric([], sum(getattr(worker.stats, attr) for worker in self.workers))
            yield family


class WorkerMetricsEndpoint:
    """The running endpoint; :meth:`close` stops it and closes its socket."""

    def __init__(self, endpoint: MetricsEndpoint, sock: socket.socket) -> None:
        self.endpoint = endpoint
        self.address = endpoint.address
        self._sock = sock

    def close(self) -> None:
        self.endpoint.close()
        self._sock.close()


def serve_worker_metrics(port: int, runners: list[Any], host: str = HOST) -> WorkerMetricsEndpoint:
    """Serve the metrics of this worker process on ``host:port`` until closed.

    Raises :class:`~switchboard.metrics.MetricsUnavailableError` without ``prometheus_client``,
    and ``ListenError`` naming the address when the port cannot be bound.
    """
    require_prometheus()
    from prometheus_client import CollectorRegistry

    from switchboard.metrics.collectors import DefaultRegistryCollector, LayerCollector
    from switchboard.metrics.endpoint import MetricsEndpoint, bind_metrics_sockets
    from switchboard.metrics.tasks import TaskCollector, TaskStatsLike, WorkerRunningTasks

    gateway_workers = [r for r in runners if isinstance(r, ServesRelayedConnections)]
    task_workers = [
        r
        for r in runners
        if isinstance(r, WorkerRunningTasks) and isinstance(r.stats, TaskStatsLike)
    ]
    registry = CollectorRegistry(auto_describe=False)
    registry.register(LayerCollector())
    registry.register(GatewayWorkerCollector(gateway_workers))
    if task_workers:
        stats = [worker.stats for worker in task_workers]
        registry.register(TaskCollector(lambda: stats, task_workers))
    registry.register(DefaultRegistryCollector())
    (sock,) = bind_metrics_sockets(host, port, 1)
    endpoint = MetricsEndpoint(sock, registry)
    endpoint.start()  # logs "Metrics on http://..." (switchboard.server)
    return WorkerMetricsEndpoint(endpoint, sock)
