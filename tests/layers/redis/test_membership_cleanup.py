"""A consumer that ends in any way leaves no group membership behind, on both layers.

Consumers here join groups by hand (``group_add`` in ``connect``, like the chat example),
so only the layer's own record of its channels' groups can clean up after them.
"""

from __future__ import annotations

import asyncio

import pytest
from django.test import override_settings

from switchboard.generic.websocket import AsyncJsonWebsocketConsumer
from switchboard.layers import channel_layers, get_channel_layer
from switchboard.testing import WebsocketCommunicator

GROUPS = ("lobby", "news")


class Joiner(AsyncJsonWebsocketConsumer):
    fail_in: str | None = None
    joined: list[str] = []

    async def connect(self):
        for group in GROUPS:
            await self.channel_layer.group_add(group, self.channel_name)
        self.joined.append(self.channel_name)
        if self.fail_in == "connect":
            raise RuntimeError("connect failed")
        await self.accept()

    async def receive_json(self, content, **kwargs):
        if self.fail_in == "receive":
            raise RuntimeError("receive failed")

    async def boom(self, event):
        if event["target"] == self.channel_name:
            raise RuntimeError("group handler failed")

    async def hello(self, event):
        await self.send_json({"hello": event["n"]})


@pytest.fixture(params=["inmemory", "redis"])
def layer(request):
    if request.param == "redis":
        server = request.getfixturevalue("redis_server")
        config = {
            "BACKEND": "switchboard.layers.redis.RedisChannelLayer",
            "CONFIG": {"hosts": [server.url]},
        }
    else:
        config = {"BACKEND": "switchboard.layers.inmemory.InMemoryChannelLayer"}
    with override_settings(CHANNEL_LAYERS={"default": config}):
        channel_layers.reset()
        yield get_channel_layer()
        channel_layers.reset()


def memberships(layer, group: str) -> int:
    groups = layer._state().groups if hasattr(layer, "_state") else layer.groups
    return len(groups.get(group, {}))


def holds_channel(layer, channel: str) -> bool:
    queues = layer._state().queues if hasattr(layer, "_state") else layer.channels
    return channel in queues


async def end_badly(how: str) -> str:
    """Run one Joiner that fails (or leaves) in ``how``; returns its channel name."""
    app = Joiner.as_asgi(fail_in=how)
    communicator = WebsocketCommunicator(app, "/")
    if how == "connect":
        with pytest.raises(RuntimeError, match="connect failed"):
            await communicator.connect(timeout=3)
        return Joiner.joined[-1]
    assert (await communicator.connect(timeout=3))[0]
    channel = Joiner.joined[-1]
    if how == "receive":
        await communicator.send_json_to({"any": "thing"})
        with pytest.raises(RuntimeError, match="receive failed"):
            await communicator.wait(3)
    elif how == "handler":
        await get_channel_layer().group_send("lobby", {"type": "boom", "target": channel})
        with pytest.raises(RuntimeError, match="group handler failed"):
            await communicator.wait(3)
    elif how == "close":  # a normal close, but disconnect() forgot its group_discard
        await communicator.disconnect(timeout=3)
    return channel


@pytest.mark.parametrize("how", ["connect", "receive", "handler", "close"])
async def test_a_consumer_ending_any_way_leaves_none_of_its_groups(layer, how):
    Joiner.joined = []
    healthy = [WebsocketCommunicator(Joiner.as_asgi(), "/") for _ in range(3)]
    for communicator in healthy:
        assert (await communicator.connect(timeout=3))[0]
    assert memberships(layer, "lobby") == 3

    dead = await end_badly(how)

    for group in GROUPS:
        assert memberships(layer, group) == 3, group
    assert not holds_channel(layer, dead)
    # A later group_send reaches the live members and nothing is queued for the dead one.
    await layer.group_send("lobby", {"type": "hello", "n": 1})
    for communicator in healthy:
        assert await communicator.receive_json_from(timeout=3) == {"hello": 1}
    await asyncio.sleep(0.05)
    assert not holds_channel(layer, dead)

    for communicator in healthy:
        await communicator.disconnect(timeout=3)
    for group in GROUPS:
        assert memberships(layer, group) == 0, group
    await layer.close()


async def test_release_channel_on_the_redis_layer_unsubscribes_emptied_groups(redis_server):
    from switchboard.layers.redis import RedisChannelLayer

    layer = RedisChannelLayer(hosts=[redis_server.url])
    channel = await layer.new_channel()
    other = await layer.new_channel()
    for group in ("a", "b", "c"):
        await layer.group_add(group, channel)
    await layer.group_add("c", other)
    state = layer._state()
    await layer.release_channel(channel)
    assert [memberships(layer, g) for g in ("a", "b", "c")] == [0, 0, 1]
    subscribed = {name for sub in state.subscribers.values() for name in sub.wanted}
    assert subscribed == {b"asgi:g:{c}", state.process_pubsub.encode()}
    await layer.close()
