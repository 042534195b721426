"""A WebSocket handshake nothing routes: refused by the ProtocolTypeRouter, not raised.

The real server's side (404 over the wire, the log lines) is in tests/test_misconfiguration.py;
these cover what that cannot reach: a server without the ASGI WebSocket denial-response
extension, and an application that got past the handshake before a router of its own missed.
"""

from __future__ import annotations

import logging

import pytest
from django.urls import path

from switchboard.generic.websocket import AsyncWebsocketConsumer
from switchboard.routing import NoRouteFound, ProtocolTypeRouter, URLRouter
from switchboard.testing import ApplicationCommunicator, HttpCommunicator, WebsocketCommunicator


class Accepting(AsyncWebsocketConsumer):
    pass


def _app() -> ProtocolTypeRouter:
    routes = URLRouter([path("ws/", Accepting.as_asgi())])
    return ProtocolTypeRouter({"websocket": routes, "http": routes})


def _scope(path: str, extensions: dict | None = None) -> dict:
    scope = {"type": "websocket", "path": path, "headers": [], "subprotocols": []}
    if extensions is not None:
        scope["extensions"] = extensions
    return scope


async def test_without_the_denial_extension_the_handshake_is_closed_before_accept(caplog):
    """ASGI spec: websocket.close before websocket.accept makes the server answer 403."""
    caplog.set_level(logging.DEBUG, logger="switchboard")
    communicator = WebsocketCommunicator(_app(), "/nowhere/")
    await communicator.send_input({"type": "websocket.connect"})
    assert await communicator.receive_output(1) == {"type": "websocket.close"}
    await communicator.wait(1)  # the application returned, without raising
    records = [r for r in caplog.records if r.name == "switchboard.routing"]
    assert [(r.levelname, r.getMessage()) for r in records] == [
        ("WARNING", "No route for WebSocket path '/nowhere/': handshake refused with 403")
    ]


async def test_with_the_denial_extension_the_handshake_gets_404():
    communicator = ApplicationCommunicator(
        _app(), _scope("/nowhere/", {"websocket.http.response": {}})
    )
    await communicator.send_input({"type": "websocket.connect"})
    start = await communicator.receive_output(1)
    assert start["type"] == "websocket.http.response.start"
    assert start["status"] == 404
    body = await communicator.receive_output(1)
    assert body == {"type": "websocket.http.response.body", "body": b"Not Found\n"}
    await communicator.wait(1)


async def test_a_routed_path_is_still_served():
    communicator = WebsocketCommunicator(_app(), "/ws/")
    assert (await communicator.connect())[0] is True
    await communicator.disconnect()


async def test_a_miss_after_the_application_took_the_handshake_is_not_swallowed():
    # The application read websocket.connect and accepted; a router it then used itself missed.
    # That is its own error: nothing is refused in its name, and the error reaches the server.
    async def late_miss(scope, receive, send):
        await receive()
        await send({"type": "websocket.accept"})
        raise NoRouteFound("/elsewhere/")

    communicator = WebsocketCommunicator(ProtocolTypeRouter({"websocket": late_miss}), "/x/")
    assert (await communicator.connect())[0] is True
    with pytest.raises(NoRouteFound, match="/elsewhere/"):
        await communicator.wait(3)


async def test_http_misses_are_raised_as_before():
    with pytest.raises(ValueError, match="No route found for path '/nowhere/'"):
        await HttpCommunicator(_app(), "GET", "/nowhere/").get_response()
