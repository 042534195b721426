"""ASGI entry point: Django views over HTTP, the blog's streams over one WebSocket."""

import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "liveblogsite.settings")
# Set up Django (and its app registry) before importing anything that touches models.
django_asgi_app = get_asgi_application()

from blog.routing import websocket_urlpatterns  # noqa: E402
from switchboard.auth import AuthMiddlewareStack  # noqa: E402
from switchboard.routing import ProtocolTypeRouter, URLRouter  # noqa: E402
from switchboard.security.websocket import AllowedHostsOriginValidator  # noqa: E402

application = ProtocolTypeRouter(
    {
        "http": django_asgi_app,
        "websocket": AllowedHostsOriginValidator(
            AuthMiddlewareStack(URLRouter(websocket_urlpatterns))
        ),
    }
)
