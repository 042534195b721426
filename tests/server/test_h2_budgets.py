"""HTTP/2 budgets, from raw ``h2`` clients against a real server process: request body that
applications have not read, and streams the client resets before their response, are
bounded per connection, per client address and per process.

Flow control (RFC 9113 section 5.2) is how an HTTP/2 server bounds what it buffers: "a
receiver MAY choose to set any window size that it desires for each stream and for the
entire connection". Switchboard gives window back only as applications read (as Go's HTTP/2
server does, 1 MiB per connection there), so an unread body costs at most the connection's
window; hypercorn bounds the same by no longer reading the socket once a stream's queue is
full, which also stops every other stream of the connection. uvicorn has no HTTP/2.
"""

from __future__ import annotations

import time
import urllib.request
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.server.h2_support import RawH2, rss_kib
from tests.server.serve_process import Serving, free_port

STREAM_WINDOW = 65535  # the protocol's initial windows, stream and connection alike
CONNECTION_WINDOW = 256 * 1024  # --h2-connection-window's default
APP = "tests.server.h2_apps:app"


def serve(tmp_path: Path, *args: str) -> tuple[Serving, int]:
    port = free_port()
    serving = Serving(
        tmp_path / "serve.log", APP, "--port", str(port), "--no-access-log",
        "--timeout-graceful-shutdown", "1", *args,
    )  # fmt: skip
    serving.wait_for("Listening on")
    return serving, port


@pytest.fixture
def server(tmp_path: Path) -> Iterator[tuple[Serving, int]]:
    serving, port = serve(tmp_path)
    try:
        yield serving, port
    finally:
        serving.stop()
        serving.close()


def fill(client: RawH2, streams: int, path: str = "/hold?60") -> int:
    """Open ``streams`` POST streams to an application that does not read, and send body on
    them for as long as the server's windows let us: the bytes the server took."""
    ids = [client.request(path, method="POST", end=False) for _ in range(streams)]
    chunk = b"x" * 16384
    sent = 0
    while True:
        moved = 0
        for sid in ids:
            room = min(client.conn.local_flow_control_window(sid), len(chunk))
            if room > 0:
                client.conn.send_data(sid, chunk[:room])
                moved += room
        if moved:
            sent += moved
            client.flush()
        elif not client.read(0.5):  # no window left: does the server give some back?
            return sent


def test_unread_bodies_are_held_to_the_connection_window(server: tuple[Serving, int]) -> None:
    """20 connections x 20 streams, each sending all the body the server lets in, to an
    application that never reads it: each connection gets --h2-connection-window (256 KiB),
    not a window per stream (the server used to open 100 x 64 KiB per connection: 6.5 MB,
    and 50 such connections took its RSS from 28 to 273 MB; HTTP/1.1 holds 0.14 MB each)."""
    serving, port = server
    warm = RawH2(port)
    fill(warm, 20)  # the code paths and the allocator's pools, before the baseline
    warm.close()
    time.sleep(1.0)
    before = rss_kib(serving.process.pid)

    def one(_: int) -> tuple[RawH2, int]:
        client = RawH2(port)
        return client, fill(client, 20)

    with ThreadPoolExecutor(5) as pool:
        results = list(pool.map(one, range(20)))
    try:
        time.sleep(0.5)
        grown = rss_kib(serving.process.pid) - before
        accepted = [taken for _, taken in results]
        assert all(taken <= CONNECTION_WINDOW for taken in accepted), accepted
        assert all(taken >= CONNECTION_WINDOW - 16384 for taken in accepted), accepted
        per_connection = grown / len(results)
        # 256 KiB of body, 20 streams and their application tasks (~6 KiB each).
        assert per_connection < 512, f"{per_connection:.0f} KiB per connection"
        # Other clients are still served.
        other = RawH2(port)
        headers, _ = other.response(other.request("/scope"))
        assert headers[b":status"] == b"200"
        other.close()
    finally:
        for client, _ in results:
            client.close()


