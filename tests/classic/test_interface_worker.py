"""The Channels 1 interface server and worker in one process (as ``runserver`` runs them): the
real server on a loopback port, real WebSocket and HTTP clients, function consumers routed
with ``route()``, the suite's in-memory layer. Behaviour as Channels 1.1 documented it, with
Switchboard's one choice: a connect consumer that answers nothing accepts."""

from __future__ import annotations

import asyncio
import json
import logging
import random
import time
import urllib.request
from collections.abc import AsyncIterator
from typing import Any

import pytest
from django.http import HttpResponse
from django.test import override_settings
from django.urls import path
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus

from switchboard import Channel, Group, route
from switchboard.classic.embedded import EmbeddedWorkers
from switchboard.classic.routing import Router
from switchboard.exceptions import ConsumeLater
from switchboard.sessions import enforce_ordering
from tests.support.serving import serving

pytestmark = pytest.mark.timeout(30)

later_calls: list[int] = []


def ws_connect(message: Any, room: str) -> None:
    Group(f"room-{room}").add(message.reply_channel)


def ws_receive(message: Any, room: str) -> None:
    if message["text"] == "boom":
        raise ValueError("a consumer that raises")
    Group(f"room-{room}").send({"text": json.dumps({"room": room, "text": message["text"]})})


def ws_disconnect(message: Any, room: str) -> None:
    Group(f"room-{room}").discard(message.reply_channel)


def refuse(message: Any) -> None:
    message.reply_channel.send({"close": True})


def held_then_fail(message: Any) -> None:
    message.reply_channel.send({"text": "sent, though the consumer raises after"})
    raise RuntimeError("after a send")


def later(message: Any) -> None:
    later_calls.append(len(later_calls))
    if len(later_calls) < 3:
        raise ConsumeLater()
    message.reply_channel.send({"text": f"consumed on try {len(later_calls)}"})


def echo_on_channel(message: Any) -> None:
    Channel(message["reply_to"]).send({"text": "via a named channel"})


def hello_view(request: Any) -> HttpResponse:
    return HttpResponse(f"{request.method} {request.path} q={request.GET.get('q')}")


def upload_view(request: Any) -> HttpResponse:
    return HttpResponse(f"{len(request.body)} bytes")


urlpatterns = [path("hello/", hello_view), path("upload/", upload_view)]


@enforce_ordering
def ordered_connect(message: Any) -> None:
    time.sleep(0.2)  # a slow connect: the messages after it must wait for it


@enforce_ordering
def ordered_receive(message: Any) -> None:
    time.sleep(random.random() / 10)  # four threads: unordered, they would overtake
    seen = message.channel_session.get("seen", [])
    message.channel_session["seen"] = [*seen, message["text"]]
    message.reply_channel.send({"text": ",".join(message.channel_session["seen"])})


def say_nothing(message: Any) -> None:
    pass  # returns without an answer: the socket is accepted


ROUTES = [
    route("websocket.connect", refuse, path=r"^/refused/$"),
    route("websocket.connect", say_nothing, path=r"^/(failing|later)/$"),
    route("websocket.connect", ordered_connect, path=r"^/ordered/$"),
    route("websocket.receive", ordered_receive, path=r"^/ordered/$"),
    route("websocket.receive", held_then_fail, path=r"^/failing/$"),
    route("websocket.receive", later, path=r"^/later/$"),
    route("websocket.connect", ws_connect, path=r"^/chat/(?P<room>\w+)/$"),
    route("websocket.receive", ws_receive, path=r"^/chat/(?P<room>\w+)/$"),
    route("websocket.disconnect", ws_disconnect, path=r"^/chat/(?P<room>\w+)/$"),
]


@pytest.fixture
async def address() -> AsyncIterator[str]:
    later_calls.clear()
    with override_settings(ROOT_URLCONF=__name__):
        async with serving(EmbeddedWorkers(Router(ROUTES), "default")) as where:
            yield where


def get(url: str, data: bytes | None = None) -> str:
    with urllib.request.urlopen(url, data=data, timeout=10) as response:
        return response.read().decode()


async def test_function_consumers_chat_through_a_group(address: str) -> None:
    url = f"ws://{address}/chat/lobby/"
    async with connect(url) as ada, connect(url) as bob:  # accepted: ws_connect sent nothing
        await asyncio.sleep(0.1)
        await ada.send("hello")
        for ws in (ada, bob):
            assert json.loads(await asyncio.wait_for(ws.recv(), 5)) == {
                "room": "lobby",
                "text": "hello",
            }


async def test_a_connect_consumer_can_refuse(address: str) -> None:
    with pytest.raises(InvalidStatus) as refused:
        async with connect(f"ws://{address}/refused/"):
            pass
    assert refused.value.response.status_code == 403


async def test_an_unrouted_connect_is_refused_and_said_once(
    address: str, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, "switchboard.worker"):
        for _ in range(2):
            with pytest.raises(InvalidStatus):
                async with connect(f"ws://{address}/nowhere/"):
                    pass
    assert caplog.text.count("No route matches a message on 'websocket.connect'") == 1


