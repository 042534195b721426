"""The consumer's dispatch loop: client and layer messages, one at a time, nothing leaked.

Run against both ways a layer can be waited on: Switchboard's in-memory layer hands out a
plain future (``receive_future``); any other layer's ``receive`` coroutine runs in a task.
"""

from __future__ import annotations

import asyncio

import pytest
from django.test import override_settings

from switchboard.generic.websocket import AsyncWebsocketConsumer
from switchboard.layers import get_channel_layer
from switchboard.layers.inmemory import InMemoryChannelLayer
from switchboard.testing import WebsocketCommunicator


class TaskWaitLayer(InMemoryChannelLayer):
    """The in-memory layer seen as a third-party layer: only the coroutine API."""

    # Consumers look for receive_future in extensions (they never probe the method).
    extensions = tuple(e for e in InMemoryChannelLayer.extensions if e != "receive_future")
    receive_future = None  # type: ignore[assignment]


LAYERS = {
    "native": "switchboard.layers.inmemory.InMemoryChannelLayer",
    "coroutine": "tests.core.test_dispatch.TaskWaitLayer",
}


@pytest.fixture(params=sorted(LAYERS))
def layer_kind(request):
    from switchboard.layers import channel_layers

    with override_settings(CHANNEL_LAYERS={"default": {"BACKEND": LAYERS[request.param]}}):
        channel_layers.reset()
        yield request.param
        channel_layers.reset()


class Tracker(AsyncWebsocketConsumer):
    events: list[str] = []

    async def connect(self):
        await self.accept()
        await self.send(text_data=self.channel_name)

    async def receive(self, text_data=None, bytes_data=None):
        self.events.append("client:" + text_data)
        await asyncio.sleep(0.001)
        await self.send(text_data="client:" + text_data)

    async def poke(self, event):
        self.events.append("layer:" + event["n"])
        await asyncio.sleep(0.001)
        await self.send(text_data="layer:" + event["n"])

    async def explode(self, event):
        raise RuntimeError("handler failed")

    async def disconnect(self, code):
        self.events.append("disconnect")


async def test_layer_kind_is_the_one_configured(layer_kind):
    layer = get_channel_layer()
    assert (type(layer) is TaskWaitLayer) == (layer_kind == "coroutine")


async def test_interleaved_sources_keep_their_own_order(layer_kind):
    Tracker.events = []
    communicator = WebsocketCommunicator(Tracker.as_asgi(), "/")
    await communicator.connect()
    channel = await communicator.receive_from()
    layer = get_channel_layer()
    for n in range(20):
        await layer.send(channel, {"type": "poke", "n": str(n)})
        await communicator.send_to(text_data=str(n))
    replies = [await communicator.receive_from() for _ in range(40)]
    assert [r for r in replies if r.startswith("layer")] == [f"layer:{n}" for n in range(20)]
    assert [r for r in replies if r.startswith("client")] == [f"client:{n}" for n in range(20)]
    await communicator.disconnect()


async def test_layer_messages_queued_during_a_handler_are_all_delivered(layer_kind):
    Tracker.events = []
    communicator = WebsocketCommunicator(Tracker.as_asgi(), "/")
    await communicator.connect()
    channel = await communicator.receive_from()
    layer = get_channel_layer()
    await communicator.send_to(text_data="slow")
    for n in range(5):  # arrive while the client message is being handled
        await layer.send(channel, {"type": "poke", "n": str(n)})
    replies = [await communicator.receive_from() for _ in range(6)]
    assert sorted(replies) == sorted(["client:slow"] + [f"layer:{n}" for n in range(5)])
    await communicator.disconnect()


async def test_a_finished_consumer_leaves_nothing_in_the_layer(layer_kind):
    Tracker.events = []
    layer = get_channel_layer()
    communicators = [WebsocketCommunicator(Tracker.as_asgi(), "/") for _ in range(20)]
    for communicator in communicators:
        await communicator.connect()
        await communicator.receive_from()
    assert len(layer.channels) == 20  # each consumer waits on its own channel
    for communicator in communicators:
        await communicator.disconnect()
    await asyncio.sleep(0)
    assert layer.channels == {}
    assert Tracker.events == ["disconnect"] * 20


async def test_a_failing_layer_handler_ends_the_consumer_with_its_error(layer_kind):
    Tracker.events = []
    communicator = WebsocketCommunicator(Tracker.as_asgi(), "/")
    await communicator.connect()
    channel = await communicator.receive_from()
    await get_channel_layer().send(channel, {"type": "explode"})
    with pytest.raises(RuntimeError, match="handler failed"):
        await communicator.wait(1)


async def test_a_failing_client_source_ends_the_consumer_with_its_error(layer_kind):
    calls = 0

    async def receive():
        nonlocal calls
        calls += 1
        if calls == 1:
            return {"type": "websocket.connect"}
        raise ConnectionResetError("source broke")

    sent: list[dict] = []

    async def send(message):
        sent.append(message)

    app = Tracker.as_asgi()
    with pytest.raises(ConnectionResetError, match="source broke"):
        await asyncio.wait_for(app({"type": "websocket", "path": "/"}, receive, send), 2)
    assert sent[0]["type"] == "websocket.accept"
    # The withdrawn wait's clean-up is a done callback: it runs on the next loop turn (as in
    # the test above). Python 3.12+'s wait_for no longer adds a turn of its own.
    await asyncio.sleep(0)
    assert get_channel_layer().channels == {}
