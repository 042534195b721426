"""Consumers driven through the test communicators on the in-memory channel layer."""

from __future__ import annotations

import asyncio

import pytest
from django.urls import path

from switchboard.consumer import AsyncConsumer, SyncConsumer
from switchboard.db import database_sync_to_async
from switchboard.exceptions import DenyConnection
from switchboard.generic.http import AsyncHttpConsumer
from switchboard.generic.websocket import (
    AsyncJsonWebsocketConsumer,
    AsyncWebsocketConsumer,
    JsonWebsocketConsumer,
    WebsocketConsumer,
)
from switchboard.layers import get_channel_layer
from switchboard.routing import URLRouter
from switchboard.testing import ApplicationCommunicator, HttpCommunicator, WebsocketCommunicator


class EchoJson(AsyncJsonWebsocketConsumer):
    async def receive_json(self, content, **kwargs):
        await self.send_json({"echo": content})


class Room(AsyncJsonWebsocketConsumer):
    groups = ["room"]

    async def receive_json(self, content, **kwargs):
        await self.channel_layer.group_send("room", {"type": "room.message", "text": content})

    async def room_message(self, event):
        await self.send_json(event["text"])


async def test_json_round_trip_and_subprotocol():
    class Proto(EchoJson):
        async def connect(self):
            await self.accept(self.scope["subprotocols"][0])

    communicator = WebsocketCommunicator(Proto.as_asgi(), "/ws/", subprotocols=["chat.v1"])
    assert await communicator.connect() == (True, "chat.v1")
    await communicator.send_json_to({"a": [1, 2]})
    assert await communicator.receive_json_from() == {"echo": {"a": [1, 2]}}
    await communicator.send_to(text_data='"plain"')
    assert await communicator.receive_from() == '{"echo": "plain"}'
    await communicator.disconnect()


async def test_group_broadcast_reaches_fifty_sockets_and_groups_are_left():
    layer = get_channel_layer()
    app = Room.as_asgi()
    communicators = [WebsocketCommunicator(app, "/room/") for _ in range(50)]
    for communicator in communicators:
        assert (await communicator.connect())[0]
    await communicators[7].send_json_to({"n": 7})
    for communicator in communicators:
        assert await communicator.receive_json_from() == {"n": 7}
        assert await communicator.receive_nothing(0.001)
    assert len(layer.groups["room"]) == 50
    for communicator in communicators:
        await communicator.disconnect()
    assert "room" not in layer.groups


async def test_layer_and_client_messages_handled_one_at_a_time_in_order():
    active: list[int] = []
    seen: list[str] = []

    class Slow(AsyncWebsocketConsumer):
        async def receive(self, text_data=None, bytes_data=None):
            await self._work("client:" + text_data)

        async def poke(self, event):
            await self._work("layer:" + event["n"])

        async def _work(self, label):
            active.append(1)
            assert len(active) == 1, "two handlers ran at once"
            await asyncio.sleep(0.001)
            seen.append(label)
            active.pop()
            await self.send(text_data=label)

        async def connect(self):
            await self.accept()
            await self.send(text_data=self.channel_name)

    communicator = WebsocketCommunicator(Slow.as_asgi(), "/")
    await communicator.connect()
    channel = await communicator.receive_from()
    layer = get_channel_layer()
    for n in range(10):
        await layer.send(channel, {"type": "poke", "n": str(n)})
        await communicator.send_to(text_data=str(n))
    for _ in range(20):
        await communicator.receive_from()
    assert [s for s in seen if s.startswith("layer")] == [f"layer:{n}" for n in range(10)]
    assert [s for s in seen if s.startswith("client")] == [f"client:{n}" for n in range(10)]
    await communicator.disconnect()


async def test_sync_websocket_consumer_uses_the_orm_in_a_thread():
    from django.contrib.auth.models import Group

    closed: list[int] = []

    class Counter(WebsocketConsumer):
        def receive(self, text_data=None, bytes_data=None):
            if bytes_data is not None:
                self.send(bytes_data=bytes_data[::-1])
                return
            Group.objects.get_or_create(name=text_data)
            self.send(text_data=str(Group.objects.filter(name=text_data).count()), close=4001)

        def disconnect(self, code):
            closed.append(code)

    communicator = WebsocketCommunicator(Counter.as_asgi(), "/")
    assert await communicator.connect() == (True, None)
    await communicator.send_to(bytes_data=b"abc")
    assert await communicator.receive_from() == b"cba"
    await communicator.send_to(text_data="sync-group")
    assert await communicator.receive_from() == "1"
    assert await communicator.receive_output(1) == {"type": "websocket.close", "code": 4001}
    await communicator.disconnect(4001)
    assert closed == [4001]
    assert await database_sync_to_async(Group.objects.filter(name="sync-group").exists)()