async def test_a_consumer_that_raises_still_sends_what_it_sent_and_the_worker_goes_on(
    address: str, caplog: pytest.LogCaptureFixture
) -> None:
    # Channels 1.1's worker sent a consumer's held messages in a finally: checked on the
    # original stack with `./scripts/bench channels1 --probe`.
    with caplog.at_level(logging.ERROR, "switchboard.worker"):
        async with connect(f"ws://{address}/failing/") as ws:
            await ws.send("x")
            assert await asyncio.wait_for(ws.recv(), 5) == "sent, though the consumer raises after"
    assert caplog.text.count("Error in consumer held_then_fail") == 1
    async with connect(f"ws://{address}/chat/after/") as ws:
        await ws.send("still here")
        assert json.loads(await asyncio.wait_for(ws.recv(), 5))["text"] == "still here"


async def test_consume_later_puts_the_message_back(address: str) -> None:
    async with connect(f"ws://{address}/later/") as ws:
        await ws.send("x")
        assert await asyncio.wait_for(ws.recv(), 5) == "consumed on try 3"


async def test_enforce_ordering_runs_a_connection_s_messages_in_order(address: str) -> None:
    async with connect(f"ws://{address}/ordered/") as ws:
        for n in range(1, 9):
            await ws.send(str(n))
        replies = [await asyncio.wait_for(ws.recv(), 10) for _ in range(8)]
    assert replies[-1] == "1,2,3,4,5,6,7,8"
    assert replies == [",".join(str(n) for n in range(1, k + 1)) for k in range(1, 9)]


async def test_http_requests_go_to_django_views_through_the_layer(address: str) -> None:
    assert await asyncio.to_thread(get, f"http://{address}/hello/?q=1") == "GET /hello/ q=1"
    # A body larger than one message follows on its body channel.
    body = b"x" * (600 * 1024)
    assert await asyncio.to_thread(get, f"http://{address}/upload/", body) == f"{len(body)} bytes"


async def test_a_project_can_mount_its_channels_1_routing_beside_modern_consumers() -> None:
    from django.urls import re_path

    from switchboard.asgi import get_channel_layer
    from switchboard.generic.websocket import AsyncWebsocketConsumer
    from switchboard.routing import ProtocolTypeRouter, URLRouter

    class Modern(AsyncWebsocketConsumer):
        async def receive(self, text_data=None, bytes_data=None):
            await self.send(text_data=f"modern: {text_data}")

    legacy = get_channel_layer().as_asgi()
    application = ProtocolTypeRouter(
        {
            "websocket": URLRouter([re_path(r"^modern/$", Modern.as_asgi()), re_path(r"", legacy)]),
        }
    )
    worker = EmbeddedWorkers(Router(ROUTES), "default")
    async with serving(application) as where:
        worker._start()  # the Channels 1 workers, on the same in-memory layer
        try:
            async with connect(f"ws://{where}/modern/") as ws:
                await ws.send("hi")
                assert await asyncio.wait_for(ws.recv(), 5) == "modern: hi"
            async with connect(f"ws://{where}/chat/mixed/") as ws:
                await ws.send("old")
                reply = json.loads(await asyncio.wait_for(ws.recv(), 5))
                assert reply == {"room": "mixed", "text": "old"}
        finally:
            await worker._stop()


def test_runserver_serves_asgi_application_and_runs_the_channels_1_workers_beside_it() -> None:
    from switchboard.routing import project_application

    layers = {
        "default": {
            "BACKEND": "switchboard.layers.inmemory.InMemoryChannelLayer",
            "ROUTING": f"{__name__}.ROUTES",
        }
    }
    app = f"{__name__}.MODERN_APP"
    with override_settings(CHANNEL_LAYERS=layers, ASGI_APPLICATION=app, STATIC_URL=None):
        served = project_application(serve_static=False)
    assert isinstance(served, EmbeddedWorkers)
    assert served.application is MODERN_APP
    assert served.router.channel_names() >= {"websocket.connect", "websocket.receive"}
    with override_settings(CHANNEL_LAYERS=layers, ASGI_APPLICATION=None, STATIC_URL=None):
        alone = project_application(serve_static=False)
    assert isinstance(alone, EmbeddedWorkers) and alone.application is alone.interface


async def MODERN_APP(scope: Any, receive: Any, send: Any) -> None:  # noqa: N802
    raise AssertionError("not called")


async def test_a_stopping_worker_puts_back_the_message_it_held_for_a_thread() -> None:
    import threading

    from switchboard.classic.worker import ClassicWorker
    from switchboard.layers.inmemory import InMemoryChannelLayer

    layer = InMemoryChannelLayer()
    started = threading.Event()

    def slow(message: Any) -> None:
        started.set()
        time.sleep(0.5)

    worker = ClassicWorker(Router([route("jobs", slow)]), layer, ["jobs"], threads=1)
    running = asyncio.ensure_future(worker.run())
    await layer.send("jobs", {"n": 1})
    await layer.send("jobs", {"n": 2})
    while not started.is_set():
        await asyncio.sleep(0.01)
    await asyncio.sleep(0.1)  # number 2 is taken from the layer, waiting for the one thread
    worker.stop()
    await asyncio.wait_for(running, 5)
    back = await asyncio.wait_for(layer.receive("jobs"), 1)
    assert back["n"] == 2
