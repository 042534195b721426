"""Routers: protocol type, URL patterns (nested), channel names, ASGI_APPLICATION."""

from __future__ import annotations

import pytest
from django.core.exceptions import ImproperlyConfigured
from django.test import override_settings
from django.urls import include, path, re_path

from switchboard.consumer import AsyncConsumer
from switchboard.generic.http import AsyncHttpConsumer
from switchboard.generic.websocket import AsyncJsonWebsocketConsumer
from switchboard.routing import (
    ChannelNameRouter,
    ProtocolTypeRouter,
    URLRouter,
    get_default_application,
)
from switchboard.testing import ApplicationCommunicator, HttpCommunicator, WebsocketCommunicator
from tests.core.route_probe import route as _route


class Route(AsyncJsonWebsocketConsumer):
    async def connect(self):
        await self.accept()
        await self.send_json(
            {
                "args": list(self.scope["url_route"]["args"]),
                "kwargs": self.scope["url_route"]["kwargs"],
                "rest": self.scope["path_remaining"],
            }
        )


class Hello(AsyncHttpConsumer):
    async def handle(self, body):
        await self.send_response(200, b"hello", headers=[(b"x-kind", b"http")])


async def test_nested_url_router_merges_kwargs():
    inner = URLRouter(
        [
            path("rooms/<int:room>/", Route.as_asgi()),
            re_path(r"^files/(?P<name>\w+)\.txt$", Route.as_asgi()),
        ]
    )
    app = URLRouter(
        [
            path("org/<slug:org>/", inner),
            re_path(r"^v(?P<version>\d)/", URLRouter([path("x/", Route.as_asgi(), {"d": 1})])),
        ]
    )
    assert await _route(app, "/org/acme/rooms/12/") == {
        "args": [],
        "kwargs": {"org": "acme", "room": 12},
        "rest": "",
    }
    assert (await _route(app, "/org/acme/files/a.txt"))["kwargs"] == {"org": "acme", "name": "a"}
    assert (await _route(app, "/v2/x/"))["kwargs"] == {"version": "2", "d": 1}


async def test_unroutable_path_is_a_clear_error():
    app = URLRouter([path("org/<slug:org>/", URLRouter([path("rooms/", Route.as_asgi())]))])
    communicator = WebsocketCommunicator(app, "/org/acme/nope/")
    with pytest.raises(ValueError, match="No route found for path '/org/acme/nope/'"):
        await communicator.connect()
    # An endpoint path() must match the whole path, not a prefix.
    communicator = WebsocketCommunicator(URLRouter([path("a/", Route.as_asgi())]), "/a/b/")
    with pytest.raises(ValueError, match="No route found"):
        await communicator.connect()


def test_consumer_class_instead_of_as_asgi_is_refused():
    with pytest.raises(ValueError, match=r"Route\.as_asgi\(\)"):
        URLRouter([path("a/", Route)])


async def test_protocol_type_router():
    app = ProtocolTypeRouter(
        {"http": Hello.as_asgi(), "websocket": URLRouter([path("ws/", Route.as_asgi())])}
    )
    response = await HttpCommunicator(app, "GET", "/").get_response()
    assert response["status"] == 200 and response["body"] == b"hello"
    assert (await _route(app, "/ws/"))["rest"] == ""
    communicator = ApplicationCommunicator(app, {"type": "lifespan"})
    with pytest.raises(ValueError, match="No application configured for scope type 'lifespan'"):
        await communicator.wait(1)


async def test_channel_name_router():
    seen = []

    class Jobs(AsyncConsumer):
        async def job_run(self, message):
            seen.append((self.scope["channel"], message["n"]))

    app = ChannelNameRouter({"jobs": Jobs.as_asgi()})
    communicator = ApplicationCommunicator(app, {"type": "channel", "channel": "jobs"})
    await communicator.send_input({"type": "job.run", "n": 1})
    await communicator.receive_nothing(0.05)
    assert seen == [("jobs", 1)]
    communicator.stop()

    communicator = ApplicationCommunicator(app, {"type": "channel", "channel": "other"})
    with pytest.raises(ValueError, match="No application configured for channel 'other'"):
        await communicator.wait(1)
    communicator = ApplicationCommunicator(app, {"type": "websocket", "path": "/"})
    with pytest.raises(ValueError, match="without a 'channel' key"):
        await communicator.wait(1)


def test_get_default_application():
    with override_settings(ASGI_APPLICATION="tests.core.test_routing.application"):
        assert get_default_application() is application
    with override_settings(ASGI_APPLICATION="tests.core.test_routing.missing"):
        with pytest.raises(ImproperlyConfigured, match="missing"):
            get_default_application()


application = ProtocolTypeRouter({"http": Hello.as_asgi()})


async def test_include_of_a_pattern_list():
    app = URLRouter(
        [
            path("chat/", include([path("lobby/", Route.as_asgi()), path("", Route.as_asgi())])),
            path("other/", Route.as_asgi()),
        ]
    )
    assert await _route(app, "/chat/lobby/") == {"args": [], "kwargs": {}, "rest": ""}
    assert (await _route(app, "/chat/"))["rest"] == ""
    assert (await _route(app, "/other/"))["rest"] == ""


async def test_include_of_a_routing_module():
    app = URLRouter([path("ws/", include("tests.core.included_routing"))])
    info = await _route(app, "/ws/rooms/7/")
    assert info == {"kwargs": {"room": 7}, "rest": "", "module": True}
    # websocket_urlpatterns is preferred over urlpatterns when a module has both.
    communicator = WebsocketCommunicator(app, "/ws/http-only/")
    with pytest.raises(ValueError, match="No route found for path '/ws/http-only/'"):
        await communicator.connect()


async def test_include_merges_outer_and_inner_kwargs():
    app = URLRouter(
        [
            path("org/<slug:org>/", include("tests.core.included_routing"), {"site": "outer"}),
            re_path(
                r"^v(?P<version>\d)/",
                include([path("team/<str:team>/", Route.as_asgi(), {"d": 1})]),
            ),
            path(
                "deep/<int:a>/",
                include([path("x/", include([path("<int:b>/", Route.as_asgi())]))]),
            ),
        ]
    )
    info = await _route(app, "/org/acme/rooms/3/")
    assert info["kwargs"] == {"org": "acme", "site": "outer", "room": 3}
    info = await _route(app, "/org/acme/tags/blue/")
    assert info["kwargs"] == {"org": "acme", "site": "outer", "tag": "blue", "source": "inner"}
    assert (await _route(app, "/v3/team/red/"))["kwargs"] == {"version": "3", "team": "red", "d": 1}
    assert (await _route(app, "/deep/1/x/2/"))["kwargs"] == {"a": 1, "b": 2}


async def test_unmatched_path_under_include_is_a_clear_error():
    app = URLRouter([path("chat/", include([path("lobby/", Route.as_asgi())]))])
    communicator = WebsocketCommunicator(app, "/chat/nope/")
    with pytest.raises(ValueError, match="No route found for path '/chat/nope/'"):
        await communicator.connect()
    # The included pattern is a prefix: its own endpoint must still match the whole rest.
    communicator = WebsocketCommunicator(app, "/chat/lobby/extra/")
    with pytest.raises(ValueError, match="No route found"):
        await communicator.connect()


def test_include_checks_the_included_applications():
    with pytest.raises(ValueError, match=r"Route\.as_asgi\(\)"):
        URLRouter([path("chat/", include([path("a/", Route)]))])
    with pytest.raises(ImproperlyConfigured, match="neither 'websocket_urlpatterns'"):
        URLRouter([path("x/", include("tests.core.routing_module_without_patterns"))])
