"""Many logical streams over one WebSocket: each stream is a real consumer of its own.

A demultiplexer accepts the socket itself and then runs every application in
``applications`` as a child: its own task, a copy of the scope (with ``scope["stream"]`` set
to the stream's name), its own channel name on the layer (so group sends reach it), and its
own ``connect`` / ``receive`` / ``disconnect``. Unchanged JSON consumers work as streams.

Wire format (JSON text frames):

client -> server
    ``{"stream": s, "payload": P}``   delivered to stream ``s`` as a text frame holding ``P``
    ``{"stream": s, "type": "close", "code": c}``   closes stream ``s`` (``code`` optional)
    ``{"stream": s, "type": "connect"}``   restarts stream ``s`` after it closed

server -> client
    ``{"stream": s, "payload": P}``   stream ``s`` sent the JSON text ``P``
    ``{"stream": s, "type": "accept"}``   stream ``s`` accepted its connection
    ``{"stream": s, "type": "close", "code": c}``   stream ``s`` closed (a ``close`` without a
    prior ``accept`` means it refused the connection; ``1011`` means it crashed); the socket
    and the other streams stay open. ``"reason"`` is included when the stream gave one.
    ``{"type": "error", "error": msg}`` (with ``"stream"`` when one is concerned)   a frame
    the demultiplexer could not deliver: malformed, unknown stream, stream closed, or the
    stream's queue is full (``max_pending_messages``; the message was dropped).

Each stream handles its messages in order; a slow, failing or closed stream does not hold
up or end the others. Streams send JSON text only: a binary frame or text that is not JSON
is an error in that stream (it is closed with 1011).
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections import deque
from collections.abc import Awaitable, Callable
from typing import Any

from asgiref.sync import async_to_sync

from switchboard.db import database_sync_to_async
from switchboard.exceptions import AcceptConnection, DenyConnection, StopConsumer
from switchboard.generic.websocket_consumers import AsyncJsonWebsocketConsumer

__all__ = ["AsyncJsonWebsocketDemultiplexer", "JsonWebsocketDemultiplexer", "StreamClosed"]

logger = logging.getLogger("switchboard.demultiplexer")

ASGIApp = Callable[..., Awaitable[None]]

# Stream states.
STARTING, OPEN, CLOSED = "starting", "open", "closed"


class StreamClosed(OSError):
    """A stream's application sent a message after its stream had closed.

    An OSError, like the server's "client disconnected" error, so consumers drop the message
    the same way they do on a real socket.
    """


class _Stream:
    """One child application: its task, its inbox and where its connection stands."""

    __slots__ = ("app", "demux", "inbox", "name", "prefix", "state", "task", "waiter")

    def __init__(self, demux: _Demultiplexer, name: str, app: ASGIApp) -> None:
        self.demux = demux
        self.name = name
        self.app = app
        # Its data frames are spliced around the child's JSON text: no decode/encode round.
        self.prefix = '{"stream":' + json.dumps(name) + ',"payload":'
        self.state = CLOSED
        self.inbox: deque[dict[str, Any]] = deque()
        self.waiter: asyncio.Future[None] | None = None
        self.task: asyncio.Task[None] | None = None

    @property
    def running_task(self) -> asyncio.Task[None] | None:
        """The stream's task while it runs (None before the first start and once done)."""
        task = self.task
        return task if task is not None and not task.done() else None

    def put(self, message: dict[str, Any]) -> None:
        self.inbox.append(message)
        waiter = self.waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    async def receive(self) -> dict[str, Any]:
        while not self.inbox:
            self.waiter = asyncio.get_running_loop().create_future()
            try:
                await self.waiter
            finally:
                self.waiter = None
        return self.inbox.popleft()

    async def send(self, message: dict[str, Any]) -> None:
        await self.demux._stream_sent(self, message)


def _running_tasks(streams: list[_Stream]) -> list[asyncio.Task[None]]:
    return [task for task in (s.running_task for s in streams) if task is not None]


