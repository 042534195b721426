"""Channels 1's ``WebsocketDemultiplexer``: several streams over one WebSocket connection.

Frames are JSON objects ``{"stream": name, "payload": {...}}``. A stream is served one of two
ways, and one demultiplexer may mix them:

* ``consumers = {stream: consumer}`` (Channels 1.1): the consumer (a ``WebsocketConsumer``
  class, or any consumer callable such as ``SomeBinding.consumer``) is called for the
  connection's three events, in this process and within this consumer call, with a
  ``multiplexer`` keyword argument (a :class:`~switchboard.classic.generic.WebsocketMultiplexer`
  for its stream) to send with. Every consumer gets connect and disconnect; a frame goes to its
  stream's consumer only, as a ``websocket.receive`` message whose ``text`` is the payload.
* ``mapping = {stream: channel name}`` (Channels 1.0): the payload, plus the connection's
  ``reply_channel``, is sent on that channel for whatever consumer is routed there.

A frame for a stream in neither raises ``ValueError``: the worker logs it.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, ClassVar

from switchboard.classic.channel import Channel
from switchboard.classic.generic import (
    JsonWebsocketConsumer,
    WebsocketMultiplexer,
    reply_channel_of,
)

if TYPE_CHECKING:
    from switchboard.classic.message import Message

__all__ = ["WebsocketDemultiplexer"]


class WebsocketDemultiplexer(JsonWebsocketConsumer):
    """Routes each ``{"stream", "payload"}`` frame to its stream's consumer or channel."""

    #: stream -> consumer (a class-based consumer, or any consumer callable).
    consumers: ClassVar[Mapping[str, Any]] = {}
    #: stream -> channel name the payload is forwarded on.
    mapping: ClassVar[Mapping[str, str]] = {}
    #: What the consumers are given to send with.
    multiplexer_class: ClassVar[type[WebsocketMultiplexer]] = WebsocketMultiplexer

    def connect(self, message: Message, **kwargs: Any) -> None:
        # Accepted first, so what the consumers send at connect follows the accept.
        reply_channel_of(self.message).send({"accept": True})
        self._to_every_consumer(message, kwargs)

    def disconnect(self, message: Message, **kwargs: Any) -> None:
        self._to_every_consumer(message, kwargs)

    def receive(self, content: Any, **kwargs: Any) -> None:  # type: ignore[override]
        if not isinstance(content, dict) or "stream" not in content:
            raise ValueError("Multiplexed frame has no stream")
        stream = content["stream"]
        payload = content.get("payload")
        if not isinstance(payload, dict):
            raise ValueError("Multiplexed frame has a payload that is not an object")
        consumer = self.consumers.get(stream) if isinstance(stream, str) else None
        if consumer is not None:
            # The consumer sees a websocket.receive of its own payload; decorator attributes
            # (channel_session, user) are shared with this message.
            inner = copy.copy(self.message)
            inner.content = {**self.message.content, "text": json.dumps(payload)}
            consumer(inner, **{**kwargs, "multiplexer": self.multiplexer_for(stream)})
            return
        channel = self.mapping.get(stream) if isinstance(stream, str) else None
        if channel is None:
            raise ValueError("Invalid multiplexed frame received (stream not mapped)")
        forwarded = {**payload, "reply_channel": reply_channel_of(self.message).name}
        Channel(channel, channel_layer=self.message.channel_layer).send(forwarded)

    def multiplexer_for(self, stream: str) -> WebsocketMultiplexer:
        return self.multiplexer_class(stream, reply_channel_of(self.message))

    def _to_every_consumer(self, message: Message, kwargs: dict[str, Any]) -> None:
        for stream, consumer in self.consumers.items():
            consumer(message, **{**kwargs, "multiplexer": self.multiplexer_for(stream)})

    def send(self, stream: str, payload: Any) -> None:  # type: ignore[override]
        """``payload`` on ``stream`` to this connection (Channels 1.0's form)."""
        reply_channel_of(self.message).send(self.encode(stream, payload))

    @classmethod
    def group_send(  # type: ignore[override]
        cls, name: str, stream: str, payload: Any, close: bool | int = False
    ) -> None:
        """``payload`` on ``stream`` to every connection in the group ``name``."""
        cls.multiplexer_class.group_send(name, stream, payload, close=close)

    @classmethod
    def encode(cls, stream: str, payload: Any) -> dict[str, Any]:
        """The reply-channel message carrying ``payload`` on ``stream``."""
        return cls.multiplexer_class.encode(stream, payload)
