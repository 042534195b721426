"""The ASGI ``client`` and ``server`` addresses of a connection, read from its transport."""

from __future__ import annotations

import asyncio
from typing import Any


def transport_addresses(
    transport: asyncio.BaseTransport,
) -> tuple[tuple[str, int] | None, Any]:
    """``(client, server)``: ``(host, port)`` pairs on TCP; on a unix socket there is no client
    address and the server is ``(path, None)`` (ASGI allows ``None`` for the port)."""
    peer = transport.get_extra_info("peername")
    local = transport.get_extra_info("sockname")
    client = (str(peer[0]), int(peer[1])) if isinstance(peer, tuple) else None
    if isinstance(local, tuple):
        server: Any = (str(local[0]), int(local[1]))
    elif isinstance(local, str):
        server = (local, None)
    else:
        server = None
    return client, server
