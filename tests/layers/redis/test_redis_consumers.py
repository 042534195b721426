"""Consumers on the Redis layer: their own channel is waited on without a task per message."""

from __future__ import annotations

import asyncio

from django.test import override_settings

from switchboard.generic.websocket import AsyncJsonWebsocketConsumer
from switchboard.layers import channel_layers, get_channel_layer
from switchboard.testing import WebsocketCommunicator


class Room(AsyncJsonWebsocketConsumer):
    groups = ["redis-room"]

    async def connect(self):
        await self.accept()
        await self.send_json({"channel": self.channel_name})

    async def receive_json(self, content, **kwargs):
        await self.channel_layer.group_send("redis-room", {"type": "say", "text": content})

    async def say(self, event):
        await self.send_json(event["text"])


async def test_group_broadcast_and_direct_sends_reach_consumers_and_leave_nothing(redis_server):
    backend = {"BACKEND": "switchboard.layers.redis.RedisChannelLayer"}
    config = {"default": {**backend, "CONFIG": {"hosts": [redis_server.url]}}}
    with override_settings(CHANNEL_LAYERS=config):
        channel_layers.reset()
        try:
            layer = get_channel_layer()
            communicators = [WebsocketCommunicator(Room.as_asgi(), "/") for _ in range(10)]
            channels = []
            for communicator in communicators:
                await communicator.connect()
                channels.append((await communicator.receive_json_from(timeout=3))["channel"])
            await communicators[3].send_json_to({"n": 1})
            for communicator in communicators:
                assert await communicator.receive_json_from(timeout=3) == {"n": 1}
            # Direct sends to a consumer's own channel, several queued at once, in order.
            for n in range(5):
                await layer.send(channels[0], {"type": "say", "text": {"direct": n}})
            for n in range(5):
                assert await communicators[0].receive_json_from(timeout=3) == {"direct": n}
            state = layer._state()
            probe = layer.receive_future(await layer.new_channel())
            assert not isinstance(probe, asyncio.Task)  # a plain future, no task
            probe.cancel()
            assert all(state.queues[c].waiters for c in channels)  # each one waits on its own
            for communicator in communicators:
                await communicator.disconnect()
            await asyncio.sleep(0)
            assert not any(state.queues[c].waiters for c in channels if c in state.queues)
        finally:
            await get_channel_layer().close()
            channel_layers.reset()
