"""Collectors that turn the server's and the layers' integer counters into Prometheus metrics.

They run at scrape time, possibly in another thread than the event loop: they only read ints
and sizes, and copy containers before iterating them.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from typing import Any

from prometheus_client import REGISTRY, CollectorRegistry
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

from switchboard.layers.drops import KINDS as DROP_REASONS
from switchboard.server.runtime.counters import OVERFLOW_REASONS
from switchboard.server.runtime.state import ServerState

from .gateway import GatewayCollector, HubsSource
from .tasks import TaskCollector, imported_task_stats
from .transports import TransportCollector, imported_transport_stats

__all__ = ["DefaultRegistryCollector", "LayerCollector", "ServerCollector", "build_registry"]

StatesSource = Callable[[], list[ServerState]]
LayersSource = Callable[[], Mapping[str, Any]]


def _worker_labels(worker: int | None) -> tuple[list[str], list[str]]:
    return (["worker"], [str(worker)]) if worker is not None else ([], [])


class ServerCollector:
    """``switchboard_*`` metrics of the servers ``states()`` returns (summed if several)."""

    def __init__(self, states: StatesSource) -> None:
        self.states = states

    def collect(self) -> Iterator[Metric]:
        states = self.states()
        if not states:
            return
        worker = states[0].worker
        names, values = _worker_labels(worker)

        def gauge(name: str, doc: str, labels: tuple[str, ...] = ()) -> GaugeMetricFamily:
            return GaugeMetricFamily(name, doc, labels=[*names, *labels])

        def counter(name: str, doc: str, labels: tuple[str, ...] = ()) -> CounterMetricFamily:
            return CounterMetricFamily(name, doc, labels=[*names, *labels])

        def total(attr: str) -> int:
            return sum(getattr(state, attr) for state in states)

        websockets = total("websockets")
        connections = gauge(
            "switchboard_connections", "Open client connections, by protocol.", ("protocol",)
        )
        open_total = sum(len(state.connections) for state in states)
        connections.add_metric([*values, "http"], max(open_total - websockets, 0))
        connections.add_metric([*values, "websocket"], websockets)
        yield connections

        requests = counter("switchboard_http_requests", "HTTP requests received.")
        requests.add_metric(values, total("total_requests"))
        yield requests

        responses = counter(
            "switchboard_http_responses",
            "HTTP responses completed or abandoned, by status class.",
            ("status",),
        )
        for index in range(1, 6):
            count = sum(state.http_responses[index] for state in states)
            responses.add_metric([*values, f"{index}xx"], count)
        yield responses

        accepted = counter(
            "switchboard_websocket_connections", "WebSocket handshakes accepted (101)."
        )
        accepted.add_metric(values, total("ws_accepted"))
        yield accepted

        failures = counter(
            "switchboard_websocket_handshake_failures",
            "WebSocket handshakes answered with anything but 101 (refused, malformed, timed "
            "out, failed).",
        )
        failures.add_metric(values, total("ws_handshake_failures"))
        yield failures

        messages = counter(
            "switchboard_websocket_messages", "WebSocket messages, by direction.", ("direction",)
        )
        messages.add_metric([*values, "in"], total("ws_messages_in"))
        messages.add_metric([*values, "out"], total("ws_messages_out"))
        yield messages

        closes = counter(
            "switchboard_websocket_closes",
            "Accepted WebSocket connections ended, by close code (1006: no close frame).",
            ("code",),
        )
        codes: dict[int, int] = {}
        for state in states:
            for code, count in list(state.ws_closes.items()):
                codes[code] = codes.get(code, 0) + count
        for code in sorted(codes):
            closes.add_metric([*values, str(code)], codes[code])
        yield closes

        overflows = counter(
            "switchboard_websocket_overflow_closes",
            "WebSocket connections dropped because the client stopped reading, by reason "
            "(send_timeout: a send waited past --ws-send-timeout; control_backlog: pongs and "
            "pings piled up unread). Also counted in switchboard_websocket_closes as 1006.",
            ("reason",),
        )
        for reason in OVERFLOW_REASONS:
            count = sum(state.ws_overflow_closes[reason] for state in states)
            overflows.add_metric([*values, reason], count)
        yield overflows

        transferred = counter(
            "switchboard_bytes",
            "Bytes read from and written to client connections (HTTP and WebSocket, heads and "
            "framing included), by direction.",
            ("direction",),
        )
        transferred.add_metric([*values, "in"], total("bytes_in"))
        transferred.add_metric([*values, "out"], total("bytes_out"))
        yield transferred

        resets = counter(
            "switchboard_http2_streams_reset",
            "HTTP/2 streams their client reset before the response was complete (rapid reset, "
            "CVE-2023-44487, does it on purpose).",
        )
        resets.add_metric(values, total("h2_streams_reset"))
        yield resets

        refused = counter(
            "switchboard_http2_streams_refused",
            "HTTP/2 streams refused (REFUSED_STREAM) before any application saw them: too many "
            "at once, a client address over its reset budget, or after GOAWAY.",
        )
        refused.add_metric(values, total("h2_streams_refused"))
        yield refused


def _built_layers() -> Mapping[str, Any]:
    # The layers this process has built so far; reading the registry never builds one (and
    # so never reads Django's settings).
    from switchboard.layers.registry import channel_layers

    return channel_layers.backends


class LayerCollector:
    """``switchboard_layer_*`` metrics of every layer ``layers()`` returns, labelled by alias."""

    def __init__(self, layers: LayersSource = _built_layers, worker: int | None = None) -> None:
        self.layers = layers
        self.worker = worker

    def collect(self) -> Iterator[Metric]:
        names, values = _worker_labels(self.worker)
        labels = [*names, "layer"]
        sends = CounterMetricFamily(
            "switchboard_layer_sends", "Messages accepted by send().", labels=labels
        )
        group_sends = CounterMetricFamily(
            "switchboard_layer_group_sends", "group_send() calls.", labels=labels
        )
        fanout = CounterMetricFamily(
            "switchboard_layer_fanout_deliveries",
            "Copies of group messages delivered to receivers in this process.",
            labels=labels,
        )
        drops = CounterMetricFamily(
            "switchboard_layer_drops",
            "Messages dropped where no sender could be told, by reason (full: the receiving "
            "channel was at capacity; expired: unread past the layer's expiry).",
            labels=[*labels, "reason"],
        )
        depth = GaugeMetricFamily(
            "switchboard_layer_queue_depth",
            "Messages waiting in this process's local channel queues.",
            labels=labels,
        )
        reconnects = CounterMetricFamily(
            "switchboard_layer_reconnects",
            "Connections to the layer's backend made again after one was lost (Redis: pub/sub "
            "connections).",
            labels=labels,
        )
        for alias, layer in sorted(list(self.layers().items())):
            stats = getattr(layer, "stats", None)
            if stats is None:
                continue  # a third-party layer not built on BaseChannelLayer
            key = [*values, alias]
            sends.add_metric(key, stats.sends)
            group_sends.add_metric(key, stats.group_sends)
            fanout.add_metric(key, stats.fanout_deliveries)
            reconnects.add_metric(key, stats.reconnects)
            totals = layer.drops.totals
            for reason in DROP_REASONS:
                drops.add_metric([*key, reason], totals[reason])
            depth.add_metric(key, layer.queued_messages())
        yield from (sends, group_sends, fanout, drops, depth, reconnects)


class DefaultRegistryCollector:
    """What ``prometheus_client``'s default registry holds: process and GC metrics, and any
    metrics the application defined itself."""

    def collect(self) -> Iterator[Metric]:
        yield from REGISTRY.collect()


def build_registry(
    states: StatesSource, worker: int | None = None, gateway_hubs: HubsSource | None = None
) -> CollectorRegistry:
    """A registry with the server's, the layers', the tasks' (:mod:`switchboard.metrics.tasks`)
    and the default registry's metrics, and gateway mode's when ``gateway_hubs`` is given
    (:mod:`switchboard.metrics.gateway`)."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(ServerCollector(states))
    registry.register(LayerCollector(worker=worker))
    if gateway_hubs is not None:
        registry.register(GatewayCollector(gateway_hubs, worker=worker))
    # A web process's enqueued tasks (and an embedded worker's runs), once it has used tasks.
    registry.register(TaskCollector(imported_task_stats))
    registry.register(TransportCollector(imported_transport_stats, worker=worker))
    registry.register(DefaultRegistryCollector())
    return registry
