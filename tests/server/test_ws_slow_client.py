"""Clients that stop reading: the server drops them instead of holding the application's
``send`` (or their unread frames) for ever, counts why, and leaves steady readers alone.

Real server in the test's loop, raw sockets with a small receive buffer (so the kernel cannot
hide a client that does not read), and the real metrics collector over the server's state.
"""

from __future__ import annotations

import asyncio
import os
import socket
import struct
from typing import Any

import h2.events
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from switchboard.metrics.collectors import ServerCollector
from switchboard.server.runtime.serving import serving_states
from tests.server.h2_support import RawH2, websocket_stream
from tests.support.serving import serving

FRAME = 16 * 1024
TIMEOUT = 0.5  # ws_send_timeout of these servers
OPTIONS = {"ws_send_timeout": TIMEOUT, "ws_ping_interval": None}


class Outcome:
    """What the flooding application saw, for the test to await and read."""

    def __init__(self) -> None:
        self.sent = 0
        self.error: BaseException | None = None
        self.seconds = 0.0
        self.disconnect: dict[str, Any] | None = None
        self.done = asyncio.Event()


OUTCOMES: dict[str, Outcome] = {}


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """``/flood?total=BYTES``: sends binary frames as fast as ``send`` takes them, then closes;
    ``/wait``: accepts and waits for the disconnect. Both report to ``OUTCOMES[path]``."""
    if scope["type"] == "lifespan":
        while (await receive())["type"] != "lifespan.shutdown":
            await send({"type": "lifespan.startup.complete"})
        await send({"type": "lifespan.shutdown.complete"})
        return
    if scope["type"] == "http":
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"still here"})
        return
    outcome = OUTCOMES[scope["path"]]
    await receive()
    await send({"type": "websocket.accept"})
    if scope["path"].startswith("/flood"):
        total = int(dict(p.split("=") for p in scope["query_string"].decode().split("&"))["total"])
        loop = asyncio.get_running_loop()
        start = loop.time()
        try:
            while outcome.sent < total:
                await send({"type": "websocket.send", "bytes": b"x" * FRAME})
                outcome.sent += FRAME
            await send({"type": "websocket.close", "code": 1000})
        except OSError as exc:  # ASGI: send on a closed connection raises an OSError
            outcome.error = exc
        outcome.seconds = loop.time() - start
    outcome.disconnect = await receive()
    outcome.done.set()


def expect(path: str) -> Outcome:
    OUTCOMES[path] = outcome = Outcome()
    return outcome


def overflow_metric() -> dict[str, float]:
    """``switchboard_websocket_overflow_closes_total`` by reason, as Prometheus would read it."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(ServerCollector(serving_states))
    text = generate_latest(registry).decode()
    return {
        sample.labels["reason"]: sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == "switchboard_websocket_overflow_closes_total"
    }


async def open_raw(addr: str, path: str, rcvbuf: int) -> tuple[socket.socket, bytes]:
    """A WebSocket handshake on a socket with a small receive buffer; returns the socket and
    what came after the 101's head."""
    loop = asyncio.get_running_loop()
    host, port = addr.split(":")
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)  # before connect: no autotune
    sock.setblocking(False)
    await loop.sock_connect(sock, (host, int(port)))
    await loop.sock_sendall(
        sock,
        f"GET {path} HTTP/1.1\r\nHost: {addr}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        "Sec-WebSocket-Key: c2xvdyBjbGllbnQgdGVzdA==\r\nSec-WebSocket-Version: 13\r\n\r\n".encode(),
    )
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = await asyncio.wait_for(loop.sock_recv(sock, 4096), 5)
        assert chunk, "closed during the handshake"
        data += chunk
    head, _, rest = data.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 101"), head
    return sock, rest


async def read_to_end(sock: socket.socket) -> None:
    """Read until the server's end of the connection (EOF or reset)."""
    loop = asyncio.get_running_loop()
    try:
        while await loop.sock_recv(sock, 65536):
            pass
    except ConnectionResetError:
        pass


def masked(opcode: int, payload: bytes) -> bytes:
    mask = os.urandom(4)
    body = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
    return bytes((0x80 | opcode, 0x80 | len(payload))) + mask + body


# -- HTTP/1.1 ---------------------------------------------------------------------------------


async def test_a_client_that_never_reads_is_dropped_and_the_send_raises() -> None:
    outcome = expect("/flood")
    async with serving(app, **OPTIONS) as addr:
        before = overflow_metric()
        assert before == {"send_timeout": 0.0, "control_backlog": 0.0}
        sock, _ = await open_raw(addr, "/flood?total=1073741824", rcvbuf=4096)
        try:
            # Not a single byte read from here on.
            await asyncio.wait_for(outcome.done.wait(), 10)
            assert isinstance(outcome.error, OSError)
            assert TIMEOUT <= outcome.seconds < TIMEOUT + 5
            # Far less than the gigabyte asked for went anywhere: send waited, then raised.
            assert outcome.sent < 16 << 20
            assert outcome.disconnect is not None
            assert outcome.disconnect["type"] == "websocket.disconnect"
            assert outcome.disconnect["code"] == 1006
            # The client's connection is gone too (reset: no close frame it would not read).
            await asyncio.wait_for(read_to_end(sock), 5)
        finally:
            sock.close()
        (state,) = serving_states()
        assert state.ws_overflow_closes == {"send_timeout": 1, "control_backlog": 0}
        assert state.ws_closes == {1006: 1}
        assert overflow_metric() == {"send_timeout": 1.0, "control_backlog": 0.0}


