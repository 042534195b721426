"""Setup (b) of bench/channels1.py: the same chat as today's consumers write it, in-process.

``switchboard serve c1site.modern:application``: an AsyncWebsocketConsumer per socket,
group_add/group_send on the same Redis layer (CHANNEL_LAYERS of c1site.settings). Switchboard
only (Python 3.11+); the original stack never imports it.
"""

from __future__ import annotations

import os

import django

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "c1site.settings")
django.setup()

from django.urls import path  # noqa: E402

from switchboard.generic.websocket import AsyncWebsocketConsumer  # noqa: E402
from switchboard.routing import ProtocolTypeRouter, URLRouter  # noqa: E402


class ChatConsumer(AsyncWebsocketConsumer):
    async def connect(self) -> None:
        self.room = "room-" + self.scope["url_route"]["kwargs"]["room"]
        await self.channel_layer.group_add(self.room, self.channel_name)
        await self.accept()

    async def disconnect(self, code: int) -> None:
        await self.channel_layer.group_discard(self.room, self.channel_name)

    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
        await self.channel_layer.group_send(self.room, {"type": "chat.message", "text": text_data})

    async def chat_message(self, event: dict[str, str]) -> None:
        await self.send(text_data=event["text"])


application = ProtocolTypeRouter(
    {"websocket": URLRouter([path("chat/<str:room>/", ChatConsumer.as_asgi())])}
)
