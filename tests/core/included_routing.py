"""A routing module pulled in with include() by tests/core/test_routing.py."""

from django.urls import path, re_path

from switchboard.generic.websocket import AsyncJsonWebsocketConsumer


class Echoes(AsyncJsonWebsocketConsumer):
    """Reports where routing put it, so the tests can check args, kwargs and the remainder."""

    async def connect(self):
        await self.accept()
        await self.send_json(
            {
                "kwargs": self.scope["url_route"]["kwargs"],
                "rest": self.scope["path_remaining"],
                "module": True,
            }
        )


websocket_urlpatterns = [
    path("rooms/<int:room>/", Echoes.as_asgi()),
    re_path(r"^tags/(?P<tag>[a-z]+)/$", Echoes.as_asgi(), {"source": "inner"}),
]
# Never used: websocket_urlpatterns wins when a module has both.
urlpatterns = [path("http-only/", Echoes.as_asgi())]
