"""A graceful stop that comes between a client's end of stream and ``connection_lost``.

asyncio reports a peer's EOF (``eof_received``: websockets' protocol is CLOSED then) and runs
``connection_lost`` one loop turn later. A SIGTERM handled in between made shutdown send that
socket its 1001 close frame: websockets raised ``InvalidState``, ``serve`` died with a
traceback (exit 1) and the other sockets got no close frame. Found under load by
bench/gateway_restart.py; here the two callbacks are made to meet on a real connection, in the
order asyncio can deliver them.
"""

from __future__ import annotations

import asyncio
import base64
import os

import pytest

from switchboard.server import Config, Server

pytestmark = pytest.mark.timeout(30)


async def echo(scope, receive, send) -> None:
    assert scope["type"] == "websocket"
    await receive()
    await send({"type": "websocket.accept"})
    while (await receive())["type"] != "websocket.disconnect":
        pass


async def test_shutdown_after_the_peer_s_eof_and_before_connection_lost() -> None:
    server = Server(Config(app=echo, host="127.0.0.1", port=0, access_log=False, lifespan="off"))
    await server.startup()
    try:
        port = server.sockets[0].getsockname()[1]
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        key = base64.b64encode(os.urandom(16)).decode()
        writer.write(
            f"GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n".encode()
        )
        assert (await reader.readuntil(b"\r\n\r\n")).startswith(b"HTTP/1.1 101")
        (connection,) = [c for c in server.state.connections if getattr(c, "ws", None)]
        connection.eof_received()  # the peer's stream ended...
        connection.shutdown()  # ... and the stop is handled before connection_lost runs
        writer.close()
    finally:
        await server.shutdown()
