"""Consumers behind the real server: what the server and the consumer do about each other."""

from __future__ import annotations

import asyncio
import logging

from websockets.asyncio.client import connect

from switchboard.generic.websocket import AsyncWebsocketConsumer
from switchboard.layers import get_channel_layer


class LateReply(AsyncWebsocketConsumer):
    """Answers only after a while, by which time the test's client has gone."""

    groups = ["late"]
    disconnected: asyncio.Event
    replies_after_close: list[str]

    async def receive(self, text_data=None, bytes_data=None):
        await asyncio.sleep(0.2)
        await self.send(text_data="too late")  # the client closed meanwhile
        type(self).replies_after_close.append(text_data)

    async def disconnect(self, code):
        await self.channel_layer.group_discard("extra", self.channel_name)
        type(self).disconnected.set()

    async def connect(self):
        await self.channel_layer.group_add("extra", self.channel_name)
        await self.accept()


async def test_send_after_the_client_left_still_runs_disconnect_and_logs_no_error(
    running_server, caplog
):
    LateReply.disconnected = asyncio.Event()
    LateReply.replies_after_close = []
    layer = get_channel_layer()
    caplog.set_level(logging.DEBUG)
    async with running_server(LateReply.as_asgi()) as (host, port):
        async with connect(f"ws://{host}:{port}/") as ws:
            await ws.send("hello")
        await asyncio.wait_for(LateReply.disconnected.wait(), 5)
    # The handler went on past the failed send, and then cleanup ran as usual.
    assert LateReply.replies_after_close == ["hello"]
    assert "late" not in layer.groups and "extra" not in layer.groups
    assert layer.channels == {}
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert errors == []


class Audited(AsyncWebsocketConsumer):
    """Its own dispatch sees every message (the server reads the client without a task for
    consumers that keep the stock one: this one must still be asked)."""

    seen: list[str]

    async def dispatch(self, message):
        type(self).seen.append(message["type"])
        await super().dispatch(message)

    async def connect(self):
        await self.channel_layer.group_add("audited", self.channel_name)
        await self.accept()

    async def receive(self, text_data=None, bytes_data=None):
        await self.channel_layer.group_send("audited", {"type": "shout", "text": text_data})

    async def shout(self, event):
        await self.send(text_data=event["text"].upper())


async def test_a_consumer_s_own_dispatch_sees_client_and_layer_messages(running_server):
    Audited.seen = []
    async with running_server(Audited.as_asgi()) as (host, port):
        async with connect(f"ws://{host}:{port}/") as ws:
            await ws.send("hi")
            assert await asyncio.wait_for(ws.recv(), 5) == "HI"
        for _ in range(50):
            if "websocket.disconnect" in Audited.seen:
                break
            await asyncio.sleep(0.05)
    assert [kind for kind in Audited.seen if not kind.startswith("lifespan.")] == [
        "websocket.connect",
        "websocket.receive",
        "shout",
        "websocket.disconnect",
    ]
