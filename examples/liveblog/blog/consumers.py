"""One WebSocket per page, carrying the blog's streams."""

from blog.bindings import PostBinding
from switchboard.generic.websocket import (
    AsyncJsonWebsocketConsumer,
    AsyncJsonWebsocketDemultiplexer,
)


class WhoAmI(AsyncJsonWebsocketConsumer):
    """A second, ordinary consumer as a stream: tells the page who it is talking as."""

    async def connect(self):
        await self.accept()
        user = self.scope["user"]
        await self.send_json(
            {
                "username": user.get_username() if user.is_authenticated else None,
                "staff": bool(user.is_staff),
            }
        )


class BlogStreams(AsyncJsonWebsocketDemultiplexer):
    applications = {
        "posts": PostBinding.as_asgi(),
        "whoami": WhoAmI.as_asgi(),
    }
