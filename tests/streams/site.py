"""The application the stream tests serve, and clients for it.

``/streams/``: a :class:`SignedStreamConsumer` behind Django's sessions and auth (the same
route answers WebSocket and, through the SSE transport, EventSource requests).
"""

from __future__ import annotations

import asyncio
import json
import uuid
from typing import Any

from asgiref.sync import sync_to_async
from django.conf import settings
from django.contrib.auth import get_user_model
from django.test import Client as DjangoClient
from django.urls import path
from websockets.asyncio.client import ClientConnection, connect

from switchboard.auth import AuthMiddlewareStack
from switchboard.routing import ProtocolTypeRouter, URLRouter
from switchboard.streams import SignedStreamConsumer


async def not_found(scope, receive, send) -> None:
    await send({"type": "http.response.start", "status": 404, "headers": []})
    await send({"type": "http.response.body", "body": b"not found"})


application = ProtocolTypeRouter(
    {
        "http": not_found,
        "websocket": AuthMiddlewareStack(
            URLRouter([path("streams/", SignedStreamConsumer.as_asgi())])
        ),
    }
)


async def new_user() -> Any:
    name = f"user-{uuid.uuid4().hex[:8]}"
    return await sync_to_async(get_user_model().objects.create_user)(name, password="pw")


async def session_cookie(user: Any) -> str:
    """A real logged-in session (Django's test client's login), as a Cookie header value."""

    def login() -> str:
        client = DjangoClient()
        client.force_login(user)
        return (
            f"{settings.SESSION_COOKIE_NAME}={client.cookies[settings.SESSION_COOKIE_NAME].value}"
        )

    return await sync_to_async(login)()


class Socket:
    """A WebSocket client of the streams route."""

    def __init__(self, ws: ClientConnection) -> None:
        self.ws = ws

    @classmethod
    async def open(cls, host: str, query: str = "", cookie: str | None = None) -> Socket:
        headers = [("Cookie", cookie)] if cookie else None
        url = f"ws://{host}/streams/" + (f"?{query}" if query else "")
        return cls(await connect(url, additional_headers=headers, open_timeout=10))

    async def send(self, frame: dict[str, Any]) -> None:
        await self.ws.send(json.dumps(frame))

    async def text(self, timeout: float = 10) -> str:
        return await asyncio.wait_for(self.ws.recv(), timeout)  # type: ignore[return-value]

    async def next(self, timeout: float = 10) -> dict[str, Any]:
        return json.loads(await self.text(timeout))

    async def subscribe(self, token: str, **extra: Any) -> dict[str, Any]:
        await self.send({"sb": "sub", "topic": token, **extra})
        return await self.next()

    async def close(self) -> None:
        await self.ws.close()
