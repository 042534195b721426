"""Raw ASGI applications for the HTTP end-to-end tests."""

from __future__ import annotations

import asyncio
from typing import Any


async def echo_body(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """Answers with the request body, its scope path and the client address in headers."""
    if scope["type"] != "http":
        return
    body = b""
    while True:
        message = await receive()
        body += message.get("body", b"")
        if not message.get("more_body"):
            break
    client = scope["client"][0] if scope["client"] else "-"
    await send(
        {
            "type": "http.response.start",
            "status": 200,
            "headers": [
                (b"x-path", scope["path"].encode()),
                (b"x-client", client.encode()),
                (b"x-scheme", scope["scheme"].encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


async def streamed(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """A chunked response: no content-length, three body messages."""
    await send({"type": "http.response.start", "status": 200, "headers": []})
    for part in (b"one,", b"two,", b"three"):
        await send({"type": "http.response.body", "body": part, "more_body": True})
    await send({"type": "http.response.body", "body": b""})


async def crashes(scope: dict[str, Any], receive: Any, send: Any) -> None:
    raise RuntimeError("secret internals")


class Slow:
    """Answers after ``delay`` seconds; records ``http.disconnect`` when the client leaves."""

    def __init__(self, delay: float) -> None:
        self.delay = delay
        self.events: list[str] = []
        self.send_error: BaseException | None = None

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        await receive()
        try:
            message = await asyncio.wait_for(receive(), self.delay)
            self.events.append(message["type"])
        except asyncio.TimeoutError:
            pass
        try:
            await send({"type": "http.response.start", "status": 200, "headers": []})
            await send({"type": "http.response.body", "body": b"done"})
        except OSError as exc:
            self.send_error = exc


class WithLifespan:
    def __init__(self) -> None:
        self.events: list[str] = []

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            while True:
                message = await receive()
                self.events.append(message["type"])
                if message["type"] == "lifespan.startup":
                    scope["state"]["greeting"] = "hello from startup"
                    await send({"type": "lifespan.startup.complete"})
                else:
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        body = scope["state"]["greeting"].encode()
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": body})


class WithTrailers:
    """Streams ``parts`` then sends each entry of ``trailers`` as one trailers message."""

    def __init__(
        self,
        parts: list[bytes],
        trailers: list[list[tuple[bytes, bytes]]],
        headers: list[tuple[bytes, bytes]] | None = None,
    ) -> None:
        self.parts = parts
        self.trailers = trailers
        self.headers = headers or [(b"trailer", b"x-checksum")]
        self.extensions: list[dict[str, Any]] = []
        self.errors: list[BaseException] = []

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        self.extensions.append(dict(scope.get("extensions") or {}))
        start = {"type": "http.response.start", "status": 200, "headers": self.headers}
        await send({**start, "trailers": True})
        for n, part in enumerate(self.parts):
            more = n < len(self.parts) - 1
            await send({"type": "http.response.body", "body": part, "more_body": more})
        for n, fields in enumerate(self.trailers):
            more = n < len(self.trailers) - 1
            await send({"type": "http.response.trailers", "headers": fields, "more_trailers": more})
        try:  # the response is complete: anything more is an app error
            await send({"type": "http.response.trailers", "headers": [], "more_trailers": False})
        except RuntimeError as exc:
            self.errors.append(exc)
