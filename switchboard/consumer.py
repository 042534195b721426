"""Consumers: ASGI applications that dispatch each incoming message to a handler method.

A consumer instance serves one connection (scope). It reads from the client's ``receive``
and, when a channel layer is configured, from its own layer channel, handling one message at
a time in arrival order.
"""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from asgiref.sync import async_to_sync

from switchboard.db import database_sync_to_async
from switchboard.exceptions import InvalidChannelLayerError, StopConsumer
from switchboard.layers import BaseChannelLayer, get_channel_layer
from switchboard.layers.registry import DEFAULT_CHANNEL_LAYER

__all__ = ["AsyncConsumer", "SyncConsumer", "get_handler_name"]

logger = logging.getLogger("switchboard.consumer")

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


LayerSource = Callable[[], "asyncio.Future[dict[str, Any]]"]


def layer_source(layer: Any, channel: str) -> LayerSource:
    """A function returning a future for the next message on ``channel``.

    Layers listing ``receive_future`` in ``extensions`` (Switchboard's own) wait
    without a task; any other layer's ``receive`` coroutine is wrapped in one.
    """
    if "receive_future" in getattr(layer, "extensions", ()):
        return functools.partial(layer.receive_future, channel)
    receive = layer.receive
    return lambda: asyncio.ensure_future(receive(channel))


class _Inbox:
    """Messages from the client and the layer for one consumer, in arrival order.

    A client message comes with a future its reader waits on until the message has been
    handled; a layer message is the layer's (done) future itself. Slots rather than closures:
    this lives as long as the connection, so its size is per-connection memory.
    """

    __slots__ = ("layer_future", "next_layer_message", "ready", "waiter")

    def __init__(self, next_layer_message: LayerSource) -> None:
        self.ready: list[tuple[Any, asyncio.Future[None] | None]] = []
        self.waiter: asyncio.Future[None] | None = None
        self.next_layer_message = next_layer_message
        self.layer_future: asyncio.Future[dict[str, Any]] | None = None

    def wake(self, _: Any = None) -> None:
        waiter = self.waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def ask_layer(self) -> None:
        future = self.layer_future = self.next_layer_message()
        future.add_done_callback(self.layer_done)

    def layer_done(self, future: asyncio.Future[dict[str, Any]]) -> None:
        if not future.cancelled():
            self.ready.append((future, None))
            self.wake()

    async def read_client(self, client_receive: Receive) -> None:
        loop = asyncio.get_running_loop()
        while True:
            message = await client_receive()
            handled = loop.create_future()
            self.ready.append((message, handled))
            self.wake()
            await handled

    def close(self) -> asyncio.Future[dict[str, Any]] | None:
        """Withdraw the wait on the layer; returns it, for the caller to let it finish."""
        self.waiter = None
        future = self.layer_future
        if future is not None:
            future.remove_done_callback(self.layer_done)
            future.cancel()
        return future


async def _dispatch_loop(
    client_receive: Receive,
    next_layer_message: LayerSource | None,
    dispatch: Callable[[dict[str, Any]], Awaitable[None]],
) -> None:
    """Feed messages from the client and the layer to ``dispatch``, one at a time, in order.

    Without a layer the client is read directly. With one, a long-lived reader task hands
    each client message over and waits until it has been handled before reading the next,
    and the layer is asked for its next message only after the previous one was handled:
    nothing is read ahead, so the server's and the layer's flow control stay in force.
    Handlers always run in this task, in its context.
    """
    if next_layer_message is None:
        while True:
            await dispatch(await client_receive())
    loop = asyncio.get_running_loop()
    inbox = _Inbox(next_layer_message)
    ready = inbox.ready
    reader = loop.create_task(inbox.read_client(client_receive))
    reader.add_done_callback(inbox.wake)  # a failing client source must not leave us waiting
    inbox.ask_layer()
    try:
        while True:
            while not ready:
                if reader.done():
                    reader.result()  # raises what the client source raised
                inbox.waiter = loop.create_future()
                await inbox.waiter
            item, handled = ready.pop(0)
            if handled is None:  # the layer's future: its result (or error) is the message
                await dispatch(item.result())
                inbox.ask_layer()
                continue
            try:
                await dispatch(item)
            finally:
                if not handled.done():
                    handled.set_result(None)
    finally:
        # A third-party layer's receive runs in a task: its cancellation (and the layer's own
        # clean-up of the channel) completes only when awaited, so the consumer ends after it.
        layer_wait = inbox.close()
        reader.cancel()
        await asyncio.gather(reader, *([layer_wait] if layer_wait else []), return_exceptions=True)


