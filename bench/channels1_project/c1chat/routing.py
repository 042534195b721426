"""CHANNEL_LAYERS["default"]["ROUTING"]: the chat under /chat/<room>/; with C1_PROBE_LOG set
(bench/channels1.py --probe) also the probes under /probe/."""

import os

from .compat import route
from .consumers import ws_connect, ws_disconnect, ws_message

channel_routing = [
    route("websocket.connect", ws_connect, path=r"^/chat/(?P<room>[a-zA-Z0-9_-]+)/$"),
    route("websocket.receive", ws_message, path=r"^/chat/"),
    route("websocket.disconnect", ws_disconnect, path=r"^/chat/"),
]

if os.environ.get("C1_PROBE_LOG"):
    from . import probes

    channel_routing += probes.routes
