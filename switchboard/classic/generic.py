"""Channels 1's class-based consumers: ``BaseConsumer``, ``WebsocketConsumer``,
``JsonWebsocketConsumer``, and the ``WebsocketMultiplexer`` a demultiplexed consumer sends with.

A class-based consumer is routed with ``route_class(Consumer, **filters)`` (or
``Consumer.as_route(**filters)``) and called by the worker like any consumer,
``Consumer(message, **kwargs)``: every message gets a new instance, whose ``__init__`` hands the
message at once to the method ``method_mapping`` names for its channel. ``self.message`` and
``self.kwargs`` (the routing's keyword arguments) are set first, so handlers may keep state on
``self`` for the length of one message and no longer.

Class attributes wrap the handler in the session, user and ordering decorators of
:mod:`~switchboard.classic.sessions` and :mod:`~switchboard.classic.auth`: the first of
``http_user_and_session`` (``channel_and_http_session_user_from_http``), ``http_user``
(``channel_session_user_from_http``), ``channel_session_user`` and ``channel_session``; then,
outside it, ``strict_ordering`` or ``slight_ordering`` (``enforce_ordering``). The two
``http_*`` ones take the user from the connect message's cookies and keep it in the channel
session, so ``message.user`` is there on every message of the connection.

The demultiplexer is in :mod:`~switchboard.classic.demultiplex`.
"""

from __future__ import annotations

import inspect
import json
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, ClassVar

from django.core.serializers.json import DjangoJSONEncoder

from switchboard.classic import auth, sessions
from switchboard.classic.channel import Channel, Group
from switchboard.classic.routing import RouteClass, route_class
from switchboard.exceptions import SendNotAvailableOnDemultiplexer

if TYPE_CHECKING:
    from switchboard.classic.message import Message

__all__ = [
    "BaseConsumer",
    "JsonWebsocketConsumer",
    "SendNotAvailableOnDemultiplexer",
    "WebsocketConsumer",
    "WebsocketMultiplexer",
]

Handler = Callable[..., Any]


def _decorate(consumer: BaseConsumer, handler: Handler) -> Handler:
    # The *_from_http decorators act as channel_session_user on messages without headers:
    # each of these four gives message.user (or the channel session) on every message.
    if consumer.http_user_and_session:
        handler = auth.channel_and_http_session_user_from_http(handler)
    elif consumer.http_user:
        handler = auth.channel_session_user_from_http(handler)
    elif consumer.channel_session_user:
        handler = auth.channel_session_user(handler)
    elif consumer.channel_session:
        handler = sessions.channel_session(handler)
    if consumer.strict_ordering:
        handler = sessions.enforce_ordering(handler, slight=False)
    elif consumer.slight_ordering:
        handler = sessions.enforce_ordering(handler, slight=True)
    return handler


def _decorated(consumer: BaseConsumer) -> bool:
    return any(
        (
            consumer.channel_session,
            consumer.channel_session_user,
            consumer.http_user,
            consumer.http_user_and_session,
            consumer.strict_ordering,
            consumer.slight_ordering,
        )
    )


class BaseConsumer:
    """A class-based consumer: ``method_mapping = {channel name: method name}``; each handler
    is called as ``method(message, **kwargs)``."""

    method_mapping: ClassVar[Mapping[str, str]] = {}

    channel_session: ClassVar[bool] = False
    channel_session_user: ClassVar[bool] = False
    http_user: ClassVar[bool] = False
    http_user_and_session: ClassVar[bool] = False
    strict_ordering: ClassVar[bool] = False
    slight_ordering: ClassVar[bool] = False

    def __init__(self, message: Message, **kwargs: Any) -> None:
        self.message = message
        self.kwargs = kwargs
        self.dispatch(message, **kwargs)

    @classmethod
    def channel_names(cls) -> set[str]:
        """The channels this class consumes (what ``route_class`` listens to)."""
        return set(cls.method_mapping)

    @classmethod
    def as_route(cls, attrs: Mapping[str, Any] | None = None, **filters: str) -> RouteClass:
        """``route_class(cls, **filters)``; ``attrs`` makes a subclass with those attributes
        first (one class routed several ways)."""
        consumer: type[BaseConsumer] = cls
        if attrs:
            consumer = type(cls.__name__, (cls,), dict(attrs))
        return route_class(consumer, **filters)

    def get_handler(self, message: Message, **kwargs: Any) -> Handler:
        """The method for ``message``'s channel, wrapped in the decorators the class asks for.
        Override to add decorators of your own around what this returns."""
        channel = message.channel.name
        name = self.method_mapping.get(channel)
        if name is None:
            raise ValueError(f"{type(self).__qualname__} has no method for channel {channel!r}")
        handler: Handler = getattr(self, name)
        return _decorate(self, handler) if _decorated(self) else handler

    def dispatch(self, message: Message, **kwargs: Any) -> Any:
        return self.get_handler(message, **kwargs)(message, **kwargs)


