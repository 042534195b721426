"""The Channels 1 interface server: every HTTP request and WebSocket event goes on the layer.

``switchboard serve myproject.asgi:channel_layer`` serves a :class:`ChannelLayerApp` (what
``switchboard.asgi.get_channel_layer()`` returns) through an :class:`InterfaceServer`: the
sockets stay in the server, and each event becomes a message on a named channel for the
workers (``manage.py runworker``), as Daphne 1 did:

- ``websocket.connect``, ``websocket.receive``, ``websocket.disconnect`` with the connection's
  ``reply_channel``, ``path`` and ``order``; the workers answer on the reply channel with
  ``{"accept": True}``, ``{"text": ...}``, ``{"bytes": ...}`` and ``{"close": True|code}``.
- ``http.request`` with the request (a body too large for one message follows on
  ``body_channel``); the answer is ``http.response`` messages on the reply channel.

It shares gateway mode's machinery (:mod:`switchboard.gateway.delivery`): sends wait and retry
while the layer is away, and a full channel holds the socket rather than dropping the event.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
from collections.abc import Awaitable, Callable
from typing import Any

from switchboard.gateway.delivery import LayerHealth, send_until_sent
from switchboard.layers.base import BaseChannelLayer
from switchboard.server.asgi.lifespan import acknowledge_lifespan

__all__ = ["BODY_CHUNK", "MOUNTED", "RESPONSE_TIMEOUT", "ChannelLayerApp", "InterfaceServer"]

logger = logging.getLogger("switchboard.interface")

Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]

# Layers whose routing an application mounted with as_asgi() (switchboard.asgi checks them).
MOUNTED: list[ChannelLayerApp] = []

# Request body per message; the rest goes on body_channel in parts of this size.
BODY_CHUNK = 256 * 1024
# An HTTP request no worker answered in this long gets 503 (Daphne 1's http_timeout default).
RESPONSE_TIMEOUT = 120.0


class ChannelLayerApp:
    """A channel layer as ``asgi.py`` exposes it to the interface server (``channel_layer``):
    the layer of ``alias``, built on first use; served by :class:`InterfaceServer`."""

    def __init__(self, alias: str) -> None:
        self.alias = alias

    @property
    def channel_layer(self) -> BaseChannelLayer:
        from switchboard.layers import channel_layers

        return channel_layers[self.alias]

    def as_asgi(self) -> InterfaceServer:
        """The interface server as an ASGI application, to mount beside modern consumers
        (a catch-all route of a ``URLRouter``, a ``ProtocolTypeRouter`` entry) while a project
        moves from the Channels 1 routing one consumer at a time."""
        MOUNTED.append(self)  # the server's startup check looks at its layer too
        return InterfaceServer(self)

    def __getattr__(self, name: str) -> Any:
        # The layer's own API (send, group_send...), as Channels 1's layer object had it.
        if name.startswith("_"):
            raise AttributeError(name)
        return getattr(self.channel_layer, name)

    def __repr__(self) -> str:
        return f"<channel layer {self.alias!r} (the Channels 1 interface server serves it)>"


class InterfaceServer:
    """The ASGI application serving a :class:`ChannelLayerApp` (see the module docs)."""

    def __init__(self, app: ChannelLayerApp) -> None:
        self.app = app
        self.health = LayerHealth()

    @property
    def layer(self) -> BaseChannelLayer:
        return self.app.channel_layer

    async def __call__(self, scope: dict[str, Any], receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind == "websocket":
            await self._websocket(scope, receive, send)
        elif kind == "http":
            await self._http(scope, receive, send)
        elif kind == "lifespan":
            await acknowledge_lifespan(receive, send)

    async def _put(self, channel: str, content: dict[str, Any]) -> None:
        await send_until_sent(self.layer, channel, content, self.health)

    # -- WebSocket ------------------------------------------------------------------------

    async def _websocket(self, scope: dict[str, Any], receive: Receive, send: Send) -> None:
        first = await receive()
        if first["type"] != "websocket.connect":
            return
        layer = self.layer
        reply = await layer.new_channel("websocket.send")
        path = scope["path"]  # ASGI's path already includes root_path
        order = 0
        await self._put(
            "websocket.connect",
            {
                "reply_channel": reply,
                "path": path,
                "query_string": scope.get("query_string", b""),  # bytes, as Daphne 1
                "headers": [[name, value] for name, value in scope.get("headers", [])],
                "client": list(scope["client"]) if scope.get("client") else None,
                "server": list(scope["server"]) if scope.get("server") else None,
                "order": order,
            },
        )
        state = {"accepted": False, "closed": False}
        answers = asyncio.ensure_future(self._answers(reply, send, state))
        try:
            while True:
                event = await receive()
                order += 1
                if event["type"] == "websocket.disconnect":
                    # As Daphne 1: the consumers hear of every socket they heard connect,
                    # refused ones too (one that left mid-connect may have joined groups).
                    content = {"reply_channel": reply, "path": path, "order": order}
                    content["code"] = event.get("code", 1000)
                    await self._put("websocket.disconnect", content)
                    return
                content = {"reply_channel": reply, "path": path, "order": order}
                if event.get("text") is not None:
                    content["text"] = event["text"]
                else:
                    content["bytes"] = event.get("bytes") or b""
                await self._put("websocket.receive", content)
        finally:
            answers.cancel()
            await asyncio.gather(answers, return_exceptions=True)

    async def _answers(self, reply: str, send: Send, state: dict[str, bool]) -> None:
        """What workers send to the connection's reply channel, played to the socket."""
        layer = self.layer
        while not state["closed"]:
            content = await layer.receive(reply)
            accept = content.get("accept") or "text" in content or "bytes" in content
            close = content.get("close")
            if accept and not state["accepted"]:
                state["accepted"] = True
                await send({"type": "websocket.accept"})
            if "text" in content:
                await send({"type": "websocket.send", "text": content["text"]})
            elif "bytes" in content:
                await send({"type": "websocket.send", "bytes": content["bytes"]})
            if close:
                state["closed"] = True
                code = 1000 if close is True else int(close)
                # Before an accept this refuses the handshake (403), as Daphne 1 did.
                await send({"type": "websocket.close", "code": code})

    # -- HTTP -----------------------------------------------------------------------------

    async def _http(self, scope: dict[str, Any], receive: Receive, send: Send) -> None:
        body = bytearray()
        while True:
            event = await receive()
            if event["type"] != "http.request":
                return  # the client left
            body += event.get("body", b"")
            if not event.get("more_body", False):
                break
        layer = self.layer
        reply = await layer.new_channel("http.response")
        content: dict[str, Any] = {
            "reply_channel": reply,
            "http_version": scope.get("http_version", "1.1"),
            "method": scope["method"],
            "scheme": scope.get("scheme", "http"),
            "path": scope["path"],
            "root_path": scope.get("root_path", ""),
            "query_string": scope.get("query_string", b""),
            "headers": [[name, value] for name, value in scope.get("headers", [])],
            "body": bytes(body[:BODY_CHUNK]),
            "client": list(scope["client"]) if scope.get("client") else None,
            "server": list(scope["server"]) if scope.get("server") else None,
        }
        rest = memoryview(body)[BODY_CHUNK:]
        body_channel = None
        if rest:
            # A plain (not process-specific) channel: whichever worker takes the request
            # reads it.
            body_channel = f"http.request.body.{secrets.token_hex(12)}"
            content["body_channel"] = body_channel
        await self._put("http.request", content)
        if body_channel is not None:
            for start in range(0, len(rest), BODY_CHUNK):
                part = bytes(rest[start : start + BODY_CHUNK])
                more = start + BODY_CHUNK < len(rest)
                await self._put(body_channel, {"content": part, "more_content": more})
        await self._respond(reply, send)

    async def _respond(self, reply: str, send: Send) -> None:
        layer = self.layer
        try:
            first = await asyncio.wait_for(layer.receive(reply), RESPONSE_TIMEOUT)
        except TimeoutError:
            logger.warning("No worker answered an HTTP request in %.0fs: 503", RESPONSE_TIMEOUT)
            await send(
                {
                    "type": "http.response.start",
                    "status": 503,
                    "headers": [(b"content-type", b"text/plain; charset=utf-8")],
                }
            )
            await send({"type": "http.response.body", "body": b"Service Unavailable\n"})
            return
        await send(
            {
                "type": "http.response.start",
                "status": int(first.get("status", 200)),
                "headers": [(bytes(k), bytes(v)) for k, v in first.get("headers", [])],
            }
        )
        message = first
        while True:
            more = bool(message.get("more_content", False))
            await send(
                {
                    "type": "http.response.body",
                    "body": message.get("content", b""),
                    "more_body": more,
                }
            )
            if not more:
                return
            message = await asyncio.wait_for(layer.receive(reply), RESPONSE_TIMEOUT)


def serve_channel_layer(app: ChannelLayerApp) -> InterfaceServer:
    """The server's app adapter for ``asgi.py``'s ``channel_layer`` (registered by
    :mod:`switchboard.asgi`)."""
    return InterfaceServer(app)
