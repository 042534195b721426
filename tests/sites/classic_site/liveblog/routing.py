"""Included under ``path=r"^/liveblog"``."""

from liveblog import consumers
from switchboard.routing import route

channel_routing = [
    route("websocket.connect", consumers.reader_connect, path=r"^/stream/$"),
    route("websocket.disconnect", consumers.reader_disconnect, path=r"^/stream/$"),
]