class _Demultiplexer:
    """Stream plumbing shared by the async and sync demultiplexers (runs on the event loop)."""

    #: ``{"stream name": SomeConsumer.as_asgi(), ...}``
    applications: dict[str, ASGIApp] = {}
    #: Messages waiting for one stream beyond which new ones are refused with an error frame.
    max_pending_messages: int = 100
    #: Seconds streams get to finish after the socket closed before they are cancelled.
    stream_close_timeout: float = 10.0

    _streams: dict[str, _Stream] | None = None
    _accepted = False

    # Provided by the consumer classes below.
    scope: dict[str, Any]
    send_text: Callable[[str], Awaitable[None]]

    def _start_if_accepted(self) -> None:
        # Called from the consumer's own task once the connect hook returned: the streams'
        # tasks inherit its context, not that of the hook (for the sync demultiplexer, an
        # async_to_sync call whose thread executor is gone once it returns).
        if self._accepted and self._streams is None:
            self._streams = {
                name: _Stream(self, name, app) for name, app in self.applications.items()
            }
            for stream in self._streams.values():
                self._start(stream)

    def _start(self, stream: _Stream) -> None:
        stream.inbox.clear()
        stream.state = STARTING
        stream.put({"type": "websocket.connect"})
        scope = {**self.scope, "stream": stream.name}
        stream.task = asyncio.ensure_future(self._run_stream(stream, scope))

    async def _run_stream(self, stream: _Stream, scope: dict[str, Any]) -> None:
        code = 1000
        try:
            await stream.app(scope, stream.receive, stream.send)
        except asyncio.CancelledError:
            raise
        except Exception:
            logger.exception("Stream %r of %s failed", stream.name, type(self).__name__)
            code = 1011  # RFC 6455 7.4.1: the endpoint hit an unexpected condition
        # Returning or failing without closing ends the stream, as it would end a socket.
        if stream.state is not CLOSED:
            stream.state = CLOSED
            await self._send_control(stream, "close", code=code)

    async def _stream_sent(self, stream: _Stream, message: dict[str, Any]) -> None:
        kind = message.get("type")
        if kind == "websocket.send":
            if stream.state is not OPEN:
                if stream.state is CLOSED:
                    raise StreamClosed(f"stream {stream.name!r} is closed")
                raise RuntimeError(f"stream {stream.name!r}: websocket.send before accept")
            text = message.get("text")
            if text is None:
                raise TypeError(f"stream {stream.name!r}: only JSON text frames can be multiplexed")
            json.loads(text)  # a stream must not corrupt the socket's framing
            await self.send_text(stream.prefix + text + "}")
        elif kind == "websocket.accept":
            if stream.state is not STARTING:
                raise RuntimeError(
                    f"stream {stream.name!r}: websocket.accept in state {stream.state}"
                )
            stream.state = OPEN
            await self._send_control(stream, "accept")
        elif kind == "websocket.close":
            if stream.state is CLOSED:
                return
            stream.state = CLOSED
            code = message.get("code") or 1000
            await self._send_control(stream, "close", code=code, reason=message.get("reason"))
            # As the server would (ASGI: disconnect follows the app's close): its cleanup runs.
            stream.inbox.clear()
            stream.put({"type": "websocket.disconnect", "code": code})
        else:
            raise RuntimeError(f"stream {stream.name!r}: unexpected ASGI message {kind!r}")

    async def _send_control(self, stream: _Stream, kind: str, **fields: Any) -> None:
        frame: dict[str, Any] = {"stream": stream.name, "type": kind}
        frame.update((k, v) for k, v in fields.items() if v)
        await self.send_text(json.dumps(frame))

    async def _send_error(self, error: str, stream: Any = None) -> None:
        frame: dict[str, Any] = {"type": "error", "error": error}
        if stream is not None:
            frame["stream"] = stream
        await self.send_text(json.dumps(frame))

    async def route(self, content: Any) -> None:
        """Deliver one decoded client frame to its stream (or answer with an error frame)."""
        name = content.get("stream") if isinstance(content, dict) else None
        if not isinstance(name, str):
            await self._send_error('a frame must be an object with a "stream" string')
            return
        stream = (self._streams or {}).get(name)
        if stream is None:
            await self._send_error(f"unknown stream {name!r}", name)
            return
        control = content.get("type")
        if control is not None:
            await self._client_control(stream, control, content)
            return
        if "payload" not in content:
            await self._send_error('a data frame needs a "payload"', name)
        elif stream.state is CLOSED:
            await self._send_error("stream is closed", name)
        elif len(stream.inbox) >= self.max_pending_messages:
            await self._send_error("stream is busy: message dropped", name)
        else:
            stream.put({"type": "websocket.receive", "text": json.dumps(content["payload"])})

    async def _client_control(self, stream: _Stream, control: Any, content: dict) -> None:
        if control == "close":
            if stream.state is CLOSED:
                return
            code = content.get("code")
            code = code if isinstance(code, int) and not isinstance(code, bool) else 1000
            stream.state = CLOSED
            stream.inbox.clear()
            stream.put({"type": "websocket.disconnect", "code": code})
            await self._send_control(stream, "close", code=code)
        elif control == "connect":
            if stream.state is not CLOSED:
                await self._send_error("stream is already connected", stream.name)
                return
            task = stream.running_task
            if task is not None:  # still running its disconnect: let it finish first
                await asyncio.wait((task,), timeout=self.stream_close_timeout)
                await self._cancel_streams([stream])
            self._start(stream)
        else:
            await self._send_error(f"unknown control type {control!r}", stream.name)

    async def _stop_streams(self, code: int) -> None:
        streams = list((self._streams or {}).values())
        for stream in streams:
            if stream.state is not CLOSED:
                stream.state = CLOSED  # anything they send now is dropped (StreamClosed)
                stream.inbox.clear()
                stream.put({"type": "websocket.disconnect", "code": code})
        tasks = _running_tasks(streams)
        if tasks:
            await asyncio.wait(tasks, timeout=self.stream_close_timeout)
        await self._cancel_streams(streams)

    async def _cancel_streams(self, streams: list[_Stream] | None = None) -> None:
        if streams is None:
            streams = list((self._streams or {}).values())
        tasks = _running_tasks(streams)
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)


