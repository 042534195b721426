"""The same consumers and routing written once, served by Switchboard or by Channels 4.

``BENCH_FRAMEWORK=switchboard|channels`` picks whose ``generic.websocket``, ``routing`` and
in-memory channel layer are imported; everything else is identical, so a difference in the
benchmark is a difference in the consumer path. Served as ``bench.consumer_apps:application``.
"""

from __future__ import annotations

import json
import os

import django
from django.conf import settings

FRAMEWORK = os.environ.get("BENCH_FRAMEWORK", "switchboard")
LAYER_BACKENDS = {
    "switchboard": "switchboard.layers.InMemoryChannelLayer",
    "channels": "channels.layers.InMemoryChannelLayer",
}

if not settings.configured:
    settings.configure(
        DEBUG=False,
        ALLOWED_HOSTS=["*"],
        INSTALLED_APPS=[],
        CHANNEL_LAYERS={"default": {"BACKEND": LAYER_BACKENDS[FRAMEWORK]}},
    )
    # Gateway mode (bench/gateway_echo.py): a layer that reaches the workers, as JSON, and the
    # application `runworker --gateway` loads.
    if os.environ.get("BENCH_CHANNEL_LAYERS"):
        settings.CHANNEL_LAYERS = json.loads(os.environ["BENCH_CHANNEL_LAYERS"])
        settings.ASGI_APPLICATION = "bench.consumer_apps.application"
        settings.INSTALLED_APPS = ["switchboard"]  # for its runworker command
    django.setup()

from django.urls import path  # noqa: E402

if FRAMEWORK == "channels":
    from channels.generic.websocket import AsyncWebsocketConsumer, WebsocketConsumer
    from channels.routing import ProtocolTypeRouter, URLRouter
else:
    from switchboard.generic.websocket import AsyncWebsocketConsumer, WebsocketConsumer
    from switchboard.routing import ProtocolTypeRouter, URLRouter


class EchoConsumer(AsyncWebsocketConsumer):
    async def receive(self, text_data=None, bytes_data=None):
        await self.send(text_data=text_data, bytes_data=bytes_data)


class SyncEchoConsumer(WebsocketConsumer):
    def receive(self, text_data=None, bytes_data=None):
        self.send(text_data=text_data, bytes_data=bytes_data)


class ChatConsumer(AsyncWebsocketConsumer):
    """The tutorial's room: every message goes to the room's group, members relay it."""

    async def connect(self):
        self.room = "chat_" + self.scope["url_route"]["kwargs"]["room"]
        await self.channel_layer.group_add(self.room, self.channel_name)
        await self.accept()

    async def disconnect(self, code):
        await self.channel_layer.group_discard(self.room, self.channel_name)

    async def receive(self, text_data=None, bytes_data=None):
        await self.channel_layer.group_send(self.room, {"type": "chat.message", "text": text_data})

    async def chat_message(self, event):
        await self.send(text_data=event["text"])


application = ProtocolTypeRouter(
    {
        "websocket": URLRouter(
            [
                path("echo/", EchoConsumer.as_asgi()),
                path("sync-echo/", SyncEchoConsumer.as_asgi()),
                path("chat/<str:room>/", ChatConsumer.as_asgi()),
            ]
        )
    }
)
