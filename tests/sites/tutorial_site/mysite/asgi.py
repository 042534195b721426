# ruff: noqa: E402, I001 - the tutorial's import order is what this file exists to test.
# The tutorial's mysite/asgi.py, statement for statement; only "channels" became "switchboard".
# The order is the point: Switchboard is imported before DJANGO_SETTINGS_MODULE is set.
import os

from switchboard.auth import AuthMiddlewareStack
from switchboard.routing import ProtocolTypeRouter, URLRouter
from switchboard.security.websocket import AllowedHostsOriginValidator
from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "mysite.settings")
# Django's app registry must be ready before the routing below imports any models.
django_asgi_app = get_asgi_application()

from chat.routing import websocket_urlpatterns

application = ProtocolTypeRouter(
    {
        "http": django_asgi_app,
        "websocket": AllowedHostsOriginValidator(
            AuthMiddlewareStack(URLRouter(websocket_urlpatterns))
        ),
    }
)