class AsyncJsonWebsocketDemultiplexer(_Demultiplexer, AsyncJsonWebsocketConsumer):
    """Runs ``applications`` as streams over one JSON WebSocket (see the module docstring).

    Override ``connect`` to decide whether to accept the socket (the streams start once it is
    accepted) and ``disconnect`` for cleanup after every stream has finished.
    """

    # Gateway mode: its streams' consumers live in this process and cannot be rebuilt from the
    # scope on another worker; closed with 1012 instead.
    movable = False

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            await self._cancel_streams()  # the connection was cancelled or failed

    async def send_text(self, text: str) -> None:
        await AsyncJsonWebsocketConsumer.send(self, text_data=text)

    async def accept(self, subprotocol: str | None = None, headers: Any = None) -> None:
        await super().accept(subprotocol, headers)
        self._accepted = True

    async def websocket_connect(self, message: dict[str, Any]) -> None:
        await super().websocket_connect(message)
        self._start_if_accepted()

    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None, **kw):
        # A bad frame is answered, not fatal: the other streams stay up.
        if text_data is None:
            await self._send_error("binary frames are not supported: send JSON text")
            return
        try:
            content = await self.decode_json(text_data)
        except ValueError:
            await self._send_error("the frame is not valid JSON")
            return
        await self.receive_json(content, **kw)

    async def receive_json(self, content: Any, **kwargs: Any) -> None:
        await self.route(content)

    async def websocket_disconnect(self, message: dict[str, Any]) -> None:
        code = message.get("code", 1000)
        await self._stop_streams(code)
        await super().websocket_disconnect(message)


class JsonWebsocketDemultiplexer(AsyncJsonWebsocketDemultiplexer):
    """The demultiplexer with synchronous ``connect``/``disconnect`` hooks (run in a thread,
    safe for the ORM), where ``accept``, ``close`` and ``send_json`` are plain calls.

    Routing frames to streams stays on the event loop: no thread hop per message. Streams may
    be sync or async consumers alike.
    """

    async def websocket_connect(self, message: dict[str, Any]) -> None:
        # Same order as the consumers: groups first, then the hook.
        if self.groups:
            layer = self._required_layer("sets groups")
            for group in self.groups:
                await layer.group_add(group, self.channel_name)
                self._track_group(group)
        try:
            await database_sync_to_async(self.connect)()
        except AcceptConnection:
            await self._accept_async()
        except DenyConnection:
            await AsyncJsonWebsocketConsumer.close(self)
        self._start_if_accepted()

    def connect(self) -> None:  # type: ignore[override]
        self.accept()

    async def _accept_async(self, subprotocol: str | None = None, headers: Any = None) -> None:
        await AsyncJsonWebsocketDemultiplexer.accept(self, subprotocol, headers)

    def accept(self, subprotocol: str | None = None, headers: Any = None) -> None:  # type: ignore[override]
        async_to_sync(self._accept_async)(subprotocol, headers)

    async def _close_async(self, code: int | bool | None, reason: str | None) -> None:
        await AsyncJsonWebsocketConsumer.close(self, code, reason)

    def close(self, code: int | bool | None = None, reason: str | None = None) -> None:  # type: ignore[override]
        async_to_sync(self._close_async)(code, reason)

    def send_json(self, content: Any, close: bool | int = False) -> None:  # type: ignore[override]
        async_to_sync(self.send_text)(json.dumps(content))
        if close:
            self.close(close)

    async def websocket_disconnect(self, message: dict[str, Any]) -> None:
        code = message.get("code", 1000)
        await self._stop_streams(code)
        if self.groups:
            layer = self._required_layer("sets groups")
            for group in self.groups:
                await layer.group_discard(group, self.channel_name)
                self._untrack_group(group)
        await database_sync_to_async(self.disconnect)(code)
        raise StopConsumer()

    def disconnect(self, code: int) -> None:  # type: ignore[override]
        pass
