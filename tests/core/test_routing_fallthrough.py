"""URLRouter: nested routers that match nothing let later routes try; root_path is enforced.

Channels' URLRouter moves on to its next route when a nested router finds no route for the
rest of the path, and its outermost router refuses a scope whose ``path`` lies outside its
``root_path``. Per the ASGI HTTP/WebSocket spec, ``root_path`` is where the application is
mounted (WSGI's SCRIPT_NAME) and ``path`` is the full path including it ("WSGI
compatibility": PATH_INFO is ``path`` with ``root_path`` removed).
"""

from __future__ import annotations

import json

import pytest
from django.urls import include, path, re_path

from switchboard.auth import AuthMiddlewareStack
from switchboard.generic.websocket import AsyncJsonWebsocketConsumer
from switchboard.middleware import BaseMiddleware
from switchboard.routing import NoRouteFound, URLRouter
from switchboard.testing import ApplicationCommunicator, WebsocketCommunicator
from tests.core.route_probe import route as _route


def named(name: str):
    class Where(AsyncJsonWebsocketConsumer):
        async def connect(self):
            await self.accept()
            await self.send_json(
                {
                    "name": name,
                    "kwargs": self.scope["url_route"]["kwargs"],
                    "rest": self.scope["path_remaining"],
                }
            )

    return Where.as_asgi()


async def _route_scope(app, path_: str, root_path: str) -> dict:
    # WebsocketCommunicator always sends root_path ""; this scope has the server's root_path.
    scope = {"type": "websocket", "path": path_, "root_path": root_path, "headers": []}
    communicator = ApplicationCommunicator(app, scope)
    await communicator.send_input({"type": "websocket.connect"})
    assert (await communicator.receive_output(1))["type"] == "websocket.accept"
    info = json.loads((await communicator.receive_output(1))["text"])
    await communicator.send_input({"type": "websocket.disconnect", "code": 1000})
    await communicator.wait(1)
    return info


async def _connect_and_finish(app, url: str) -> None:
    # Awaits the application itself, so a routing error surfaces at once (no output timeout).
    communicator = WebsocketCommunicator(app, url)
    await communicator.send_input({"type": "websocket.connect"})
    await communicator.wait(1)


class Tagging(BaseMiddleware):
    async def __call__(self, scope, receive, send):
        return await self.inner(dict(scope, tagged=True), receive, send)


# --- falling through ---------------------------------------------------------------------


async def test_nested_router_without_a_match_lets_the_next_route_try():
    app = URLRouter(
        [
            path("chat/", URLRouter([path("lobby/", named("lobby"))])),
            path("chat/<str:room>/", named("room")),
        ]
    )
    assert (await _route(app, "/chat/lobby/"))["name"] == "lobby"
    info = await _route(app, "/chat/kitchen/")
    # Nothing of the abandoned attempt leaks into the route that matched.
    assert info == {"name": "room", "kwargs": {"room": "kitchen"}, "rest": ""}


async def test_include_without_a_match_lets_the_next_route_try():
    app = URLRouter(
        [
            path("api/<int:version>/", include([path("users/", named("users"))])),
            re_path(r"^api/(?P<anything>.*)$", named("catch-all")),
        ]
    )
    assert (await _route(app, "/api/2/users/"))["kwargs"] == {"version": 2}
    info = await _route(app, "/api/2/groups/")
    assert info["name"] == "catch-all" and info["kwargs"] == {"anything": "2/groups/"}


async def test_nested_router_behind_middleware_falls_through_too():
    inner = URLRouter([path("private/", named("private"))])
    app = URLRouter(
        [
            re_path(r"^me/", Tagging(AuthMiddlewareStack(inner))),
            path("me/public/", named("public")),
        ]
    )
    assert (await _route(app, "/me/private/"))["name"] == "private"
    assert (await _route(app, "/me/public/"))["name"] == "public"


