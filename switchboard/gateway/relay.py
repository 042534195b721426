"""The gateway's ASGI application: HTTP served here, WebSockets relayed to workers.

``switchboard serve mysite.asgi:application --gateway`` serves ``GatewayRelay(application)``
in each of its processes. HTTP requests go to the project's application as they would without
``--gateway``; each WebSocket becomes a :class:`~switchboard.gateway.relayed.RelayedConnection`
served by a worker (``manage.py runworker --gateway``) over the channel layer. The relay joins
the layer at lifespan startup (and, with lifespan off, at the first WebSocket), so a gateway
with no worker says so from the start.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from switchboard.gateway.hub import GatewayHub, GatewaySettings
from switchboard.gateway.relayed import Receive, RelayedConnection, Send
from switchboard.layers.base import BaseChannelLayer

__all__ = ["GatewayRelay"]


def _default_layer(alias: str) -> BaseChannelLayer | None:
    from switchboard.layers import get_channel_layer

    return get_channel_layer(alias)


class GatewayRelay:
    """ASGI application relaying ``application``'s WebSockets to workers (see the module)."""

    def __init__(
        self,
        application: Any,
        settings: GatewaySettings | None = None,
        get_layer: Callable[[str], BaseChannelLayer | None] = _default_layer,
    ) -> None:
        self.application = application
        self.hub = GatewayHub(settings or GatewaySettings(), get_layer)

    async def __call__(self, scope: dict[str, Any], receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind == "websocket":
            await self.relay(scope, receive, send)
        elif kind == "lifespan":
            await self._lifespan(scope, receive, send)
        elif kind == "http" and scope.get("query_string", b"").find(b"sb_transport=") >= 0:
            # A WebSocket session over SSE or long-polling is relayed to a worker too, rather
            # than run here by the project's router (switchboard.transports).
            from switchboard.transports import serve_transport

            if not await serve_transport(scope, receive, send, self.relay):
                await self.application(scope, receive, send)
        else:
            await self.application(scope, receive, send)

    async def relay(self, scope: dict[str, Any], receive: Receive, send: Send) -> None:
        """Serve one WebSocket (or a transport session's websocket scope) through a worker."""
        await self.hub.start()
        await RelayedConnection(self.hub, scope, receive, send).run()

    async def _lifespan(self, scope: dict[str, Any], receive: Receive, send: Send) -> None:
        # Joined before the application's own startup runs, and left after its shutdown, so
        # a gateway whose layer is unusable fails its startup like any application would.
        await self.hub.start()

        async def receive_then_stop() -> dict[str, Any]:
            message = await receive()
            if message["type"] == "lifespan.shutdown":
                await self.hub.stop()
            return message

        try:
            await self.application(scope, receive_then_stop, send)
        except asyncio.CancelledError:
            await self.hub.stop()
            raise
