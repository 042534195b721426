"""Included under ``path=r"^/chat"``: these filters see the rest of the path."""

from chat import consumers
from switchboard.routing import route

ROOM = r"^/(?P<room>[a-zA-Z0-9_-]+)/$"

websocket_routing = [
    route("websocket.connect", consumers.chat_connect, path=ROOM),
    route("websocket.receive", consumers.chat_message, path=ROOM),
    route("websocket.disconnect", consumers.chat_disconnect, path=ROOM),
]