async def test_a_miss_two_levels_down_falls_back_through_each_level():
    app = URLRouter(
        [
            path(
                "a/",
                URLRouter(
                    [
                        path("b/", URLRouter([path("c/", named("abc"))])),
                        path("b/d/", named("abd")),
                    ]
                ),
            ),
            path("a/b/e/", named("abe")),
        ]
    )
    assert (await _route(app, "/a/b/c/"))["name"] == "abc"
    assert (await _route(app, "/a/b/d/"))["name"] == "abd"
    assert (await _route(app, "/a/b/e/"))["name"] == "abe"


async def test_no_match_anywhere_is_still_a_value_error_naming_the_full_path():
    app = URLRouter(
        [
            path("chat/", URLRouter([path("lobby/", named("lobby"))])),
            path("other/", named("other")),
        ]
    )
    with pytest.raises(ValueError, match=r"No route found for path '/chat/nowhere/'") as caught:
        await _connect_and_finish(app, "/chat/nowhere/")
    assert isinstance(caught.value, NoRouteFound)


async def test_a_routing_error_inside_a_matched_application_is_not_swallowed():
    # The application matched; a router it uses itself, for a scope of its own, failing is
    # its bug and must surface, not send the connection on to another route.
    reached = []

    async def dispatching_app(scope, receive, send):
        await URLRouter([path("known/", named("known"))])(
            {"type": "websocket", "path": "/unknown/"}, receive, send
        )

    async def later(scope, receive, send):  # pragma: no cover - must never run
        reached.append(scope)

    app = URLRouter([path("x/", dispatching_app), re_path(r"^x/", later)])
    with pytest.raises(NoRouteFound, match="'/unknown/'"):
        await _connect_and_finish(app, "/x/")
    assert reached == []

    async def failing_app(scope, receive, send):
        raise ValueError("the application's own error")

    app = URLRouter([path("x/", failing_app), re_path(r"^x/", later)])
    with pytest.raises(ValueError, match="the application's own error"):
        await _connect_and_finish(app, "/x/")
    assert reached == []


# --- root_path ---------------------------------------------------------------------------

ROOTED = URLRouter(
    [
        path("", named("home")),
        path("chat/", named("chat")),
        path("app/chat/", named("unstripped")),
    ]
)


async def test_root_path_is_removed_before_routing():
    assert (await _route_scope(ROOTED, "/app/chat/", "/app"))["name"] == "chat"
    assert (await _route_scope(ROOTED, "/app", "/app"))["name"] == "home"
    assert (await _route_scope(ROOTED, "/app/", "/app"))["name"] == "home"
    # A root_path written with a trailing slash means the same mount point.
    assert (await _route_scope(ROOTED, "/app/chat/", "/app/"))["name"] == "chat"
    # No root_path: the path is routed as it is.
    assert (await _route_scope(ROOTED, "/app/chat/", ""))["name"] == "unstripped"


@pytest.mark.parametrize(
    "path_, root_path",
    [
        ("/chat/", "/app"),  # would otherwise be routed as if nothing were mounted
        ("/apple/chat/", "/app"),  # a prefix, but not at a segment boundary
        ("/ap", "/app"),
    ],
)
async def test_path_outside_root_path_is_refused(path_, root_path):
    scope = {"type": "websocket", "path": path_, "root_path": root_path, "headers": []}
    communicator = ApplicationCommunicator(ROOTED, scope)
    await communicator.send_input({"type": "websocket.connect"})
    with pytest.raises(ValueError, match=rf"{path_!r} is not under the scope's root_path") as e:
        await communicator.wait(1)
    assert not isinstance(e.value, NoRouteFound)  # a misconfiguration, not a missing route


async def test_root_path_is_only_checked_by_the_outermost_router():
    inner = URLRouter([path("chat/", named("chat"))])
    app = URLRouter([path("v1/", inner)])
    info = await _route_scope(app, "/app/v1/chat/", "/app")
    assert info["name"] == "chat" and info["rest"] == ""
