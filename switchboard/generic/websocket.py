"""WebSocket consumers and demultiplexers: Channels' ``channels.generic.websocket`` path.

The consumers (sync, async, and JSON flavours) are defined in
:mod:`switchboard.generic.websocket_consumers`, the demultiplexers, built on them, in
:mod:`switchboard.generic.demultiplexer`; this module gathers both, so imports run one way.
"""

# Importable from here as before (the liveblog example does so), though not in ``__all__``.
from switchboard.generic.demultiplexer import (
    AsyncJsonWebsocketDemultiplexer as AsyncJsonWebsocketDemultiplexer,
)
from switchboard.generic.demultiplexer import (
    JsonWebsocketDemultiplexer as JsonWebsocketDemultiplexer,
)
from switchboard.generic.websocket_consumers import (
    AsyncJsonWebsocketConsumer,
    AsyncWebsocketConsumer,
    JsonWebsocketConsumer,
    WebsocketConsumer,
)

__all__ = [
    "AsyncJsonWebsocketConsumer",
    "AsyncWebsocketConsumer",
    "JsonWebsocketConsumer",
    "WebsocketConsumer",
]
