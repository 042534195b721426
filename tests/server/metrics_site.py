"""A one-module Django project for the metrics tests, served as ``module:application``.

HTTP: ``/`` answers "ok", ``/metrics/`` is :func:`switchboard.metrics.django.metrics_view`.
WebSocket: ``/ws/echo/`` echoes, ``/ws/room/`` puts every message through the channel layer's
group ``room`` (so each member receives it), ``/ws/deny/`` refuses the handshake.
"""

from django.conf import settings

settings.configure(
    DEBUG=False,
    SECRET_KEY="switchboard-tests-not-secret",
    ALLOWED_HOSTS=["127.0.0.1", "localhost"],
    ROOT_URLCONF=__name__,
    INSTALLED_APPS=[],
    MIDDLEWARE=[],
    DATABASES={},
    CHANNEL_LAYERS={"default": {"BACKEND": "switchboard.layers.inmemory.InMemoryChannelLayer"}},
    # The --workers test counts HTTP requests per worker and sends no group message, so one
    # in-memory layer per worker is what it means: said, as serve's startup checks ask.
    SILENCED_SYSTEM_CHECKS=["switchboard.E005"],
)

from django.core.asgi import get_asgi_application  # noqa: E402
from django.http import HttpResponse  # noqa: E402
from django.urls import path  # noqa: E402

from switchboard.generic.websocket import AsyncWebsocketConsumer  # noqa: E402
from switchboard.metrics.django import metrics_view  # noqa: E402
from switchboard.routing import ProtocolTypeRouter, URLRouter  # noqa: E402

urlpatterns = [
    path("", lambda request: HttpResponse("ok")),
    path("metrics/", metrics_view),
]


class Echo(AsyncWebsocketConsumer):
    async def receive(self, text_data=None, bytes_data=None):
        await self.send(text_data=text_data, bytes_data=bytes_data)


class Room(AsyncWebsocketConsumer):
    groups = ["room"]

    async def receive(self, text_data=None, bytes_data=None):
        await self.channel_layer.group_send("room", {"type": "room.message", "text": text_data})

    async def room_message(self, event):
        await self.send(text_data=event["text"])


class Deny(AsyncWebsocketConsumer):
    async def connect(self):
        await self.close()


application = ProtocolTypeRouter(
    {
        "http": get_asgi_application(),
        "websocket": URLRouter(
            [
                path("ws/echo/", Echo.as_asgi()),
                path("ws/room/", Room.as_asgi()),
                path("ws/deny/", Deny.as_asgi()),
            ]
        ),
    }
)
