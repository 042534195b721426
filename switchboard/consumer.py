"""Consumers: ASGI applications that dispatch each incoming message to a handler method.

A consumer instance serves one connection (scope). It reads from the client's ``receive``
and, when a channel layer is configured, from its own layer channel, handling one message at
a time in arrival order.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Awaitable, Callable
from typing import Any

from asgiref.sync import async_to_sync

from switchboard import DEFAULT_CHANNEL_LAYER
from switchboard.db import database_sync_to_async
from switchboard.exceptions import StopConsumer
from switchboard.layers import get_channel_layer

__all__ = ["AsyncConsumer", "SyncConsumer", "get_handler_name"]

Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]


def get_handler_name(message: dict[str, Any]) -> str:
    """``"websocket.receive"`` -> ``"websocket_receive"``; private names are refused."""
    if "type" not in message:
        raise ValueError("Incoming message has no 'type' attribute")
    message_type = message["type"]
    if not isinstance(message_type, str):
        raise ValueError(f"Message type must be a string, got {message_type!r}")
    handler_name = message_type.replace(".", "_")
    # A leading underscore would let a remote sender call private methods.
    if handler_name.startswith("_"):
        raise ValueError(f"Malformed type in message (leading underscore): {message_type!r}")
    return handler_name


async def _dispatch_loop(
    client_receive: Receive,
    layer_receive: Callable[[], Awaitable[dict[str, Any]]] | None,
    dispatch: Callable[[dict[str, Any]], Awaitable[None]],
) -> None:
    """Feed messages from both sources to ``dispatch``, strictly one at a time.

    Each source keeps one pending task; only the source that produced a message is re-armed,
    so no message is read before the previous one has been handled.
    """
    sources: list[Callable[[], Awaitable[dict[str, Any]]]] = [client_receive]
    if layer_receive is not None:
        sources.append(layer_receive)
    pending: dict[asyncio.Future[dict[str, Any]], int] = {
        asyncio.ensure_future(source()): index for index, source in enumerate(sources)
    }
    try:
        while True:
            done, _ = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
            # Client messages first when both are ready: a disconnect should not wait.
            for task in sorted(done, key=lambda t: pending[t]):
                index = pending.pop(task)
                await dispatch(task.result())
                pending[asyncio.ensure_future(sources[index]())] = index
    finally:
        for task in pending:
            task.cancel()
        if pending:
            await asyncio.gather(*pending, return_exceptions=True)


class AsyncConsumer:
    """Base consumer: handlers are ``async def <type_with_underscores>(self, message)``."""

    channel_layer_alias: str = DEFAULT_CHANNEL_LAYER

    def __init__(self, **kwargs: Any) -> None:
        for key, value in kwargs.items():
            setattr(self, key, value)

    async def __call__(self, scope: dict[str, Any], receive: Receive, send: Send) -> None:
        self.scope = scope
        self.channel_layer = get_channel_layer(self.channel_layer_alias)
        self._joined_groups: set[str] = set()
        layer_receive = None
        if self.channel_layer is not None:
            self.channel_name = await self.channel_layer.new_channel()
            layer_receive = functools.partial(self.channel_layer.receive, self.channel_name)
        self.channel_receive = layer_receive
        self.base_send = send
        try:
            await _dispatch_loop(receive, layer_receive, self.dispatch)
        except StopConsumer:
            pass
        finally:
            await self._leave_groups()

    async def _leave_groups(self) -> None:
        # Memberships left behind (say, the connection task was cancelled) would otherwise
        # receive group messages until they expire.
        groups = getattr(self, "_joined_groups", set())
        while groups and self.channel_layer is not None:
            await self.channel_layer.group_discard(groups.pop(), self.channel_name)

    async def dispatch(self, message: dict[str, Any]) -> None:
        handler = self._get_handler(message)
        await handler(message)

    def _get_handler(self, message: dict[str, Any]) -> Callable[..., Any]:
        name = get_handler_name(message)
        handler = getattr(self, name, None)
        if handler is None:
            raise ValueError(f"No handler for message type {message['type']!r}")
        return handler

    async def send(self, message: dict[str, Any]) -> None:
        """Send a message to the client (ASGI ``send``)."""
        await self.base_send(message)

    @classmethod
    def as_asgi(cls, **initkwargs: Any) -> Callable[..., Awaitable[None]]:
        """An ASGI application creating one consumer per connection with ``initkwargs`` set."""
        for key in initkwargs:
            if not hasattr(cls, key):
                raise TypeError(
                    f"{cls.__name__}.as_asgi() received an invalid keyword {key!r}: only "
                    "attributes the class already defines may be set"
                )

        async def app(scope: dict[str, Any], receive: Receive, send: Send) -> None:
            consumer = cls(**initkwargs)
            await consumer(scope, receive, send)

        app.consumer_class = cls  # type: ignore[attr-defined]
        app.consumer_initkwargs = initkwargs  # type: ignore[attr-defined]
        # Not functools.update_wrapper: __wrapped__ would make introspection see the class.
        app.__name__ = app.__qualname__ = cls.__name__
        app.__doc__ = cls.__doc__
        app.__module__ = cls.__module__
        return app


class SyncConsumer(AsyncConsumer):
    """Consumer whose handlers are plain functions run in a thread (safe for the ORM).

    Inside handlers ``self.send`` is synchronous.
    """

    @database_sync_to_async
    def dispatch(self, message: dict[str, Any]) -> None:  # type: ignore[override]
        handler = self._get_handler(message)
        handler(message)

    def send(self, message: dict[str, Any]) -> None:  # type: ignore[override]
        """Send a message to the client from sync code (a handler's thread)."""
        async_to_sync(self.base_send)(message)
