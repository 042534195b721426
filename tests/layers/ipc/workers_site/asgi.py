"""One room every WebSocket joins; each client learns which worker process serves it."""

import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tests.layers.ipc.workers_site.settings")
django_asgi_app = get_asgi_application()

from switchboard.generic.websocket import AsyncJsonWebsocketConsumer  # noqa: E402
from switchboard.routing import ProtocolTypeRouter  # noqa: E402


class RoomConsumer(AsyncJsonWebsocketConsumer):
    groups = ["room"]

    async def connect(self) -> None:
        await self.accept()
        layer = type(self.channel_layer).__name__
        await self.send_json({"type": "welcome", "pid": os.getpid(), "layer": layer})

    async def receive_json(self, content, **kwargs) -> None:
        await self.channel_layer.group_send(
            "room", {"type": "room.message", "text": content["text"]}
        )

    async def room_message(self, event) -> None:
        await self.send_json({"type": "message", "text": event["text"]})


application = ProtocolTypeRouter({"http": django_asgi_app, "websocket": RoomConsumer.as_asgi()})
