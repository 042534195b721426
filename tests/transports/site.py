"""The application the in-process transport tests serve (``tests.support.serving``).

WebSocket routes, behind ``AllowedHostsOriginValidator`` as a real project has them:
``ws/echo/`` (:class:`Echo`, driven by its text frames), ``ws/deny/`` (refused before
accept), ``ws/teapot/`` (its own denial response, 418) and ``ws/room/`` (a
``RealtimeConsumer`` on topic ``room``). Any other HTTP request: ``200 http``.
"""

from __future__ import annotations

import asyncio
from typing import Any

from django.urls import path

from switchboard.generic.websocket import AsyncWebsocketConsumer
from switchboard.realtime import RealtimeConsumer, publish
from switchboard.routing import ProtocolTypeRouter, URLRouter
from switchboard.security.websocket import AllowedHostsOriginValidator


class Events:
    """What the consumers saw, for tests to await: ``(what, value)`` tuples."""

    queue: asyncio.Queue[tuple[str, Any]] | None = None

    @classmethod
    def put(cls, what: str, value: Any) -> None:
        if cls.queue is not None:
            cls.queue.put_nowait((what, value))


class Echo(AsyncWebsocketConsumer):
    """``flood N`` sends N frames; ``close`` closes with 4000; ``bytes``, ``event``, ``scope``
    send what they say; anything else comes back as ``echo:<text>``."""

    async def connect(self) -> None:
        await self.accept()

    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None):
        if bytes_data is not None:
            await self.send(text_data="got bytes:" + bytes_data.hex())
        elif text_data.startswith("flood "):
            count = int(text_data.split()[1])
            for i in range(count):
                await self.send(text_data=f"f{i}")
            Events.put("flooded", count)
        elif text_data == "close":
            await self.close(code=4000, reason="bye")
        elif text_data == "bytes":
            await self.send(bytes_data=b"\x00\xff")
        elif text_data == "event":
            await self.base_send(
                {"type": "sb.sse.event", "id": "e:1", "event": "news", "data": "a\nb"}
            )
        elif text_data == "scope":
            headers = {k.decode(): v.decode() for k, v in self.scope["headers"]}
            await self.send_json_text(
                {
                    "transport": self.scope.get("transport"),
                    "query": self.scope["query_string"].decode(),
                    "scheme": self.scope["scheme"],
                    "origin": headers.get("origin"),
                    "last_event_id": headers.get("last-event-id"),
                }
            )
        else:
            await self.send(text_data="echo:" + text_data)

    async def send_json_text(self, value: Any) -> None:
        import json

        await self.send(text_data=json.dumps(value))

    async def disconnect(self, code: int) -> None:
        Events.put("disconnect", code)


class Deny(AsyncWebsocketConsumer):
    async def connect(self) -> None:
        await self.close()


async def teapot(scope: dict[str, Any], receive: Any, send: Any) -> None:
    assert (await receive())["type"] == "websocket.connect"
    headers = [(b"content-type", b"text/plain")]
    await send({"type": "websocket.http.response.start", "status": 418, "headers": headers})
    await send({"type": "websocket.http.response.body", "body": b"short and stout"})


class Room(RealtimeConsumer):
    async def connect(self) -> None:
        self.allowed_topics = {"room"}
        await self.accept()

    async def receive_json(self, content: Any, **kwargs: Any) -> None:
        if isinstance(content, dict) and "publish" in content:
            position = await publish("room", content["publish"])
            await self.send_json({"published": position.offset})


async def http_app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    headers = [(b"content-type", b"text/plain")]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": b"http"})


websocket_routes = URLRouter(
    [
        path("ws/echo/", Echo.as_asgi()),
        path("ws/deny/", Deny.as_asgi()),
        path("ws/teapot/", teapot),
        path("ws/room/", Room.as_asgi()),
    ]
)

application = ProtocolTypeRouter(
    {"http": http_app, "websocket": AllowedHostsOriginValidator(websocket_routes)}
)
