import os

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "gwsite.settings")

from django.core.asgi import get_asgi_application  # noqa: E402

django_asgi_app = get_asgi_application()

from django.urls import path  # noqa: E402

from gwsite import consumers  # noqa: E402
from switchboard.auth import AuthMiddlewareStack  # noqa: E402
from switchboard.routing import ProtocolTypeRouter, URLRouter  # noqa: E402

application = ProtocolTypeRouter(
    {
        "http": django_asgi_app,
        "websocket": AuthMiddlewareStack(
            URLRouter(
                [
                    path("ws/echo/", consumers.EchoConsumer.as_asgi()),
                    path("ws/pinned/", consumers.PinnedConsumer.as_asgi()),
                    path("ws/concurrent/", consumers.ConcurrentEchoConsumer.as_asgi()),
                    path("ws/scope/", consumers.ScopeConsumer.as_asgi()),
                    path("ws/fails/", consumers.FailingConsumer.as_asgi()),
                    path("ws/refuses/", consumers.RefusingConsumer.as_asgi()),
                    path("ws/chat/<str:room>/", consumers.ChatConsumer.as_asgi()),
                ]
            )
        ),
    }
)
