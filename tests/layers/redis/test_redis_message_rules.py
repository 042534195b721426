"""The Redis layer checks every message at send time on every path: to its own process's
channels (which never touch Redis), to other processes, to worker lists and to groups."""

from __future__ import annotations

import asyncio
import datetime

import pytest

from switchboard.layers import ChannelMessageTooLarge, UnserializableMessage
from switchboard.layers.redis import RedisChannelLayer

UNCARRIABLE = {
    "datetime": datetime.datetime(2024, 1, 1),
    "set": {1, 2},
    "int key": {1: "one"},  # packs, but the receiving unpacker refuses it
    "huge int": 2**70,
}


@pytest.fixture
async def layers(redis_server):
    made = [RedisChannelLayer(hosts=[redis_server.url]) for _ in range(2)]
    yield made
    for layer in made:
        await layer.close()


@pytest.mark.parametrize("value", UNCARRIABLE.values(), ids=UNCARRIABLE.keys())
async def test_uncarriable_messages_fail_at_send_on_every_path(layers, value):
    here, there = layers
    own, remote = await here.new_channel(), await there.new_channel()
    await here.group_add("g", own)
    await there.group_add("g", remote)
    message = {"type": "m", "value": value}
    for call in (
        here.send(own, message),
        here.send(remote, message),
        here.send("jobs", message),
        here.group_send("g", message),
    ):
        with pytest.raises(UnserializableMessage):
            await call
    # Nothing reached anyone: the next good message is the first each receiver sees.
    await here.group_send("g", {"type": "m", "value": "ok"})
    for layer, channel in ((here, own), (there, remote)):
        got = await asyncio.wait_for(layer.receive(channel), 3)
        assert got == {"type": "m", "value": "ok"}


async def test_local_delivery_hands_over_what_a_remote_process_would_get(layers):
    here, _ = layers
    channel = await here.new_channel()
    message = {"type": "m", "pair": (1, 2), "nested": {"k": [1]}}
    await here.send(channel, message)
    message["nested"]["k"].append("changed by the sender")
    assert await asyncio.wait_for(here.receive(channel), 3) == {
        "type": "m",
        "pair": [1, 2],
        "nested": {"k": [1]},
    }


async def test_an_oversized_group_send_is_refused_and_subscribers_stay_connected(layers):
    here, there = layers
    member = await there.new_channel()
    await there.group_add("big", member)
    size = here.max_message_size + 1
    with pytest.raises(ChannelMessageTooLarge) as caught:
        await here.group_send("big", {"type": "m", "blob": b"x" * size})
    assert caught.value.limit == 2 * 1024 * 1024
    for call in (
        here.send(member, {"type": "m", "blob": b"x" * size}),
        here.send("jobs", {"type": "m", "blob": b"x" * size}),
    ):
        with pytest.raises(ChannelMessageTooLarge):
            await call
    await here.group_send("big", {"type": "m", "n": 1})
    assert await asyncio.wait_for(there.receive(member), 3) == {"type": "m", "n": 1}
    state = there._state()
    assert all(sub.reconnects == 0 for sub in state.subscribers.values())


async def test_max_message_size_is_configurable(redis_server):
    layer = RedisChannelLayer(hosts=[redis_server.url], max_message_size=100)
    try:
        channel = await layer.new_channel()
        await layer.send(channel, {"type": "m", "text": "x" * 50})
        with pytest.raises(ChannelMessageTooLarge):
            await layer.send(channel, {"type": "m", "text": "x" * 100})
    finally:
        await layer.close()
