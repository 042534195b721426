"""Consumers: ASGI applications that dispatch each incoming message to a handler method.

A consumer instance serves one connection (scope). It reads from the client's ``receive``
and, when a channel layer is configured, from its own layer channel, handling one message at
a time in arrival order (the loops doing so are in :mod:`switchboard.dispatch`).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

from asgiref.sync import async_to_sync

from switchboard.db import database_sync_to_async
from switchboard.dispatch import (
    Inbox,
    LayerSource,
    Receive,
    Send,
    concurrent_dispatch_loop,
    dispatch_loop,
    layer_source,
)
from switchboard.exceptions import InvalidChannelLayerError, StopConsumer
from switchboard.gateway.protocol.scope import report_busy
from switchboard.layers import BaseChannelLayer, get_channel_layer
from switchboard.layers.registry import DEFAULT_CHANNEL_LAYER

__all__ = ["AsyncConsumer", "SyncConsumer", "get_handler_name"]

logger = logging.getLogger("switchboard.consumer")


# Message type -> handler name, for the types seen so far (bounded: layer messages may carry
# any type). Besides saving the work, handing getattr the same string object each time lets
# the interpreter's attribute cache, which matches names by identity, find the method.
_HANDLER_NAMES: dict[str, str] = {}
_HANDLER_NAMES_MAX = 512


def get_handler_name(message: dict[str, Any]) -> str:
    """``"websocket.receive"`` -> ``"websocket_receive"``; private names are refused."""
    if "type" not in message:
        raise ValueError("Incoming message has no 'type' attribute")
    message_type = message["type"]
    if not isinstance(message_type, str):
        raise ValueError(f"Message type must be a string, got {message_type!r}")
    if type(message_type) is str:
        handler_name = _HANDLER_NAMES.get(message_type)
        if handler_name is not None:
            return handler_name
    handler_name = message_type.replace(".", "_")
    # A leading underscore would let a remote sender call private methods.
    if handler_name.startswith("_"):
        raise ValueError(f"Malformed type in message (leading underscore): {message_type!r}")
    if len(_HANDLER_NAMES) < _HANDLER_NAMES_MAX and type(message_type) is str:
        _HANDLER_NAMES[message_type] = handler_name
    return handler_name


class AsyncConsumer:
    """Base consumer: handlers are ``async def <type_with_underscores>(self, message)``."""

    channel_layer_alias: str = DEFAULT_CHANNEL_LAYER
    # Groups joined on the consumer's behalf (``groups``); made on first use, since an empty
    # set per idle connection adds up.
    _joined_groups: set[str] | None = None
    # Opt-in: up to this many messages handled at once (switchboard.dispatch);
    # 1, the default, handles them one at a time, in order.
    max_concurrent_messages: int = 1
    # Set while the dispatch loop runs: the layer is waited on once the channel name is read.
    _inbox: Inbox | None = None
    _channel_name: str

    def __init__(self, **kwargs: Any) -> None:
        for key, value in kwargs.items():
            setattr(self, key, value)

    async def __call__(self, scope: dict[str, Any], receive: Receive, send: Send) -> None:
        self.scope = scope
        self.channel_layer = get_channel_layer(self.channel_layer_alias)
        if self.channel_layer is not None:
            self.channel_name = await self.channel_layer.new_channel()
        self.base_send = send
        try:
            if self.channel_layer is None:
                await dispatch_loop(receive, None, self.dispatch)
            elif self.max_concurrent_messages == 1:
                self._inbox = inbox = Inbox(receive)
                if "receive_future" not in getattr(self.channel_layer, "extensions", ()):
                    # Another layer's receive runs in a task: waited on from the start, as
                    # its own clean-up expects.
                    inbox.listen(layer_source(self.channel_layer, self._channel_name))
                if inbox.direct:
                    # Unless a subclass has its own dispatch, what dispatch does is done here
                    # (a coroutine less per message).
                    own = type(self).dispatch is AsyncConsumer.dispatch
                    try:  # Inbox.run's loop, here: a coroutine less per idle connection
                        while True:
                            message = await inbox.next()
                            if message is not None:
                                if own:
                                    await self._get_handler(message)(message)
                                else:
                                    await self.dispatch(message)
                                message = None  # not kept alive while the connection idles
                    finally:
                        await inbox.finish()
                else:
                    await inbox.run(self.dispatch)
            else:
                await self._dispatch_concurrently(
                    receive, layer_source(self.channel_layer, self._channel_name)
                )
        except StopConsumer:
            pass
        finally:
            await self._leave_groups()

    @property
    def channel_name(self) -> str:
        """This consumer's channel on the layer (Channels' attribute).

        With Switchboard's layers, reading it starts the wait on the layer: no message can
        come before someone is told the name, so a consumer that never uses its channel costs
        the layer nothing.
        """
        try:
            name = self._channel_name
        except AttributeError:
            raise AttributeError(
                f"{type(self).__name__!r} object has no attribute 'channel_name'"
            ) from None
        inbox = self._inbox
        if inbox is not None and not inbox.listening and self.channel_layer is not None:
            inbox.listen(layer_source(self.channel_layer, name))
        return name

    @channel_name.setter
    def channel_name(self, value: str) -> None:
        self._channel_name = value

    async def _dispatch_concurrently(
        self, receive: Receive, next_layer_message: LayerSource | None
    ) -> None:
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
            report_busy(self.scope),
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
        name = self._channel_name
        release = getattr(layer, "release_channel", None)
        if release is not None:
            await release(name)
        groups = self._joined_groups
        while groups:
            await layer.group_discard(groups.pop(), name)

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
        await self._get_handler(message)(message)

    def _get_handler(self, message: dict[str, Any]) -> Callable[..., Any]:
        try:  # get_handler_name's cache, looked up here: this runs for every message
            name = _HANDLER_NAMES[message["type"]]
        except (KeyError, TypeError):
            name = get_handler_name(message)  # a type not seen yet, or the error to raise
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