def _frame(text: str | None, bytes_: bytes | None, close: bool | int) -> dict[str, Any]:
    frame: dict[str, Any] = {}
    if text is not None:
        frame["text"] = text
    elif bytes_ is not None:
        frame["bytes"] = bytes_
    elif not close:
        raise ValueError("send() needs text or bytes (or close)")
    if close:
        frame["close"] = close
    return frame


def _accepted_kwargs(func: Callable[..., Any], kwargs: dict[str, Any]) -> dict[str, Any]:
    """The part of ``kwargs`` that ``func`` takes: Channels' documented
    ``connection_groups(self)`` takes none, yet routes and demultiplexers pass some."""
    try:
        params = inspect.signature(func).parameters.values()
    except (TypeError, ValueError):
        return kwargs
    if any(p.kind is p.VAR_KEYWORD for p in params):
        return kwargs
    names = {p.name for p in params if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)}
    return {k: v for k, v in kwargs.items() if k in names}


def reply_channel_of(message: Message) -> Channel:
    if message.reply_channel is None:
        raise ValueError(f"A WebSocket message without a reply_channel on {message.channel.name}")
    return message.reply_channel


class WebsocketConsumer(BaseConsumer):
    """A WebSocket connection's three events, with groups joined at connect and left at
    disconnect (``groups``, or ``connection_groups(**kwargs)``)."""

    method_mapping: ClassVar[Mapping[str, str]] = {
        "websocket.connect": "raw_connect",
        "websocket.receive": "raw_receive",
        "websocket.disconnect": "raw_disconnect",
    }

    #: Groups every connection joins (what ``connection_groups`` returns by default).
    groups: ClassVar[Sequence[str] | None] = None

    #: The connection's path, from the message being handled.
    path: str | None = None

    def get_handler(self, message: Message, **kwargs: Any) -> Handler:
        self.path = message.get("path")
        return super().get_handler(message, **kwargs)

    @property
    def multiplexer(self) -> WebsocketMultiplexer | None:
        """The multiplexer a demultiplexer gave this consumer, or None when it has the socket
        to itself."""
        multiplexer = self.kwargs.get("multiplexer")
        return multiplexer if isinstance(multiplexer, WebsocketMultiplexer) else None

    def connection_groups(self, **kwargs: Any) -> Sequence[str]:
        """Groups this connection joins at connect and leaves at disconnect."""
        return list(self.groups or [])

    def _connection_groups(self, kwargs: dict[str, Any]) -> Sequence[str]:
        return self.connection_groups(**_accepted_kwargs(self.connection_groups, kwargs))

    def raw_connect(self, message: Message, **kwargs: Any) -> None:
        for name in self._connection_groups(kwargs):
            Group(name, channel_layer=message.channel_layer).add(reply_channel_of(message))
        self.connect(message, **kwargs)

    def connect(self, message: Message, **kwargs: Any) -> None:
        """Accepts the connection; override to refuse it (``self.close()``) or do more."""
        if self.multiplexer is None:  # a demultiplexer has already accepted it
            reply_channel_of(self.message).send({"accept": True})

    def raw_receive(self, message: Message, **kwargs: Any) -> None:
        if message.get("text") is not None:
            self.receive(text=message["text"], **kwargs)
        else:
            self.receive(bytes=message.get("bytes"), **kwargs)

    def receive(self, text: str | None = None, bytes: bytes | None = None, **kwargs: Any) -> None:
        """A frame from the client: ``text`` or ``bytes``."""

    def raw_disconnect(self, message: Message, **kwargs: Any) -> None:
        for name in self._connection_groups(kwargs):
            Group(name, channel_layer=message.channel_layer).discard(reply_channel_of(message))
        self.disconnect(message, **kwargs)

    def disconnect(self, message: Message, **kwargs: Any) -> None:
        """The connection is gone (``message["code"]`` says how)."""

    def send(
        self, text: str | None = None, bytes: bytes | None = None, close: bool | int = False
    ) -> None:
        """A frame to this connection (sent when the consumer returns); ``close`` closes it
        after the frame (True, or a close code)."""
        if self.multiplexer is not None:
            raise SendNotAvailableOnDemultiplexer(
                f"{type(self).__qualname__} runs behind a demultiplexer: send with the "
                "multiplexer keyword argument (multiplexer.send(payload))"
            )
        reply_channel_of(self.message).send(_frame(text, bytes, close))

    @classmethod
    def group_send(
        cls,
        name: str,
        text: str | None = None,
        bytes: bytes | None = None,
        close: bool | int = False,
    ) -> None:
        """A frame to every connection in the group ``name``."""
        Group(name).send(_frame(text, bytes, close))

    def close(self, status: bool | int = True) -> None:
        """Close the connection (refuse it, if sent from ``connect``); ``status`` may be a
        close code."""
        reply_channel_of(self.message).send({"close": status})


