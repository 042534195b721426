"""``application``: what a Switchboard project writes; ``django_app``: the bare ASGI handler."""

import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "bench.django_project.settings")
django_app = get_asgi_application()

from django.urls import path  # noqa: E402

from switchboard.generic.websocket import AsyncWebsocketConsumer  # noqa: E402
from switchboard.routing import ProtocolTypeRouter, URLRouter  # noqa: E402


class Echo(AsyncWebsocketConsumer):
    async def receive(self, text_data=None, bytes_data=None):
        await self.send(text_data=text_data, bytes_data=bytes_data)


application = ProtocolTypeRouter(
    {"http": django_app, "websocket": URLRouter([path("ws", Echo.as_asgi())])}
)
