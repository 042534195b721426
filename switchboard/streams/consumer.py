"""The consumer serving signed streams to browsers: switchboard.js, EventSource and htmx.

Route it like any WebSocket consumer (``path("streams/", SignedStreamConsumer.as_asgi())``
under ``AuthMiddlewareStack`` when tokens are bound to users). It speaks three formats:

``frames`` (the default)
    The protocol of :mod:`switchboard.realtime`, with a stream token as the topic:
    ``client.subscribe(token)`` in switchboard.js. Replies and ``pub`` frames name the token
    as their ``topic``; a ``pub`` frame's ``data`` is the published data, and its ``event``
    (when the publication has one) sits beside it. A token that does not verify is answered
    ``{"sb": "error", "topic": token, "error": "stream token expired"}`` (or another reason).
``events`` (``?stream=TOKEN&format=events`` over the SSE transport, for a bare EventSource)
    Subscribed at connect. Each publication is one SSE event: ``id: <epoch>:<offset>``,
    ``event:`` the publication's event (else ``message``), ``data:`` the string as is, or
    JSON. First comes ``sb.subscribed`` (its ``id`` the position the stream starts after), so
    that the browser's automatic reconnect sends ``Last-Event-ID`` and gets exactly what it
    missed; when that is no longer possible (history trimmed, or the epoch is another
    history's), an ``sb.resync`` event with JSON ``{"epoch", "offset"}`` says so: nothing is
    lost silently.
``html`` (``?stream=TOKEN&format=html``, for htmx's ``ws`` extension)
    Subscribed at connect; each publication's string data is sent as a bare text frame (other
    data as JSON text). There is no recovery in this format: a reconnect starts afresh.

``?history=N`` with ``?stream=``: also send the stream's last ``N`` publications on connect
(at most ``max_history``). A token refused at connect is answered with an HTTP 403 whose text
says why (an EventSource stops retrying on it), or a close before accept where the server
cannot send one.

The topic behind a token is :func:`~switchboard.streams.names.stream_topic` of its stream
name; ``allowed_topics`` and ``topic_allowed`` still admit plain realtime topics too.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any
from urllib.parse import parse_qs

from switchboard.consumer import AsyncConsumer
from switchboard.exceptions import StopConsumer
from switchboard.realtime import RealtimeConsumer
from switchboard.streams.names import stream_topic
from switchboard.streams.publishing import entry_data, note_subscribers_loop
from switchboard.streams.tokens import StreamTokenError, verify_stream_token

__all__ = ["SSE_EVENT", "SignedStreamConsumer"]

# The message the SSE transport renders as one event of our choosing (switchboard.transports).
SSE_EVENT = "sb.sse.event"
DENIAL_RESPONSE = "websocket.http.response"
FORMATS = ("frames", "events", "html")


def _first(query: dict[str, list[str]], key: str) -> str | None:
    values = query.get(key)
    return values[0] if values else None


class SignedStreamConsumer(RealtimeConsumer):
    """Subscriptions by stream token (see the module docstring for the formats)."""

    _stream_tokens: dict[str, str] | None = None  # stream topic -> the token subscribed with
    stream_format = "frames"

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        # Where an in-process layer must be driven from when sync code publishes.
        note_subscribers_loop(asyncio.get_running_loop())
        await super().__call__(scope, receive, send)

    # -- hooks ------------------------------------------------------------------------------

    async def stream_allowed(self, name: str) -> bool:
        """May this connection subscribe to stream ``name`` (its token verified already)?
        Default: yes; override to narrow a route to some streams."""
        return True

    async def receive_plain(self, text_data: str | None, bytes_data: bytes | None) -> None:
        """A frame from the client in the ``events`` and ``html`` formats (htmx's
        ``ws-send``, say). Default: ignored."""

    # -- connect ----------------------------------------------------------------------------

    async def connect(self) -> None:
        query = parse_qs(self.scope.get("query_string", b"").decode("latin-1"))
        token, kind = _first(query, "stream"), _first(query, "format") or "frames"
        if kind not in FORMATS:
            return await self.refuse(400, f"unknown format {kind!r}: use events or html")
        if kind == "events" and self.scope.get("transport") != "sse":
            return await self.refuse(400, "format=events is for EventSource (sb_transport=sse)")
        if token is None:
            if kind != "frames":
                return await self.refuse(400, "?stream=TOKEN is missing")
            return await self.accept()
        try:
            await self.stream_of(token)
        except StreamTokenError as exc:
            return await self.refuse(403, str(exc))
        self.stream_format = kind
        await self.accept()
        await self.sb_frame_sub(self._connect_frame(token, query))

    def _connect_frame(self, token: str, query: dict[str, list[str]]) -> dict[str, Any]:
        frame: dict[str, Any] = {"sb": "sub", "topic": token}
        history = _first(query, "history")
        if history and history.isdigit():
            frame["history"] = int(history)
        last = self._header(b"last-event-id")
        if self.stream_format == "events" and last:
            epoch, _, offset = last.rpartition(":")
            if epoch and offset.isdigit():
                frame["epoch"], frame["offset"] = epoch, int(offset)
            else:
                # A position we cannot read is still a claim to have seen something: answer
                # with a resync (an epoch no history has) rather than a silent fresh start.
                frame["epoch"], frame["offset"] = "?" + last, 0
        return frame

    def _header(self, name: bytes) -> str | None:
        for key, value in self.scope.get("headers", ()):
            if key.lower() == name:
                return bytes(value).decode("latin-1")
        return None

    async def refuse(self, status: int, text: str) -> None:
        """Refuse the handshake: an HTTP answer of ``status`` with ``text`` where the server
        can send one, else a close before accept (a 403)."""
        if DENIAL_RESPONSE in (self.scope.get("extensions") or {}):
            await AsyncConsumer.send(
                self,
                {
                    "type": "websocket.http.response.start",
                    "status": status,
                    "headers": [(b"content-type", b"text/plain; charset=utf-8")],
                },
            )
            body = {"type": "websocket.http.response.body", "body": text.encode() + b"\n"}
            await AsyncConsumer.send(self, body)
        else:
            await self.close()
        raise StopConsumer()

    # -- tokens as topics -------------------------------------------------------------------

    async def stream_of(self, token: str) -> str:
        """The stream name ``token`` admits this connection to, else :class:`StreamTokenError`."""
        name = verify_stream_token(token, user=self.scope.get("user"))
        if not await self.stream_allowed(name):
            raise StreamTokenError("refused", "stream refused")
        return name

    async def sb_topic(self, content: dict[str, Any], action: str) -> str | None:
        token = content.get("topic")
        if action != "subscribe" or not isinstance(token, str):
            return await super().sb_topic(content, action)
        if await self.topic_allowed(token, action):
            return token  # a plain realtime topic this consumer admits
        try:
            topic = stream_topic(await self.stream_of(token))
        except StreamTokenError as exc:
            await self.sb_error(str(exc), token)
            return None
        if self._stream_tokens is None:
            self._stream_tokens = {}
        held = self._stream_tokens.get(topic)
        if held is not None and held != token:
            await self.sb_error("stream already subscribed with another token", token)
            return None
        self._stream_tokens[topic] = token
        return topic

    async def sb_frame_unsub(self, content: dict[str, Any]) -> None:
        token = content.get("topic")
        tokens = self._stream_tokens or {}
        topic = next((t for t, held in tokens.items() if held == token), None)
        if topic is None:
            return await super().sb_frame_unsub(content)
        await super().sb_frame_unsub({**content, "topic": topic})
        del tokens[topic]  # after the reply, which is sent under the token

    # -- outgoing ---------------------------------------------------------------------------

    async def send_json(self, content: Any, close: bool | int = False) -> None:
        token = None
        if isinstance(content, dict) and "sb" in content and self._stream_tokens:
            topic = content.get("topic")
            token = self._stream_tokens.get(topic) if isinstance(topic, str) else None
        if token is not None:
            content = {**content, "topic": token}
            if content["sb"] == "pub":
                data, event = entry_data(content["data"])
                content["data"] = data
                if event is not None:
                    content["event"] = event
        if self.stream_format == "events":
            await self._send_event(content)
        elif self.stream_format == "html":
            if isinstance(content, dict) and content.get("sb") == "pub":
                data = content["data"]
                await self.send(text_data=data if isinstance(data, str) else json.dumps(data))
        else:
            await super().send_json(content, close)
            return
        if close:
            await self.close(close)

    async def _send_event(self, frame: Any) -> None:
        kind = frame.get("sb") if isinstance(frame, dict) else None
        if kind == "pub":
            data = frame["data"]
            await self._sse(
                f"{frame['epoch']}:{frame['offset']}",
                frame.get("event"),
                data if isinstance(data, str) else json.dumps(data),
            )
        elif kind == "subscribed" or kind == "resync":
            position = {"epoch": frame["epoch"], "offset": frame["offset"]}
            lost = kind == "resync" or frame.get("recovered") is False
            name = "sb.resync" if lost else "sb.subscribed"
            await self._sse(f"{frame['epoch']}:{frame['offset']}", name, json.dumps(position))
        elif kind == "error":
            await self._sse(None, "sb.error", json.dumps({"error": frame.get("error")}))

    async def _sse(self, id: str | None, event: str | None, data: str) -> None:
        message = {"type": SSE_EVENT, "id": id, "event": event, "data": data}
        await AsyncConsumer.send(self, message)

    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None, **kw):
        if self.stream_format != "frames":
            return await self.receive_plain(text_data, bytes_data)
        return await super().receive(text_data, bytes_data, **kw)
