"""Gateway mode's metrics: ``switchboard_gateway_*`` of the gateways running in this process.

Read at scrape time, in the metrics thread, from plain state the gateway keeps anyway (see
``switchboard.gateway.hub``): its ``GatewayStats`` counters, its connections and their resend
buffers, the workers it knows. Containers are copied before they are iterated, since the event
loop may change them meanwhile.

This package sits below ``switchboard.gateway`` and does not import it: the hubs come from a
source given at the edge where the parts are joined (``switchboard serve`` passes
``switchboard.gateway.hub.running_hubs`` to :class:`~switchboard.metrics.ServerMetrics`), and
are read by their attributes.

The event latency (a client message reaching the gateway, to its worker acknowledging it) is a
histogram: the gateway appends each latency to ``GatewayStats.ack_latencies``, and the collector
moves them into its own cumulative buckets at each scrape (:mod:`switchboard.metrics.histogram`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from typing import Any

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

from .histogram import Histogram

__all__ = ["LATENCY_BUCKETS", "GatewayCollector", "HubsSource"]

# The gateway hubs running in this process (``GatewayHub`` objects, read by attribute).
HubsSource = Callable[[], Iterable[Any]]

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)

# GatewayStats counter -> (metric name, help).
_COUNTERS = (
    ("connections_relayed", "connections_relayed", "WebSocket connections relayed to workers."),
    ("moves", "moves", "Connections handed over to another worker (released or lost)."),
    ("resumed", "resumed", "Moved connections whose new consumer accepted them."),
    (
        "buffer_full",
        "buffer_full",
        "Times a connection's buffer of unread client messages filled and its socket stopped "
        "being read until the worker caught up.",
    ),
    ("stale_messages", "stale_messages", "Worker messages for a connection that had left it."),
    ("malformed_messages", "malformed_messages", "Malformed messages dropped."),
    ("workers_lost", "workers_lost", "Workers given up after they went silent."),
)
# GatewayStats counter -> the reason label of switchboard_gateway_closed.
_CLOSED = (
    ("closed_unmovable", "unmovable"),  # 1012: its worker left, its consumer cannot move
    ("closed_waiting", "wait_timeout"),  # 1013: no worker took it in time
    ("consumer_failures", "consumer_failed"),  # 1011 (500 before the accept)
)


class GatewayCollector:
    """``switchboard_gateway_*`` metrics of the hubs ``hubs()`` returns (summed if several);
    nothing while there is none."""

    def __init__(self, hubs: HubsSource, worker: int | None = None) -> None:
        self.hubs = hubs
        self.worker = worker
        self.latency = Histogram(LATENCY_BUCKETS)

    def collect(self) -> Iterator[Metric]:
        hubs = list(self.hubs())
        if not hubs:
            return
        names, values = (["worker"], [str(self.worker)]) if self.worker is not None else ([], [])
        stats = [hub.stats for hub in hubs]
        connections = [c for hub in hubs for c in list(hub.connections.values())]
        for hub_stats in stats:
            self.latency.drain(hub_stats.ack_latencies)

        def gauge(name: str, doc: str, value: float) -> Metric:
            family = GaugeMetricFamily(f"switchboard_gateway_{name}", doc, labels=names)
            family.add_metric(values, value)
            return family

        yield gauge("connections", "WebSocket connections held and relayed.", len(connections))
        yield gauge(
            "connections_waiting",
            "Connections waiting for a worker (new, or moving from a worker that left).",
            sum(len(hub.waiting) for hub in hubs),
        )
        workers = [w for hub in hubs for w in list(hub.directory.workers.values())]
        yield gauge("workers", "Workers this gateway knows (leaving ones included).", len(workers))
        # "worker" is the runworker's name here; a --workers slot, if any, is "server_worker".
        per_worker = GaugeMetricFamily(
            "switchboard_gateway_connections_by_worker",
            "Connections of this gateway each worker serves, by the worker's name.",
            labels=["server_worker", "worker"] if names else ["worker"],
        )
        counts: dict[str, int] = {}
        for known in workers:
            counts[known.name] = counts.get(known.name, 0) + len(known.connections)
        for name in sorted(counts):
            per_worker.add_metric([*values, name], counts[name])
        yield per_worker
        yield gauge(
            "buffered_messages",
            "Client messages kept until a worker's consumer has read them.",
            sum(len(connection.buffer) for connection in connections),
        )
        yield gauge(
            "buffered_bytes",
            "Payload bytes of the client messages kept until read.",
            sum(connection.buffer.pending_bytes for connection in connections),
        )

        def counter(name: str, doc: str) -> CounterMetricFamily:
            return CounterMetricFamily(f"switchboard_gateway_{name}", doc, labels=names)

        for attr, name, doc in _COUNTERS:
            family = counter(name, doc)
            family.add_metric(values, sum(getattr(s, attr) for s in stats))
            yield family
        closed = CounterMetricFamily(
            "switchboard_gateway_closed",
            "Connections the gateway closed itself, by reason: unmovable (1012, its worker "
            "left and its consumer cannot move), wait_timeout (1013, no worker took it in "
            "time), consumer_failed (1011, or 500 before the accept: the consumer raised).",
            labels=[*names, "reason"],
        )
        for attr, reason in _CLOSED:
            closed.add_metric([*values, reason], sum(getattr(s, attr) for s in stats))
        yield closed
        messages = CounterMetricFamily(
            "switchboard_gateway_messages",
            "Messages relayed, by direction (to_worker: from clients; to_client: from consumers).",
            labels=[*names, "direction"],
        )
        messages.add_metric([*values, "to_worker"], sum(s.client_to_worker for s in stats))
        messages.add_metric([*values, "to_client"], sum(s.worker_to_client for s in stats))
        yield messages
        yield self.latency.family(
            "switchboard_gateway_ack_latency_seconds",
            "Seconds from a client message reaching the gateway to its worker acknowledging "
            "it (acknowledgements are coalesced: up to 50 ms of that is by design).",
            names,
            values,
        )
