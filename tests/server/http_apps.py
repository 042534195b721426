"""Raw ASGI applications for the HTTP end-to-end tests."""

from __future__ import annotations

import asyncio
import hashlib
from typing import Any


async def read_body(receive: Any) -> bytes:
    """The whole request body, read as the application's ``http.request`` messages bring it."""
    body = b""
    while True:
        message = await receive()
        body += message.get("body", b"")
        if not message.get("more_body"):
            return body


async def echo_body(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """Answers with the request body, its scope path and the client address in headers."""
    if scope["type"] != "http":
        return
    body = await read_body(receive)
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
        except TimeoutError:
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


class StreamsBig:
    """Streams ``count`` chunks of ``size`` bytes (chunk n is filled with byte n % 251)."""

    def __init__(self, size: int, count: int) -> None:
        self.size = size
        self.count = count
        self.sent = 0  # chunks whose ``send`` has returned

    @staticmethod
    def chunk(n: int, size: int) -> bytes:
        return bytes([n % 251]) * size

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        total = b"%d" % (self.size * self.count)
        await send(
            {"type": "http.response.start", "status": 200, "headers": [(b"content-length", total)]}
        )
        for n in range(self.count):
            more = n < self.count - 1
            body = self.chunk(n, self.size)
            await send({"type": "http.response.body", "body": body, "more_body": more})
            self.sent += 1


class ReadsLate:
    """Waits ``delay`` seconds before the first ``receive``; answers with the body's sha256."""

    def __init__(self, delay: float) -> None:
        self.delay = delay
        self.first_size = -1  # bytes the first receive handed over: what the server had buffered

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        await asyncio.sleep(self.delay)
        digest = hashlib.sha256()
        size = 0
        while True:
            message = await receive()
            body = message.get("body", b"")
            if self.first_size < 0:
                self.first_size = len(body)
            digest.update(body)
            size += len(body)
            if not message.get("more_body"):
                break
        await send({"type": "http.response.start", "status": 200, "headers": []})
        answer = b"%d %s" % (size, digest.hexdigest().encode())
        await send({"type": "http.response.body", "body": answer})


async def receive_after_body(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """Reads the whole body, then reports what the next ``receive()`` gives (as Django does)."""
    body = await read_body(receive)
    try:
        after = (await asyncio.wait_for(receive(), 0.3))["type"]
    except TimeoutError:
        after = "waiting"
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"%d %s" % (len(body), after.encode())})


class Replay:
    """Reads the request body, then sends ``messages`` in order. What ``send`` raises goes to
    the server (as from any app) and is also kept in ``errors``."""

    def __init__(self, *messages: dict[str, Any]) -> None:
        self.messages = messages
        self.errors: list[BaseException] = []

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        while (await receive()).get("more_body"):
            pass
        for message in self.messages:
            try:
                await send(message)
            except BaseException as exc:
                self.errors.append(exc)
                raise


def start(status: Any = 200, headers: Any = (), **extra: Any) -> dict[str, Any]:
    return {"type": "http.response.start", "status": status, "headers": list(headers), **extra}


def body(data: bytes = b"", more: bool = False) -> dict[str, Any]:
    return {"type": "http.response.body", "body": data, "more_body": more}


async def ok(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """200 "ok" with a content-length: the well-behaved second request on a connection."""
    if scope["type"] != "http":
        return
    await send(start(200, [(b"content-length", b"2")]))
    await send(body(b"ok"))


class ByPath:
    """Routes on the first path segment: ``/ok`` to ``ok``, others to ``apps[path]``."""

    def __init__(self, apps: dict[str, Any] | None = None) -> None:
        self.apps: dict[str, Any] = apps if apps is not None else {}

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        app = ok if scope["path"] == "/ok" else self.apps[scope["path"]]
        await app(scope, receive, send)


class SendsAfterLeaving:
    """Waits for the client to leave (http.disconnect), then sends a response anyway."""

    def __init__(self) -> None:
        self.disconnects = 0
        self.done = asyncio.Event()

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        try:
            while (await receive())["type"] != "http.disconnect":
                pass
            self.disconnects += 1
            await send(start(200))
            await send(body(b"too late"))
        finally:
            self.done.set()


class PathSend:
    """Answers with http.response.pathsend of ``path`` (content-length set if ``length``)."""

    def __init__(self, path: str, length: int | None = None) -> None:
        self.path = path
        self.length = length

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        headers = [] if self.length is None else [(b"content-length", b"%d" % self.length)]
        await send(start(200, headers))
        await send({"type": "http.response.pathsend", "path": self.path})


async def echo_headers(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """Answers with the request's header fields and its scope ``server`` as text, one a line."""
    if scope["type"] != "http":
        return
    while (await receive()).get("more_body"):
        pass
    lines = [b"%s=[%s]" % (name, value) for name, value in scope["headers"]]
    server = scope["server"]
    lines.append(b"server=%s:%s" % (str(server[0]).encode(), str(server[1]).encode()))
    await send(start(200))
    await send(body(b"\n".join(lines)))


async def pathsend_from_env(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """http.response.pathsend of the file named by $SWITCHBOARD_TEST_FILE (subprocess servers)."""
    import os

    await PathSend(os.environ["SWITCHBOARD_TEST_FILE"])(scope, receive, send)