class AsyncConsumer:
    """Base consumer: handlers are ``async def <type_with_underscores>(self, message)``."""

    channel_layer_alias: str = DEFAULT_CHANNEL_LAYER
    # Groups joined on the consumer's behalf (``groups``); made on first use, since an empty
    # set per idle connection adds up.
    _joined_groups: set[str] | None = None
    # Opt-in: up to this many messages handled at once (switchboard.concurrent_dispatch);
    # 1, the default, handles them one at a time, in order.
    max_concurrent_messages: int = 1

    def __init__(self, **kwargs: Any) -> None:
        for key, value in kwargs.items():
            setattr(self, key, value)

    async def __call__(self, scope: dict[str, Any], receive: Receive, send: Send) -> None:
        self.scope = scope
        self.channel_layer = get_channel_layer(self.channel_layer_alias)
        next_layer_message = None
        if self.channel_layer is not None:
            self.channel_name = await self.channel_layer.new_channel()
            next_layer_message = layer_source(self.channel_layer, self.channel_name)
        self.base_send = send
        try:
            if self.max_concurrent_messages == 1:
                await _dispatch_loop(receive, next_layer_message, self.dispatch)
            else:
                await self._dispatch_concurrently(receive, next_layer_message)
        except StopConsumer:
            pass
        finally:
            await self._leave_groups()

    async def _dispatch_concurrently(
        self, receive: Receive, next_layer_message: LayerSource | None
    ) -> None:
        from switchboard.concurrent_dispatch import concurrent_dispatch_loop

        if isinstance(self, SyncConsumer):
            # Sync handlers share one thread (thread-sensitive, for the ORM): nothing to gain.
            raise TypeError(
                f"{type(self).__name__}: max_concurrent_messages needs an async consumer"
            )
        await concurrent_dispatch_loop(
            receive,
            next_layer_message,
            self.dispatch,
            self.max_concurrent_messages,
            self.concurrency_key,
        )

    def concurrency_key(self, message: dict[str, Any]) -> Any:
        """With ``max_concurrent_messages > 1``: messages sharing a key (not None) keep their
        order; None (the default) lets a message run alongside any other."""
        return None

    async def _leave_groups(self) -> None:
        # Runs however the consumer ended (returned, raised, cancelled): memberships left
        # behind would receive group messages until group_expiry. Our layers know every group
        # the channel joined, including group_add calls made by hand; for any other layer,
        # leave at least the groups joined on the consumer's behalf (``groups``).
        layer = self.channel_layer
        if layer is None:
            return
        release = getattr(layer, "release_channel", None)
        if release is not None:
            await release(self.channel_name)
        groups = self._joined_groups
        while groups:
            await layer.group_discard(groups.pop(), self.channel_name)

    def _required_layer(self, needed_by: str) -> BaseChannelLayer:
        """The channel layer, which ``needed_by`` (what the consumer does) cannot do without."""
        layer = self.channel_layer
        if layer is None:
            raise InvalidChannelLayerError(
                f"{type(self).__name__} {needed_by} but channel layer "
                f"{self.channel_layer_alias!r} is not configured (CHANNEL_LAYERS)"
            )
        return layer

    def _track_group(self, group: str) -> None:
        if self._joined_groups is None:
            self._joined_groups = set()
        self._joined_groups.add(group)

    def _untrack_group(self, group: str) -> None:
        if self._joined_groups:
            self._joined_groups.discard(group)

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
        """Send a message to the client (ASGI ``send``).

        A send after the client left is dropped: the disconnect message that follows runs
        the consumer's cleanup (``disconnect``, leaving groups), which an error raised here
        would skip.
        """
        try:
            await self.base_send(message)
        except OSError as exc:  # the server's "client disconnected" error
            logger.debug("Dropped %s: %s", message.get("type"), exc)

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
    def dispatch(self, message: dict[str, Any]) -> None:
        handler = self._get_handler(message)
        handler(message)

    def send(self, message: dict[str, Any]) -> None:  # type: ignore[override]
        """Send a message to the client from sync code (a handler's thread)."""
        async_to_sync(AsyncConsumer.send)(self, message)
