"""WebSockets over HTTP/2 (RFC 8441): an extended CONNECT opens a stream that carries RFC 6455
frames, next to ordinary requests on the same connection."""

from __future__ import annotations

import asyncio
import json
import os
import struct
from typing import Any

import h2.events

from tests.server.h2_apps import app
from tests.server.h2_support import RawH2, websocket_stream


def masked(opcode: int, payload: bytes) -> bytes:
    """A client frame (RFC 6455 section 5.2): FIN, masked."""
    mask = os.urandom(4)
    size = len(payload)
    head = bytes((0x80 | opcode,))
    if size < 126:
        head += bytes((0x80 | size,))
    else:
        head += bytes((0x80 | 126,)) + struct.pack("!H", size)
    return head + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(payload))


def frames(data: bytes) -> list[tuple[int, bytes]]:
    """Server frames (unmasked) in ``data``."""
    out = []
    pos = 0
    while pos + 2 <= len(data):
        opcode, size = data[pos] & 0x0F, data[pos + 1] & 0x7F
        pos += 2
        if size == 126:
            size = struct.unpack("!H", data[pos : pos + 2])[0]
            pos += 2
        out.append((opcode, data[pos : pos + size]))
        pos += size
    return out


def stream_data(client: RawH2, sid: int) -> bytes:
    return b"".join(
        e.data
        for e in client.events
        if isinstance(e, h2.events.DataReceived) and e.stream_id == sid
    )


def response_headers(client: RawH2, sid: int) -> dict[bytes, bytes] | None:
    for e in client.events:
        if isinstance(e, h2.events.ResponseReceived) and e.stream_id == sid:
            return dict(e.headers)
    return None


def _session(port: int) -> dict[str, Any]:
    client = RawH2(port)
    try:
        sid = websocket_stream(client, "/chat?room=1", [(b"sec-websocket-protocol", b"chat.v1")])
        client.read_until(lambda ev: len(frames(stream_data(client, sid))) >= 1)
        headers = response_headers(client, sid)
        scope = json.loads(frames(stream_data(client, sid))[0][1])
        # An ordinary request on the same connection, while the WebSocket is open.
        plain = client.request("/scope")
        plain_headers, plain_body = client.response(plain)
        client.conn.send_data(sid, masked(0x1, b"hello over h2"))
        client.conn.send_data(sid, masked(0x2, b"\x00\x01" * 200))
        client.flush()
        client.read_until(lambda ev: len(frames(stream_data(client, sid))) >= 3)
        echoed = frames(stream_data(client, sid))[1:3]
        client.conn.send_data(sid, masked(0x1, b"close"))
        client.flush()

        client.read_until(lambda ev: frames(stream_data(client, sid))[-1][0] == 0x8)
        close_frame = frames(stream_data(client, sid))[-1]
        # The client answers the close frame and ends its side; the server ends its own.
        client.conn.send_data(sid, masked(0x8, close_frame[1][:2]), end_stream=True)
        client.flush()

        def closed(ev: list[Any]) -> bool:
            return any(isinstance(e, h2.events.StreamEnded) and e.stream_id == sid for e in ev)

        client.read_until(closed)
        return {
            "headers": headers,
            "scope": scope,
            "plain": (plain_headers, json.loads(plain_body)),
            "echoed": echoed,
            "close": close_frame,
            "ended": closed(client.events),
        }
    finally:
        client.close()


async def test_websocket_over_an_extended_connect_stream(running_server: Any) -> None:
    async with running_server(app) as (_, port):
        result = await asyncio.to_thread(_session, port)
    # 200, not 101, accepts the WebSocket on HTTP/2 (RFC 8441 section 5).
    assert result["headers"][b":status"] == b"200"
    assert result["headers"][b"sec-websocket-protocol"] == b"chat.v1"
    assert b"sec-websocket-accept" not in result["headers"]
    assert b"upgrade" not in result["headers"] and b"connection" not in result["headers"]
    scope = result["scope"]
    assert (scope["type"], scope["http_version"], scope["scheme"]) == ("websocket", "2", "ws")
    assert (scope["path"], scope["query_string"]) == ("/chat", "room=1")
    assert scope["method"] is None
    names = [name for name, _ in scope["headers"]]
    # The app sees the request as sent: no HTTP/1.1 upgrade fields made up for it.
    assert "upgrade" not in names and "sec-websocket-key" not in names
    assert names[0] == "host"
    plain_headers, plain_scope = result["plain"]
    assert plain_headers[b":status"] == b"200" and plain_scope["http_version"] == "2"
    assert result["echoed"] == [(0x1, b"hello over h2"), (0x2, b"\x00\x01" * 200)]
    assert result["close"][0] == 0x8
    assert struct.unpack("!H", result["close"][1][:2])[0] == 4000
    assert result["ended"]


def _denied(port: int) -> dict[bytes, bytes] | None:
    client = RawH2(port)
    try:
        sid = websocket_stream(client, "/deny")
        client.response(sid)
        return response_headers(client, sid)
    finally:
        client.close()


async def test_websocket_close_before_accept_is_403(running_server: Any) -> None:
    async with running_server(app) as (_, port):
        headers = await asyncio.to_thread(_denied, port)
    assert headers is not None and headers[b":status"] == b"403"
