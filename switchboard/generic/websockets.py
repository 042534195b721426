"""Channels 1's ``channels.generic.websockets``: class-based WebSocket consumers over named
channels, run by ``manage.py runworker`` (see :mod:`switchboard.classic.generic` and
:mod:`switchboard.classic.demultiplex`).

Not to be confused with :mod:`switchboard.generic.websocket` (singular): Channels 2's ASGI
consumers.
"""

from switchboard.classic.demultiplex import WebsocketDemultiplexer
from switchboard.classic.generic import (
    JsonWebsocketConsumer,
    SendNotAvailableOnDemultiplexer,
    WebsocketConsumer,
    WebsocketMultiplexer,
)

__all__ = [
    "JsonWebsocketConsumer",
    "SendNotAvailableOnDemultiplexer",
    "WebsocketConsumer",
    "WebsocketDemultiplexer",
    "WebsocketMultiplexer",
]
