"""Prometheus metrics and the access log, read from a real ``switchboard serve`` subprocess.

Real traffic (urllib, raw sockets, the ``websockets`` client, a consumer's group_send through
the in-memory layer), then ``/metrics`` scraped over HTTP and parsed with prometheus_client's
own parser: every counter must have moved by exactly what the traffic did.
"""

from __future__ import annotations

import asyncio
import os
import re
import socket
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus

from tests.server.serve_process import ROOT, Serving, free_port, run_serve, serve_command
from tests.support.http_status import get_status

APP = "tests.server.metrics_site:application"
Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def scrape(port: int, path: str = "/metrics") -> Samples:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=10) as response:
        assert response.status == 200
        text = response.read().decode()
    samples: Samples = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            samples[(sample.name, frozenset(sample.labels.items()))] = sample.value
    return samples


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples[(name, frozenset(labels.items()))]


def delta(before: Samples, after: Samples, name: str, **labels: str) -> float:
    return value(after, name, **labels) - before.get((name, frozenset(labels.items())), 0.0)


def wait_until(check, timeout: float = 10.0, what: str = "condition"):
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


def malformed_handshake(port: int) -> bytes:
    """An upgrade with an unsupported Sec-WebSocket-Version: refused with a 4xx before the
    application sees it (RFC 6455 section 4.4)."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(
            b"GET /ws/echo/ HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n"
            b"Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
            b"Sec-WebSocket-Version: 12\r\n\r\n"
        )
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
        return data


@pytest.fixture(scope="module")
def served(tmp_path_factory) -> Iterator[tuple[Serving, int, int]]:
    port, metrics_port = free_port(), free_port()
    log = tmp_path_factory.mktemp("metrics") / "err.log"
    server = Serving(log, APP, "--port", str(port), "--metrics-port", str(metrics_port))
    try:
        server.wait_for("Listening on")
        server.wait_for(f"Metrics on http://127.0.0.1:{metrics_port}/metrics")
        yield server, port, metrics_port
    finally:
        server.close()


async def test_counters_move_by_what_real_traffic_did(served) -> None:
    server, port, metrics_port = served
    before = await asyncio.to_thread(scrape, metrics_port)

    statuses = [await asyncio.to_thread(get_status, port, p) for p in ("/", "/", "/?a=1", "/nope")]
    assert statuses == [200, 200, 200, 404]

    url = f"ws://127.0.0.1:{port}"
    async with connect(f"{url}/ws/echo/") as echo:
        for i in range(5):
            await echo.send(f"echo {i}")
            assert await asyncio.wait_for(echo.recv(), 5) == f"echo {i}"
        async with connect(f"{url}/ws/room/") as alice, connect(f"{url}/ws/room/") as bob:
            during = await asyncio.to_thread(scrape, metrics_port)
            assert delta(before, during, "switchboard_connections", protocol="websocket") == 3
            # Two group_sends, each fanned out to both members of the room.
            await alice.send("one")
            await alice.send("two")
            for client in (alice, bob):
                assert [await asyncio.wait_for(client.recv(), 5) for _ in range(2)] == [
                    "one",
                    "two",
                ]
    with pytest.raises(InvalidStatus) as denied:
        await connect(f"{url}/ws/deny/")
    assert denied.value.response.status_code == 403
    assert (await asyncio.to_thread(malformed_handshake, port)).startswith(b"HTTP/1.1 4")

    def settled() -> dict | None:
        # Close codes are counted when each connection ends on the server's side.
        now = scrape(metrics_port)
        done = delta(before, now, "switchboard_websocket_closes_total", code="1000") == 3
        gone = value(now, "switchboard_connections", protocol="websocket") == 0
        return now if done and gone else None

    after = await asyncio.to_thread(wait_until, settled, 10.0, "the WebSockets to close")

    assert delta(before, after, "switchboard_http_requests_total") == 4
    assert delta(before, after, "switchboard_http_responses_total", status="2xx") == 3
    assert delta(before, after, "switchboard_http_responses_total", status="4xx") == 1
    assert delta(before, after, "switchboard_http_responses_total", status="5xx") == 0
    assert delta(before, after, "switchboard_websocket_connections_total") == 3
    assert delta(before, after, "switchboard_websocket_handshake_failures_total") == 2
    # In: 5 echo messages and alice's 2. Out: 5 echoes and 2 x 2 room messages.
    assert delta(before, after, "switchboard_websocket_messages_total", direction="in") == 7
    assert delta(before, after, "switchboard_websocket_messages_total", direction="out") == 9
    # Bytes: at least every request line and payload; the exact heads are the client's.
    assert delta(before, after, "switchboard_bytes_total", direction="in") > 4 * 40 + 7 * 5
    assert delta(before, after, "switchboard_bytes_total", direction="out") > 4 * 60 + 9 * 5
    layer = {"layer": "default"}
    assert delta(before, after, "switchboard_layer_group_sends_total", **layer) == 2
    assert delta(before, after, "switchboard_layer_fanout_deliveries_total", **layer) == 4
    assert delta(before, after, "switchboard_layer_drops_total", reason="full", **layer) == 0
    assert value(after, "switchboard_layer_queue_depth", **layer) == 0
    assert value(after, "switchboard_layer_reconnects_total", **layer) == 0
    assert value(after, "switchboard_connections", protocol="http") == 0
    # The default registry comes along: process metrics of the serving process.
    assert value(after, "process_open_fds") > 0


def test_access_log_lines_share_one_format(served) -> None:
    server, port, _ = served
    assert get_status(port, "/?logged=1") == 200

    async def chat() -> None:
        async with connect(f"ws://127.0.0.1:{port}/ws/echo/?logged=1") as ws:
            for text in ("a", "b", "c"):
                await ws.send(text)
                await ws.recv()
        with pytest.raises(InvalidStatus):
            await connect(f"ws://127.0.0.1:{port}/ws/deny/?logged=1")

    asyncio.run(chat())
    stderr = server.wait_for('"WEBSOCKET /ws/echo/?logged=1" closed')
    server.wait_for('"WEBSOCKET /ws/deny/?logged=1 HTTP/1.1" 403')
    stderr = server.stderr
    client = r"127\.0\.0\.1:\d+ - "
    ms = r"\d+\.\dms$"
    for request, rest in (
        ("GET /\\?logged=1", r"200 \d+ "),
        ("WEBSOCKET /ws/echo/\\?logged=1", "101 - "),
        ("WEBSOCKET /ws/deny/\\?logged=1", "403 - "),
    ):
        pattern = client + f'"{request} HTTP/1\\.1" {rest}' + ms
        assert re.search(pattern, stderr, re.M), (pattern, stderr)
    # The client sent the first close frame (the websockets client closes with 1000).
    assert re.search(
        client + r'"WEBSOCKET /ws/echo/\?logged=1" closed 1000 by client after \d+\.\ds, '
        r"3 in / 3 out$",
        stderr,
        re.M,
    ), stderr
    # Every access line, HTTP or WebSocket, starts with the client and the quoted request
    # ("-" for a request whose head could not be parsed, see the test below).
    access = [line for line in stderr.splitlines() if "switchboard.server.access:" in line]
    assert access and all(
        re.search(r"access: " + client + '("[A-Z]+ /|"-")', line) for line in access
    )


def _raw(port: int, data: bytes) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(data)
        received = b""
        while chunk := sock.recv(65536):
            received += chunk
        return received


def test_requests_the_server_refuses_are_logged_and_counted(served) -> None:
    # No application sees them, but an operator does: like nginx, which logs its own 400s
    # and 413s. The size is the bytes of the server's response; the time is "-".
    server, port, metrics_port = served
    before = scrape(metrics_port)
    garbage = _raw(port, b"NOT HTTP AT ALL\r\n\r\n")
    too_big = _raw(
        port,
        b"POST /upload/?refused=1 HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\n"
        b"Content-Length: 999999999999\r\n\r\n",
    )
    assert garbage.startswith(b"HTTP/1.1 400") and too_big.startswith(b"HTTP/1.1 413")
    server.wait_for('"POST /upload/?refused=1 HTTP/1.1" 413')
    client = r"127\.0\.0\.1:\d+ - "
    assert re.search(client + f'"-" 400 {len(garbage)} -$', server.stderr, re.M), server.stderr
    assert re.search(
        client + f'"POST /upload/\\?refused=1 HTTP/1\\.1" 413 {len(too_big)} -$',
        server.stderr,
        re.M,
    ), server.stderr
    after = scrape(metrics_port)
    assert delta(before, after, "switchboard_http_responses_total", status="4xx") == 2


def test_the_size_in_the_http_line_is_the_bytes_written(served, tmp_path) -> None:
    server, port, _ = served
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(b"GET /?size=1 HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    line = server.wait_for('"GET /?size=1 HTTP/1.1" 200')
    size = re.search(r'"GET /\?size=1 HTTP/1\.1" 200 (\d+) ', line).group(1)
    assert int(size) == len(data)


async def test_server_closing_a_websocket_logs_1001_by_server(tmp_path: Path) -> None:
    port = free_port()
    server = Serving(tmp_path / "err.log", APP, "--port", str(port))
    try:
        await asyncio.to_thread(server.wait_for, "Listening on")
        async with connect(f"ws://127.0.0.1:{port}/ws/echo/") as ws:
            await ws.send("x")
            await ws.recv()
            assert await asyncio.to_thread(server.stop) == 0
        assert re.search(
            r'"WEBSOCKET /ws/echo/" closed 1001 by server after \d+\.\ds, 1 in / 1 out$',
            server.stderr,
            re.M,
        ), server.stderr
    finally:
        server.close()


def test_workers_serve_metrics_on_port_plus_slot_with_a_worker_label(tmp_path: Path) -> None:
    port, metrics_port = free_port(), free_port()
    while not _port_free(metrics_port + 1):
        metrics_port = free_port()
    server = Serving(
        tmp_path / "err.log",
        APP,
        "--port",
        str(port),
        "--workers",
        "2",
        "--metrics-port",
        str(metrics_port),
        "--no-access-log",
    )
    try:
        server.wait_for(f"Metrics on http://127.0.0.1:{metrics_port}/metrics")
        server.wait_for(f"Metrics on http://127.0.0.1:{metrics_port + 1}/metrics")
        wait_until(lambda: server.stderr.count("Listening on") == 2, what="both workers")
        for _ in range(10):
            assert get_status(port, "/") == 200
        totals = 0.0
        for slot in (0, 1):
            samples = scrape(metrics_port + slot)
            totals += value(samples, "switchboard_http_requests_total", worker=str(slot))
        # Whichever worker the kernel gave each connection, together they saw all ten.
        assert totals == 10
        assert "switchboard.server.access" not in server.stderr  # --no-access-log
        assert server.stop() == 0
    finally:
        server.close()


def _port_free(port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def test_django_url_serves_the_same_metrics(tmp_path: Path) -> None:
    port = free_port()
    server = Serving(tmp_path / "err.log", APP, "--port", str(port))
    try:
        server.wait_for("Listening on")
        assert get_status(port, "/") == 200
        samples = scrape(port, "/metrics/")
        # The scrape itself is the second request this server has seen.
        assert value(samples, "switchboard_http_requests_total") == 2
        assert value(samples, "switchboard_http_responses_total", status="2xx") == 1
        assert value(samples, "switchboard_connections", protocol="http") == 1
    finally:
        server.close()


def test_metrics_port_without_prometheus_client_fails_with_the_install_hint(tmp_path) -> None:
    # A package of that name that cannot be imported, first on the path: as if not installed.
    stub = tmp_path / "prometheus_client"
    stub.mkdir()
    (stub / "__init__.py").write_text("raise ImportError('No module named prometheus_client')\n")
    env = dict(os.environ, PYTHONPATH=f"{tmp_path}{os.pathsep}{os.environ.get('PYTHONPATH', '')}")
    args = ["serve", "tests.server.cli_apps:asgi_app", "--port", "0", "--metrics-port", "0"]
    result = subprocess.run(
        serve_command(*args), cwd=ROOT, env=env, capture_output=True, text=True, timeout=30
    )
    assert result.returncode == 2, result.stderr
    assert 'pip install "switchboard[metrics]"' in result.stderr
    assert result.stderr.startswith("switchboard: error: ")
    assert "Listening on" not in result.stderr


def test_metrics_port_in_use_is_a_listen_error(tmp_path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        busy = taken.getsockname()[1]
        result = run_serve(
            "serve", "tests.server.cli_apps:asgi_app", "--port", "0", "--metrics-port", str(busy)
        )
    assert result.returncode == 1, result.stderr
    assert result.stderr.strip() == (
        f"switchboard: error: Cannot listen on 127.0.0.1:{busy} (metrics): Address already in use"
    )


def test_metrics_port_without_a_hook_is_refused() -> None:
    # The server imports no metrics library: Config.metrics serves the port (switchboard serve
    # passes switchboard.metrics.ServerMetrics); without it there is nothing to serve with.
    from switchboard.metrics import MetricsUnavailableError, ServerMetrics
    from switchboard.server import Config
    from switchboard.server.runtime.metrics_hook import MetricsSetupError, metrics_hook

    with pytest.raises(MetricsSetupError, match="metrics hook"):
        metrics_hook(Config(metrics_port=9100))
    hook = ServerMetrics()
    assert metrics_hook(Config(metrics_port=9100, metrics=hook)) is hook
    assert issubclass(MetricsUnavailableError, MetricsSetupError)
    assert issubclass(MetricsUnavailableError, RuntimeError)