async def test_sync_json_consumer_rejects_binary_frames():
    class Json(JsonWebsocketConsumer):
        def receive_json(self, content, **kwargs):
            self.send_json(content)

    communicator = WebsocketCommunicator(Json.as_asgi(), "/")
    await communicator.connect()
    await communicator.send_json_to([1])
    assert await communicator.receive_json_from() == [1]
    await communicator.send_to(bytes_data=b"x")
    with pytest.raises(ValueError, match="No text section"):
        await communicator.wait(1)


async def test_deny_connection_and_close_before_accept():
    class Denied(AsyncWebsocketConsumer):
        async def connect(self):
            raise DenyConnection()

    class Closed(AsyncWebsocketConsumer):
        async def connect(self):
            await self.close(code=4403)

    class Denial(AsyncWebsocketConsumer):
        async def connect(self):
            await self.base_send({"type": "websocket.http.response.start", "status": 403})

    assert await WebsocketCommunicator(Denied.as_asgi(), "/").connect() == (False, 1000)
    assert await WebsocketCommunicator(Closed.as_asgi(), "/").connect() == (False, 4403)
    assert await WebsocketCommunicator(Denial.as_asgi(), "/").connect() == (False, 403)


async def test_async_http_consumer():
    class Upper(AsyncHttpConsumer):
        async def handle(self, body):
            await self.send_headers(status=201, headers={"Content-Type": "text/plain"})
            await self.send_body(body.upper(), more_body=True)
            await self.send_body(self.scope["method"].encode())

    communicator = HttpCommunicator(Upper.as_asgi(), "post", "/up?x=1", body=b"hello")
    response = await communicator.get_response()
    assert response == {
        "status": 201,
        "headers": [(b"Content-Type", b"text/plain")],
        "body": b"HELLOPOST",
    }


async def test_http_disconnect_stops_the_consumer():
    disconnected = []

    class Waiting(AsyncHttpConsumer):
        async def handle(self, body):  # pragma: no cover - never reached
            raise AssertionError("handled a request whose client left")

        async def disconnect(self):
            disconnected.append(True)

    communicator = ApplicationCommunicator(Waiting.as_asgi(), {"type": "http", "path": "/"})
    await communicator.send_input({"type": "http.request", "body": b"x", "more_body": True})
    await communicator.send_input({"type": "http.disconnect"})
    await communicator.wait(1)
    assert disconnected == [True]


async def test_missing_handler_names_the_message_type():
    communicator = ApplicationCommunicator(AsyncConsumer.as_asgi(), {"type": "channel"})
    await communicator.send_input({"type": "no.such.thing"})
    with pytest.raises(ValueError, match="no.such.thing"):
        await communicator.wait(1)


async def test_private_handler_names_are_refused():
    communicator = ApplicationCommunicator(AsyncConsumer.as_asgi(), {"type": "channel"})
    await communicator.send_input({"type": "_leading"})
    with pytest.raises(ValueError, match="leading underscore"):
        await communicator.wait(1)


async def test_sync_consumer_send_and_stop():
    from switchboard.exceptions import StopConsumer

    class Pinger(SyncConsumer):
        def ping(self, message):
            self.send({"type": "pong", "n": message["n"]})

        def stop(self, message):
            raise StopConsumer()

    communicator = ApplicationCommunicator(Pinger.as_asgi(), {"type": "channel"})
    await communicator.send_input({"type": "ping", "n": 3})
    assert await communicator.receive_output(1) == {"type": "pong", "n": 3}
    await communicator.send_input({"type": "stop"})
    await communicator.wait(1)  # Returns cleanly: StopConsumer is not an error.


async def test_as_asgi_initkwargs():
    class Greeter(AsyncWebsocketConsumer):
        greeting = "hello"

        async def connect(self):
            await self.accept()
            await self.send(text_data=self.greeting)

    app = Greeter.as_asgi(greeting="bonjour")
    assert app.consumer_class is Greeter
    assert app.consumer_initkwargs == {"greeting": "bonjour"}
    communicator = WebsocketCommunicator(URLRouter([path("g/", app)]), "/g/")
    await communicator.connect()
    assert await communicator.receive_from() == "bonjour"
    await communicator.disconnect()
    with pytest.raises(TypeError, match="invalid keyword 'colour'"):
        Greeter.as_asgi(colour="blue")


async def test_cancelled_consumer_leaves_its_groups():
    layer = get_channel_layer()
    communicator = WebsocketCommunicator(Room.as_asgi(), "/room/")
    assert (await communicator.connect())[0]
    assert len(layer.groups["room"]) == 1
    communicator.future.cancel()  # The server dropped the task without a disconnect message.
    with pytest.raises(asyncio.CancelledError):
        await communicator.future
    assert "room" not in layer.groups
