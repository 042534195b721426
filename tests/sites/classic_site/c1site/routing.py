"""The project's routing (CHANNEL_LAYERS[...]["ROUTING"]): each app's routes under a path
prefix, and a socket whose consumer raises, for the tests. ``http.request`` is not routed, so
it goes to Django's views."""

from c1site import consumers
from switchboard.routing import include, route

channel_routing = [
    include("chat.routing.websocket_routing", path=r"^/chat"),
    include("liveblog.routing.channel_routing", path=r"^/liveblog"),
    include("bindings.routing.channel_routing", path=r"^/bindings"),
    route("websocket.connect", consumers.faults_connect, path=r"^/faults/$"),
    route("websocket.receive", consumers.faults_receive, path=r"^/faults/$"),
    route("websocket.disconnect", consumers.faults_disconnect, path=r"^/faults/$"),
]
