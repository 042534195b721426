"""Gateway mode's metrics, scraped from real processes: ``switchboard serve --gateway
--metrics-port`` and ``manage.py runworker --gateway --metrics-port`` of
tests/sites/gateway_site on a real redis-server, with a real WebSocket client between them."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from websockets.sync.client import connect

from switchboard.metrics.histogram import Histogram
from tests.server.serve_process import Serving
from tests.support.example_server import free_port
from tests.support.gateway_processes import Deployment, redis_layers
from tests.support.metrics_scrape import scrape, scrape_until, value
from tests.support.redis_servers import RedisServer

pytestmark = pytest.mark.timeout(60)

MESSAGES = 5


@pytest.fixture
def deployment(tmp_path: Path) -> Iterator[Deployment]:
    with RedisServer() as redis:
        deployed = Deployment(tmp_path, redis_layers(redis.url))
        try:
            yield deployed
        finally:
            deployed.close()


def test_gateway_and_worker_metrics_show_the_relayed_connection(deployment: Deployment) -> None:
    gateway_port, worker_port = free_port(), free_port()
    gateway, address = deployment.gateway("--metrics-port", str(gateway_port))
    worker = deployment.worker("--metrics-port", str(worker_port))
    worker.wait_for("serving")  # logged once it is on the layer, after the command's banner
    found = re.search(r"Gateway worker (.+?) \(\S+\) serving", worker.output())
    assert found, worker.output()
    name = found.group(1)
    gateway.wait_for(f"Worker {name} (")  # ... joined

    idle = scrape(gateway_port)
    assert value(idle, "switchboard_gateway_workers") == 1
    assert value(idle, "switchboard_gateway_connections") == 0
    assert value(idle, "switchboard_gateway_connections_by_worker", worker=name) == 0

    with connect(f"ws://{address}/ws/echo/", open_timeout=10) as ws:
        for number in range(MESSAGES):
            ws.send(f"m{number}")
            reply: Any = json.loads(ws.recv(timeout=10))
            assert reply["echo"] == f"m{number}" and reply["resumed"] is False
        # Acknowledgements are coalesced (50 ms): the latencies arrive a little later.
        seen = scrape_until(
            gateway_port,
            lambda s: (
                s.get(("switchboard_gateway_ack_latency_seconds_count", frozenset()), 0) >= MESSAGES
            ),
        )
        served = scrape(worker_port)

    assert value(seen, "switchboard_gateway_connections") == 1
    assert value(seen, "switchboard_gateway_connections_waiting") == 0
    assert value(seen, "switchboard_gateway_connections_by_worker", worker=name) == 1
    assert value(seen, "switchboard_gateway_connections_relayed_total") == 1
    assert value(seen, "switchboard_gateway_messages_total", direction="to_worker") == MESSAGES
    assert value(seen, "switchboard_gateway_messages_total", direction="to_client") == MESSAGES
    assert value(seen, "switchboard_gateway_buffered_messages") == 0
    assert value(seen, "switchboard_gateway_buffered_bytes") == 0
    for counter in ("moves", "resumed", "workers_lost", "buffer_full", "malformed_messages"):
        assert value(seen, f"switchboard_gateway_{counter}_total") == 0, counter
    for reason in ("unmovable", "wait_timeout", "consumer_failed"):
        assert value(seen, "switchboard_gateway_closed_total", reason=reason) == 0
    count = value(seen, "switchboard_gateway_ack_latency_seconds_count")
    assert count == value(seen, "switchboard_gateway_ack_latency_seconds_bucket", le="+Inf")
    assert 0 < value(seen, "switchboard_gateway_ack_latency_seconds_sum") < count * 5
    # The server's own metrics are still there: the gateway holds the socket.
    assert value(seen, "switchboard_connections", protocol="websocket") == 1

    assert value(served, "switchboard_gateway_worker_connections") == 1
    assert value(served, "switchboard_gateway_worker_connections_started_total") == 1
    assert value(served, "switchboard_gateway_worker_resumed_total") == 0
    assert value(served, "switchboard_gateway_worker_failures_total") == 0
    assert value(served, "switchboard_gateway_worker_events_in_total") >= MESSAGES
    assert value(served, "switchboard_layer_sends_total", layer="default") > 0

    # Closed: both sides let go of it.
    scrape_until(gateway_port, lambda s: s[("switchboard_gateway_connections", frozenset())] == 0)
    scrape_until(
        worker_port, lambda s: s[("switchboard_gateway_worker_connections", frozenset())] == 0
    )


def test_a_server_without_gateway_mode_serves_no_gateway_metrics(tmp_path: Path) -> None:
    port, metrics_port = free_port(), free_port()
    server = Serving(
        tmp_path / "err.log",
        "tests.server.metrics_site:application",
        "--port",
        str(port),
        "--metrics-port",
        str(metrics_port),
    )
    try:
        server.wait_for("Listening on")
        samples = scrape(metrics_port)
    finally:
        server.close()
    assert ("switchboard_http_requests_total", frozenset()) in samples
    assert not [name for name, _ in samples if name.startswith("switchboard_gateway")]


def test_the_latency_histogram_takes_each_value_once_and_keeps_later_ones() -> None:
    histogram = Histogram((0.01, 0.1))
    latencies = [0.005, 0.05, 0.5, 0.01]
    histogram.drain(latencies)
    assert latencies == []
    latencies.append(0.2)
    histogram.drain(latencies)
    histogram.drain(latencies)  # nothing new: nothing counted twice
    family = histogram.family("h", "doc", [], [])
    got = {(s.name, s.labels.get("le")): s.value for s in family.samples}
    assert got[("h_bucket", "0.01")] == 2  # 0.005 and 0.01 (le: at most)
    assert got[("h_bucket", "0.1")] == 3
    assert got[("h_bucket", "+Inf")] == got[("h_count", None)] == 5
    assert got[("h_sum", None)] == pytest.approx(0.765)
