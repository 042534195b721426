"""The small HTTP side of the transport endpoints: JSON answers, bounded bodies, and waiting
for a client to leave."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from .session import Refusal, Session

__all__ = ["TooLarge", "read_body", "respond", "send_refusal", "wait_disconnect"]

Receive = Any
Send = Any

JSON_HEADERS = [
    (b"content-type", b"application/json"),
    (b"cache-control", b"no-store"),
]


class TooLarge(Exception):
    """The request body passed the limit."""


async def respond(send: Send, status: int, body: dict[str, Any] | None = None) -> None:
    """``status`` with ``body`` as JSON (no body at all for ``None``)."""
    data = json.dumps(body, separators=(",", ":")).encode() if body is not None else b""
    headers = [*JSON_HEADERS] if body is not None else [(b"cache-control", b"no-store")]
    headers.append((b"content-length", str(len(data)).encode()))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": data})


async def send_refusal(send: Send, refusal: Refusal) -> None:
    """A handshake the application refused: its own denial response, or a bare status."""
    headers = list(refusal.headers)
    if not headers and not refusal.body:
        headers = [(b"content-length", b"0")]
    await send({"type": "http.response.start", "status": refusal.status, "headers": headers})
    await send({"type": "http.response.body", "body": refusal.body})


def _declared_length(scope: dict[str, Any]) -> int | None:
    for name, value in scope.get("headers", ()):
        if name.lower() == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None


async def read_body(scope: dict[str, Any], receive: Receive, limit: int) -> bytes:
    """The whole request body; :class:`TooLarge` past ``limit`` bytes (read no further), and
    ``ConnectionError`` if the client left before it was complete."""
    declared = _declared_length(scope)
    if declared is not None and declared > limit:
        raise TooLarge
    parts: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise ConnectionError("client left during the request body")
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise TooLarge
        parts.append(chunk)
        if not message.get("more_body"):
            return b"".join(parts)


async def wait_disconnect(receive: Receive) -> None:
    """Returns when the client has gone (call once the request body was read)."""
    while (await receive())["type"] != "http.disconnect":
        pass


async def handshake(session: Session, gone: asyncio.Future[Any]) -> Refusal | None:
    """The application's answer to the handshake: None (accepted) or its Refusal.
    ``ConnectionError`` if the client left first (``gone`` finished): the session is ended."""
    await asyncio.wait((session.handshake, gone), return_when=asyncio.FIRST_COMPLETED)
    if session.handshake.done():
        return session.handshake.result()
    session.lost(1006)
    raise ConnectionError("client left before the handshake was answered")