class JsonWebsocketConsumer(WebsocketConsumer):
    """A WebSocket consumer speaking JSON text frames: ``receive(content)``, ``send(content)``."""

    def raw_receive(self, message: Message, **kwargs: Any) -> None:
        text = message.get("text")
        if text is None:
            raise ValueError("A JSON WebSocket consumer received a frame without text")
        self.receive(self.decode_json(text), **kwargs)

    def receive(self, content: Any, **kwargs: Any) -> None:  # type: ignore[override]
        """A decoded JSON frame from the client."""

    def send(self, content: Any, close: bool | int = False) -> None:  # type: ignore[override]
        """``content`` as a JSON text frame. Behind a demultiplexer it goes through the
        multiplexer, wrapped in this consumer's stream."""
        multiplexer = self.multiplexer
        if multiplexer is None:
            reply_channel_of(self.message).send(_frame(self.encode_json(content), None, close))
            return
        multiplexer.send(content)
        if close:
            self.close(close)

    @classmethod
    def group_send(cls, name: str, content: Any, close: bool | int = False) -> None:  # type: ignore[override]
        Group(name).send(_frame(cls.encode_json(content), None, close))

    @classmethod
    def decode_json(cls, text: str) -> Any:
        return json.loads(text)

    @classmethod
    def encode_json(cls, content: Any) -> str:
        return json.dumps(content, cls=DjangoJSONEncoder)


class WebsocketMultiplexer:
    """How a consumer behind a demultiplexer sends: ``send(payload)`` puts
    ``{"stream": stream, "payload": payload}`` on the connection as a JSON text frame."""

    def __init__(self, stream: str, reply_channel: Channel) -> None:
        self.stream = stream
        self.reply_channel = reply_channel

    def send(self, payload: Any) -> None:
        self.reply_channel.send(self.encode(self.stream, payload))

    @classmethod
    def encode_json(cls, content: Any) -> str:
        return json.dumps(content, cls=DjangoJSONEncoder)

    @classmethod
    def encode(cls, stream: str, payload: Any) -> dict[str, Any]:
        """The reply-channel message carrying ``payload`` on ``stream``."""
        return {"text": cls.encode_json({"stream": stream, "payload": payload})}

    @classmethod
    def group_send(cls, name: str, stream: str, payload: Any, close: bool | int = False) -> None:
        """``payload`` on ``stream`` to every connection in the group ``name``."""
        message = cls.encode(stream, payload)
        if close:
            message["close"] = close
        Group(name).send(message)

    def __repr__(self) -> str:
        return f"WebsocketMultiplexer({self.stream!r}, {self.reply_channel!r})"
