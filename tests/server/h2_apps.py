"""ASGI applications for the TLS and HTTP/2 tests (``tests.server.h2_apps:app`` for the
subprocess server)."""

from __future__ import annotations

import asyncio
import json
import uuid
from typing import Any

from tests.server.http_apps import read_body as _read_body


def _scope_view(scope: dict[str, Any]) -> dict[str, Any]:
    tls = scope.get("extensions", {}).get("tls")
    return {
        "type": scope["type"],
        "client_port": scope["client"][1] if scope.get("client") else None,
        "http_version": scope["http_version"],
        "scheme": scope["scheme"],
        "method": scope.get("method"),
        "path": scope["path"],
        "raw_path": scope["raw_path"].decode("latin-1"),
        "query_string": scope["query_string"].decode("latin-1"),
        "headers": [[n.decode("latin-1"), v.decode("latin-1")] for n, v in scope["headers"]],
        "extensions": sorted(scope.get("extensions", {})),
        "tls": tls,
    }


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """``/scope``: the scope as JSON; ``/echo``: the body back; ``/big?N``: N bytes;
    ``/trailers``: a body then trailers; ``/unique``: a response field never sent before;
    ``/slow?S``: answers after S seconds; ``/hold?S``: the same without reading the body;
    ``/crash``;
    WebSockets: echo, ``/deny`` refused before accept."""
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            else:
                await send({"type": "lifespan.shutdown.complete"})
                return
    if scope["type"] == "websocket":
        await websocket_echo(scope, receive, send)
        return
    path = scope["path"]
    query = scope["query_string"].decode()
    if path == "/crash":
        raise RuntimeError("boom")
    if path == "/hold":  # answers after S seconds without reading the request body
        await asyncio.sleep(float(query or 0))
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"held"})
        return
    body = await _read_body(receive)
    if path == "/slow":
        await asyncio.sleep(float(query or 1))
    if path == "/big":
        size = int(query)
        await send({"type": "http.response.start", "status": 200, "headers": []})
        chunk = b"x" * 65536
        sent = 0
        while sent < size:
            part = chunk[: min(len(chunk), size - sent)]
            sent += len(part)
            await send({"type": "http.response.body", "body": part, "more_body": sent < size})
        return
    if path == "/trailers":
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [(b"trailer", b"x-checksum")],
                "trailers": True,
            }
        )
        await send({"type": "http.response.body", "body": b"data", "more_body": False})
        await send(
            {
                "type": "http.response.trailers",
                "headers": [(b"x-checksum", b"abc"), (b"content-length", b"9")],
                "more_trailers": False,
            }
        )
        return
    if path == "/unique":  # a field no two responses share, as a request id is
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [(b"x-request-id", uuid.uuid4().hex.encode() * 2)],
            }
        )
        await send({"type": "http.response.body", "body": b"ok"})
        return
    if path == "/echo":
        payload = body
    else:
        view = _scope_view(scope)
        view["body_length"] = len(body)
        payload = json.dumps(view).encode()
    await send(
        {
            "type": "http.response.start",
            "status": 200,
            "headers": [(b"content-type", b"application/json"), (b"Connection", b"keep-alive")],
        }
    )
    await send({"type": "http.response.body", "body": payload})


async def websocket_echo(scope: dict[str, Any], receive: Any, send: Any) -> None:
    message = await receive()
    assert message["type"] == "websocket.connect"
    if scope["path"] == "/deny":
        await send({"type": "websocket.close"})
        return
    await send({"type": "websocket.accept", "subprotocol": (scope["subprotocols"] or [None])[0]})
    await send({"type": "websocket.send", "text": json.dumps(_scope_view(scope))})
    while True:
        message = await receive()
        if message["type"] == "websocket.disconnect":
            return
        if message.get("text") == "close":
            await send({"type": "websocket.close", "code": 4000})
            continue
        await send({k: v for k, v in message.items() if k != "type"} | {"type": "websocket.send"})
