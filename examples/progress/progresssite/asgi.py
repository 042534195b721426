"""ASGI entry point: Django views over HTTP, the progress consumer over WebSocket."""

import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "progresssite.settings")
# Set up Django (and its app registry) before importing the consumers.
django_asgi_app = get_asgi_application()

from reports.routing import websocket_urlpatterns  # noqa: E402
from switchboard.routing import ProtocolTypeRouter, URLRouter  # noqa: E402
from switchboard.security.websocket import AllowedHostsOriginValidator  # noqa: E402

application = ProtocolTypeRouter(
    {
        "http": django_asgi_app,
        "websocket": AllowedHostsOriginValidator(URLRouter(websocket_urlpatterns)),
    }
)
