"""ASGI entry point: Django views over HTTP; signed streams over WebSocket and, through the
same route, over Server-Sent Events (``/streams/?...&sb_transport=sse``)."""

import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "scoreboardsite.settings")
# Set up Django (and its app registry) before importing anything that touches models.
django_asgi_app = get_asgi_application()

from django.urls import path  # noqa: E402

from switchboard.auth import AuthMiddlewareStack  # noqa: E402
from switchboard.routing import ProtocolTypeRouter, URLRouter  # noqa: E402
from switchboard.security.websocket import AllowedHostsOriginValidator  # noqa: E402
from switchboard.streams import SignedStreamConsumer  # noqa: E402

application = ProtocolTypeRouter(
    {
        "http": django_asgi_app,
        # One route serves the htmx sse extension (an EventSource: HTTP with
        # sb_transport=sse, run by this same stack) and the ws extension (a WebSocket).
        "websocket": AllowedHostsOriginValidator(
            AuthMiddlewareStack(URLRouter([path("streams/", SignedStreamConsumer.as_asgi())]))
        ),
    }
)
