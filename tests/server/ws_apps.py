"""Raw ASGI WebSocket applications for the server's WebSocket tests, routed by path.

What an application observes (disconnect codes, errors on send, timings) is stored in REPORTS
and read back over a second connection to ``/report?key=...``, so the tests work the same
whether the server runs in this process or not.
"""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any
from urllib.parse import parse_qs

REPORTS: dict[str, Any] = {}


def _query(scope: dict[str, Any]) -> dict[str, str]:
    return {k: v[0] for k, v in parse_qs(scope["query_string"].decode()).items()}


async def _echo(receive: Any, send: Any) -> None:
    while True:
        message = await receive()
        if message["type"] == "websocket.disconnect":
            return
        if message.get("text") is not None:
            await send({"type": "websocket.send", "text": message["text"]})
        else:
            await send({"type": "websocket.send", "bytes": message["bytes"]})


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] != "websocket":
        return
    path, query = scope["path"], _query(scope)
    handler = ROUTES.get(path)
    if handler is None:
        await send({"type": "websocket.close", "code": 1000})
        return
    await handler(scope, receive, send, query)


async def echo(scope: dict[str, Any], receive: Any, send: Any, query: dict[str, str]) -> None:
    assert (await receive())["type"] == "websocket.connect"
    await send({"type": "websocket.accept"})
    await _echo(receive, send)


async def scope_info(scope: dict[str, Any], receive: Any, send: Any, q: dict[str, str]) -> None:
    """Accepts with the last offered subprotocol and a custom header, then sends the scope."""
    await receive()
    offered = scope["subprotocols"]
    await send(
        {
            "type": "websocket.accept",
            "subprotocol": offered[-1] if offered else None,
            "headers": [(b"x-switchboard-test", b"accepted")],
        }
    )
    info = {
        "type": scope["type"],
        "path": scope["path"],
        "query_string": scope["query_string"].decode(),
        "subprotocols": offered,
        "extensions": sorted(scope["extensions"]),
        "headers": [[k.decode(), v.decode()] for k, v in scope["headers"]],
    }
    await send({"type": "websocket.send", "text": json.dumps(info)})
    await _echo(receive, send)


async def reject(scope: dict[str, Any], receive: Any, send: Any, query: dict[str, str]) -> None:
    await receive()
    await send({"type": "websocket.close", "code": 1000})
    REPORTS[query.get("key", "reject")] = (await receive())["type"]


async def deny(scope: dict[str, Any], receive: Any, send: Any, query: dict[str, str]) -> None:
    await receive()
    await send(
        {
            "type": "websocket.http.response.start",
            "status": 401,
            "headers": [(b"content-type", b"text/plain"), (b"www-authenticate", b"Token")],
        }
    )
    await send({"type": "websocket.http.response.body", "body": b"no ", "more_body": True})
    key = query.get("key", "deny")
    try:
        await send({"type": "websocket.http.response.body", "body": b"entry"})
    except Exception as exc:
        REPORTS[key] = f"raised {type(exc).__name__}: {exc}"
        raise
    REPORTS[key] = "sent"


async def close(scope: dict[str, Any], receive: Any, send: Any, query: dict[str, str]) -> None:
    await receive()
    await send({"type": "websocket.accept"})
    await send({"type": "websocket.send", "text": "bye soon"})
    await send(
        {"type": "websocket.close", "code": int(query["code"]), "reason": query.get("reason", "")}
    )


async def record(scope: dict[str, Any], receive: Any, send: Any, query: dict[str, str]) -> None:
    """Echoes until disconnect; records the disconnect message and what send() did after."""
    key = query["key"]
    await receive()
    await send({"type": "websocket.accept"})
    while True:
        message = await receive()
        if message["type"] == "websocket.disconnect":
            break
        await send({"type": "websocket.send", "text": message.get("text") or "bytes"})
    result: dict[str, Any] = {"code": message["code"], "reason": message.get("reason")}
    try:
        await send({"type": "websocket.send", "text": "too late"})
        result["send_after"] = "no error"
    except OSError as exc:
        result["send_after"] = f"OSError:{type(exc).__name__}"
    except Exception as exc:  # noqa: BLE001 - the test reports what happened
        result["send_after"] = f"other:{type(exc).__name__}"
    try:  # websocket.disconnect comes once: a second receive() waits
        result["again"] = (await asyncio.wait_for(receive(), 0.3))["type"]
    except TimeoutError:
        result["again"] = "waits"
    REPORTS[key] = result


async def report(scope: dict[str, Any], receive: Any, send: Any, query: dict[str, str]) -> None:
    await receive()
    await send({"type": "websocket.accept"})
    key = query["key"]
    deadline = time.monotonic() + 5
    while key not in REPORTS and time.monotonic() < deadline:
        await asyncio.sleep(0.01)
    await send({"type": "websocket.send", "text": json.dumps(REPORTS.pop(key, None))})
    await send({"type": "websocket.close", "code": 1000})


async def raise_before(scope: dict[str, Any], receive: Any, send: Any, q: dict[str, str]) -> None:
    await receive()
    raise RuntimeError("boom before accept")


async def raise_after(scope: dict[str, Any], receive: Any, send: Any, q: dict[str, str]) -> None:
    await receive()
    await send({"type": "websocket.accept"})
    await receive()
    raise RuntimeError("boom after accept")


async def never_answer(scope: dict[str, Any], receive: Any, send: Any, q: dict[str, str]) -> None:
    await receive()
    await asyncio.sleep(30)


async def stall(scope: dict[str, Any], receive: Any, send: Any, query: dict[str, str]) -> None:
    """Accepts, does not read for a while, then echoes: the server must queue without loss."""
    await receive()
    await send({"type": "websocket.accept"})
    await asyncio.sleep(float(query.get("sleep", "0.5")))
    await _echo(receive, send)


async def flood(scope: dict[str, Any], receive: Any, send: Any, query: dict[str, str]) -> None:
    """Sends a lot to a client that does not read at first; records how long send() waited."""
    await receive()
    await send({"type": "websocket.accept"})
    chunk = b"z" * (256 * 1024)
    count = int(query.get("count", "64"))
    start = time.monotonic()
    for _ in range(count):
        await send({"type": "websocket.send", "bytes": chunk})
    REPORTS[query["key"]] = time.monotonic() - start
    await send({"type": "websocket.close", "code": 1000})
    await receive()


async def linger(scope: dict[str, Any], receive: Any, send: Any, query: dict[str, str]) -> None:
    """Ignores the disconnect and keeps running: the server must cancel it."""
    await receive()
    await send({"type": "websocket.accept"})
    message = await receive()
    try:
        await asyncio.sleep(30)
        REPORTS[query["key"]] = "not cancelled"
    except asyncio.CancelledError:
        REPORTS[query["key"]] = f"cancelled after {message['type']}"
        raise


ROUTES = {
    "/echo": echo,
    "/scope": scope_info,
    "/reject": reject,
    "/deny": deny,
    "/close": close,
    "/record": record,
    "/report": report,
    "/raise-before": raise_before,
    "/raise-after": raise_after,
    "/never": never_answer,
    "/stall": stall,
    "/flood": flood,
    "/linger": linger,
}
