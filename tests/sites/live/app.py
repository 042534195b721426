"""The ASGI application the live-server tests serve: Django views plus two consumers."""

from django.contrib.auth.models import Group
from django.core.asgi import get_asgi_application
from django.urls import path

from switchboard.db import database_sync_to_async
from switchboard.generic.websocket import AsyncJsonWebsocketConsumer, AsyncWebsocketConsumer
from switchboard.routing import ProtocolTypeRouter, URLRouter
from switchboard.security.websocket import AllowedHostsOriginValidator


class Echo(AsyncWebsocketConsumer):
    async def connect(self):
        await self.accept()

    async def receive(self, text_data=None, bytes_data=None):
        if text_data is not None:
            await self.send(text_data=f"echo: {text_data}")
        else:
            await self.send(bytes_data=bytes_data[::-1])


class Groups(AsyncJsonWebsocketConsumer):
    """Reads and writes auth groups through the ORM from inside the server."""

    async def connect(self):
        await self.accept()

    async def receive_json(self, content):
        if content["op"] == "lookup":
            names = await self.lookup(content["prefix"])
            await self.send_json({"names": names})
        elif content["op"] == "create":
            created = await self.create(content["name"])
            await self.send_json({"created": created})

    @database_sync_to_async
    def lookup(self, prefix):
        return sorted(Group.objects.filter(name__startswith=prefix).values_list("name", flat=True))

    @database_sync_to_async
    def create(self, name):
        return Group.objects.create(name=name).pk


class Origin(AsyncJsonWebsocketConsumer):
    """Tells the client the Origin its handshake carried (None: no such header)."""

    async def connect(self):
        await self.accept()
        origin = dict(self.scope["headers"]).get(b"origin")
        await self.send_json({"origin": None if origin is None else origin.decode("latin-1")})


application = ProtocolTypeRouter(
    {
        "http": get_asgi_application(),
        "websocket": URLRouter(
            [
                path("ws/echo/", Echo.as_asgi()),
                path("ws/groups/", Groups.as_asgi()),
                path("ws/origin/", AllowedHostsOriginValidator(Origin.as_asgi())),
            ]
        ),
    }
)
