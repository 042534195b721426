"""ASGI applications that misbehave, for the subprocess tests of test_misbehaving_apps.py.

WebSocket paths: /spin keeps calling receive() after websocket.disconnect, /swallow ignores
cancellation, /block blocks the event loop, /ignore-sigterm blocks it with SIGTERM ignored.
HTTP paths: /count?key=K says how many websocket.disconnect /spin?key=K saw, /hang never
answers and ignores cancellation, /spin-http answers and then keeps calling receive().
MISBEHAVE_LIFESPAN=hang: a lifespan shutdown that hangs;
slow-start: a lifespan startup that takes a second.
"""

from __future__ import annotations

import asyncio
import os
import signal
import time
from collections import Counter
from typing import Any
from urllib.parse import parse_qs

DISCONNECTS: Counter[str] = Counter()


def _query(scope: dict[str, Any]) -> dict[str, str]:
    return {k: v[0] for k, v in parse_qs(scope["query_string"].decode()).items()}


async def _ignore_cancellation_forever() -> None:
    while True:
        try:
            await asyncio.sleep(3600)
        except asyncio.CancelledError:
            pass


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] == "http":
        await _http(scope, receive, send)
    elif scope["type"] == "websocket":
        await _websocket(scope, receive, send)
    elif scope["type"] == "lifespan":
        await _lifespan(receive, send)


async def _lifespan(receive: Any, send: Any) -> None:
    """With MISBEHAVE_LIFESPAN=hang, the lifespan shutdown never completes; with slow-start,
    the startup says so on stdout and takes a second."""
    await receive()
    if os.environ.get("MISBEHAVE_LIFESPAN") == "slow-start":
        print("lifespan startup began", flush=True)
        await asyncio.sleep(1.0)
    await send({"type": "lifespan.startup.complete"})
    await receive()
    if os.environ.get("MISBEHAVE_LIFESPAN") == "hang":
        await _ignore_cancellation_forever()
    await send({"type": "lifespan.shutdown.complete"})


async def _http(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["path"] == "/hang":
        await _ignore_cancellation_forever()
    if scope["path"] == "/spin-http":
        await receive()  # the (empty) body
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"done"})
        while True:  # never returns: an app that ignores http.disconnect
            await receive()
    body = str(DISCONNECTS[_query(scope).get("key", "")]).encode()
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": body})


async def _websocket(scope: dict[str, Any], receive: Any, send: Any) -> None:
    path = scope["path"]
    await receive()  # websocket.connect
    if path == "/ignore-sigterm":
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
    await send({"type": "websocket.accept"})
    if path == "/spin":
        key = _query(scope).get("key", "")
        while True:  # never returns: an app that ignores the disconnect
            if (await receive())["type"] == "websocket.disconnect":
                DISCONNECTS[key] += 1
    elif path == "/swallow":
        while (await receive())["type"] != "websocket.disconnect":
            pass
        await _ignore_cancellation_forever()
    elif path in ("/block", "/ignore-sigterm"):
        time.sleep(3600)  # noqa: ASYNC251 - blocking the event loop is the point