def test_a_process_wide_budget_caps_all_connections_windows(tmp_path: Path) -> None:
    """--h2-max-buffered-body bounds what all connections together may send ahead of the
    applications, beyond the 64 KiB that RFC 9113 gives every connection before any
    WINDOW_UPDATE: once it is lent out, a new connection gets only those 64 KiB, and what a
    closed connection held goes to the next one."""
    extra = CONNECTION_WINDOW - STREAM_WINDOW
    budget = extra + 100_000
    serving, port = serve(tmp_path, "--h2-max-buffered-body", str(budget))
    clients: list[RawH2] = []
    try:
        taken = []
        for _ in range(3):
            client = RawH2(port)
            clients.append(client)
            taken.append(fill(client, 10))
        assert taken == [CONNECTION_WINDOW, STREAM_WINDOW + 100_000, STREAM_WINDOW]
        clients[0].close()
        time.sleep(0.5)
        client = RawH2(port)
        clients.append(client)
        assert fill(client, 10) == CONNECTION_WINDOW
    finally:
        for client in clients:
            client.close()
        serving.stop()
        serving.close()


def test_window_comes_back_when_the_app_answers_without_reading(
    server: tuple[Serving, int],
) -> None:
    """An application that answers without reading the body (a 401, a redirect) leaves the
    body unread: it must go back to the connection's window, or each such request shrinks
    the window for good until the connection can carry no body at all (RFC 9113 section
    6.9: flow control is the receiver's to keep open)."""
    _, port = server
    client = RawH2(port)
    try:
        body = b"y" * STREAM_WINDOW
        for i in range(120):
            sid = client.conn.get_next_available_stream_id()
            client.conn.send_headers(
                sid,
                [
                    (b":method", b"POST"),
                    (b":scheme", b"http"),
                    (b":authority", b"localhost"),
                    (b":path", b"/hold?0"),
                ],
            )
            sent = 0
            deadline = time.monotonic() + 5
            while sent < len(body) and time.monotonic() < deadline:
                room = min(client.conn.local_flow_control_window(sid), 16384, len(body) - sent)
                if room <= 0:
                    client.read(0.2)
                    continue
                client.conn.send_data(sid, body[sent : sent + room], sent + room == len(body))
                sent += room
            client.flush()
            assert sent == len(body), f"request {i}: the window closed after {sent} bytes"
            headers, got = client.response(sid)
            assert (headers[b":status"], got) == (b"200", b"held")
    finally:
        client.close()


# -- streams reset before their response, over many connections -----------------------------


def scrape(port: int) -> dict[str, float]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as response:
        text = response.read().decode()
    return {
        sample.name: sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if not sample.labels
    }


def test_rapid_reset_spread_over_connections_is_budgeted_per_address(tmp_path: Path) -> None:
    """CVE-2023-44487 with each connection under its own limit: 50 streams opened and reset
    at once, then a new connection, 80 times. The per-connection guard never trips, so the
    budget must be the client address's (and the process's): past it, new streams are
    refused (REFUSED_STREAM, RFC 9113 section 8.7: not processed, safe to retry) before any
    application runs. Once, 290 such connections in 8 s ran the application 29,000 times.
    The resets are counted in switchboard_http2_streams_reset_total."""
    metrics_port = free_port()
    serving, port = serve(tmp_path, "--metrics-port", str(metrics_port))
    try:
        serving.wait_for("Metrics on")
        before = scrape(metrics_port)
        started = time.monotonic()
        for _ in range(80):
            client = RawH2(port)
            for _ in range(50):
                client.request_then_cancel("/slow?3")
            client.flush()
            client.read(0.05)
            client.close()
        elapsed = time.monotonic() - started
        time.sleep(0.3)
        after = scrape(metrics_port)

        def moved(name: str) -> float:
            return after[name] - before.get(name, 0.0)

        ran = moved("switchboard_http_requests_total")
        resets = moved("switchboard_http2_streams_reset_total")
        refused = moved("switchboard_http2_streams_refused_total")
        # The address's budget: 400 at once, 100 a second after that (and what one batch
        # started before the budget ran out).
        assert ran <= 400 + 100 * elapsed + 100, (ran, elapsed)
        assert ran < 4000
        assert resets == ran  # every stream that ran was reset before its response
        # The rest were refused before any application saw them (bar the batches cut off
        # by a GOAWAY: a closing connection reads no further).
        assert ran + refused > 3500, (ran, refused)
        assert "rapid reset" in serving.stderr
        # Another client address is not held to this one's budget.
        other = RawH2(port, source="127.0.0.2")
        try:
            headers, _ = other.response(other.request("/scope"))
            assert headers[b":status"] == b"200"
        finally:
            other.close()
    finally:
        serving.stop()
        serving.close()
