"""Raw ASGI applications shared by the server benchmarks (no framework in the way)."""

from __future__ import annotations

from typing import Any


async def hello_app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """Plain HTTP: "Hello, world!" for every request."""
    if scope["type"] != "http":
        return
    await send(
        {
            "type": "http.response.start",
            "status": 200,
            "headers": [(b"content-type", b"text/plain"), (b"content-length", b"13")],
        }
    )
    await send({"type": "http.response.body", "body": b"Hello, world!"})


async def ws_echo_app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """WebSocket: accept everything, echo every text/binary message back."""
    if scope["type"] != "websocket":
        if scope["type"] == "http":
            await hello_app(scope, receive, send)
        return
    while True:
        message = await receive()
        kind = message["type"]
        if kind == "websocket.receive":
            text = message.get("text")
            try:
                if text is not None:
                    await send({"type": "websocket.send", "text": text})
                else:
                    await send({"type": "websocket.send", "bytes": message.get("bytes")})
            except OSError:  # the client left while we were answering
                return
        elif kind == "websocket.connect":
            await send({"type": "websocket.accept"})
        else:
            return


_served = 0


async def h2_probe_app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """For bench.h2_hardening: ``/unique``, a response field no two responses share (as a
    request id is); ``/hold?S``, an answer after S seconds without reading the body."""
    global _served
    if scope["type"] != "http":
        return
    if scope["path"] == "/hold":
        import asyncio

        await asyncio.sleep(float(scope["query_string"] or 30))
    _served += 1
    await send(
        {
            "type": "http.response.start",
            "status": 200,
            "headers": [(b"x-request-id", b"%d-%032x" % (_served, id(scope)))],
        }
    )
    await send({"type": "http.response.body", "body": b"ok"})
