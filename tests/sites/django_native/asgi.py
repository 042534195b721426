"""The usual Switchboard project entry point: Django's ASGI handler for HTTP, consumers for WS."""

import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tests.sites.django_native.settings")
django_asgi = get_asgi_application()

from django.urls import path  # noqa: E402

from switchboard.routing import ProtocolTypeRouter, URLRouter  # noqa: E402
from tests.sites.django_native.views import EchoConsumer  # noqa: E402

application = ProtocolTypeRouter(
    {"http": django_asgi, "websocket": URLRouter([path("ws/echo/", EchoConsumer.as_asgi())])}
)