async def test_a_client_reading_slowly_but_steadily_is_not_cut() -> None:
    outcome = expect("/flood")
    # More than the kernel's send buffer takes (it grows to 4 MiB on loopback), so that
    # sends do wait for this client.
    total = 8 << 20
    loop = asyncio.get_running_loop()
    async with serving(app, **OPTIONS) as addr:
        sock, data = await open_raw(addr, f"/flood?total={total}", rcvbuf=65536)
        try:
            received = bytearray(data)
            payload = 0
            while True:  # reads with pauses: far slower than the app could send
                chunk = await asyncio.wait_for(loop.sock_recv(sock, 65536), 5)
                assert chunk, "the server closed the connection"
                received += chunk
                payload, close = _parse(received)
                if close is not None:
                    break
                await asyncio.sleep(0.01)
            assert payload == total and close == 1000
            await loop.sock_sendall(sock, masked(0x8, struct.pack("!H", 1000)))
            await asyncio.wait_for(read_to_end(sock), 5)
        finally:
            sock.close()
        await asyncio.wait_for(outcome.done.wait(), 5)
        assert outcome.error is None and outcome.sent == total
        # The transfer took longer than one send may wait: the limit is per send, not per
        # connection, and a client that keeps reading keeps every send short.
        assert outcome.seconds > TIMEOUT
        assert outcome.disconnect is not None and outcome.disconnect["code"] == 1000
        assert overflow_metric() == {"send_timeout": 0.0, "control_backlog": 0.0}


def _parse(data: bytearray) -> tuple[int, int | None]:
    """Payload bytes of the complete binary frames in ``data``, and the close code if a close
    frame is among them (server frames are unmasked)."""
    pos, payload = 0, 0
    while pos + 2 <= len(data):
        opcode, size = data[pos] & 0x0F, data[pos + 1] & 0x7F
        head = 2
        if size == 126:
            if pos + 4 > len(data):
                break
            size, head = struct.unpack_from("!H", data, pos + 2)[0], 4
        elif size == 127:
            if pos + 10 > len(data):
                break
            size, head = struct.unpack_from("!Q", data, pos + 2)[0], 10
        if pos + head + size > len(data):
            break
        if opcode == 0x8:
            return payload, struct.unpack_from("!H", data, pos + head)[0]
        payload += size
        pos += head + size
    return payload, None


async def test_pongs_piling_up_for_a_client_that_pings_without_reading() -> None:
    # The application sends nothing; the client makes the server write (pongs) and never
    # reads them: that backlog is bounded too.
    outcome = expect("/wait")
    loop = asyncio.get_running_loop()
    async with serving(app, **OPTIONS) as addr:
        sock, _ = await open_raw(addr, "/wait", rcvbuf=4096)
        pings = masked(0x9, b"p" * 125) * 256
        try:
            # At most 128 MiB of pongs: far past any kernel buffer. Before the limit, this
            # client made the server buffer every one of them.
            for _ in range(4096):
                if outcome.done.is_set():
                    break
                try:
                    await asyncio.wait_for(loop.sock_sendall(sock, pings), 5)
                except (ConnectionResetError, BrokenPipeError):
                    break  # dropped
            await asyncio.wait_for(outcome.done.wait(), 10)
        finally:
            sock.close()
        assert outcome.disconnect is not None and outcome.disconnect["code"] == 1006
        assert overflow_metric() == {"send_timeout": 0.0, "control_backlog": 1.0}


# -- HTTP/2 (RFC 8441) -----------------------------------------------------------------------


def _stalled_h2_stream(port: int) -> dict[str, Any]:
    """Open a WebSocket stream and never give window back: the stream stalls at 65535 bytes.
    Wait for the server to reset it; then check the connection still serves a request."""
    client = RawH2(port)
    client.auto_ack = False
    try:
        sid = websocket_stream(client, "/flood-h2?total=1073741824")

        def reset(events: list[Any]) -> bool:
            return any(isinstance(e, h2.events.StreamReset) and e.stream_id == sid for e in events)

        client.read_until(reset, timeout=10)
        received = sum(
            e.flow_controlled_length
            for e in client.events
            if isinstance(e, h2.events.DataReceived) and e.stream_id == sid
        )
        # The connection's window, spent on the dropped stream, goes back; the connection
        # itself was not dropped.
        client.conn.increment_flow_control_window(received)
        client.auto_ack = True
        client.flush()
        _, body = client.response(client.request("/"))
        return {"reset": reset(client.events), "received": received, "after": body}
    finally:
        client.sock.close()


async def test_an_http2_websocket_stream_that_is_not_read_is_reset() -> None:
    outcome = expect("/flood-h2")
    async with serving(app, **OPTIONS) as addr:
        port = int(addr.split(":")[1])
        result = await asyncio.to_thread(_stalled_h2_stream, port)
        await asyncio.wait_for(outcome.done.wait(), 10)
        assert result["reset"] and result["received"] <= 65535
        assert result["after"] == b"still here"
        assert isinstance(outcome.error, OSError)
        assert TIMEOUT <= outcome.seconds < TIMEOUT + 5
        assert outcome.disconnect is not None and outcome.disconnect["code"] == 1006
        assert overflow_metric() == {"send_timeout": 1.0, "control_backlog": 0.0}
