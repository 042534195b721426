"""Where a WebSocket URL lands: the routing tests' consumers report it as their first message."""

from __future__ import annotations

from typing import Any

from switchboard.testing import WebsocketCommunicator


async def route(app: Any, url: str) -> dict:
    """Connects to ``url`` (which must be accepted) and returns the first JSON message."""
    communicator = WebsocketCommunicator(app, url)
    connected, _ = await communicator.connect()
    assert connected
    info = await communicator.receive_json_from()
    await communicator.disconnect()
    return info
