"""The Redis layer's monitoring counters against a real redis-server: sends, group fan-out per
process, local queue depth, and pub/sub reconnects after a restart."""

from __future__ import annotations

import asyncio

from switchboard.layers.redis import RedisChannelLayer
from tests.layers.redis.test_redis_resilience import wait_resubscribed

WAIT = 3.0


async def _until(check, timeout: float = WAIT) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not check():
        assert asyncio.get_running_loop().time() < deadline, "timed out"
        await asyncio.sleep(0.02)


async def test_sends_group_fanout_and_queue_depth(redis_server):
    a = RedisChannelLayer(hosts=[redis_server.url])
    b = RedisChannelLayer(hosts=[redis_server.url])
    try:
        ca = await a.new_channel()
        cb = [await b.new_channel() for _ in range(2)]
        await a.group_add("room", ca)
        for channel in cb:
            await b.group_add("room", channel)
        await a.group_send("room", {"type": "g"})
        # One PUBLISH; each process delivers to its own members.
        await _until(lambda: b.stats.fanout_deliveries == 2 and a.stats.fanout_deliveries == 1)
        assert (a.stats.group_sends, b.stats.group_sends) == (1, 0)
        assert (a.queued_messages(), b.queued_messages()) == (1, 2)

        await a.send(cb[0], {"type": "direct"})  # another process's channel: a PUBLISH
        await a.send(ca, {"type": "own"})  # this process's channel: never leaves it
        await a.send("jobs", {"type": "job"})  # a worker channel: a Redis list
        assert a.stats.sends == 3 and b.stats.sends == 0
        await _until(lambda: b.queued_messages() == 3)
        # A process channel's message is no group fan-out.
        assert b.stats.fanout_deliveries == 2
        assert a.queued_messages() == 2
        for channel in cb:
            await asyncio.wait_for(b.receive(channel), WAIT)
        assert b.queued_messages() == 1
        assert a.stats.reconnects == b.stats.reconnects == 0
    finally:
        await a.close()
        await b.close()


async def test_pubsub_reconnects_are_counted(fresh_redis_server):
    layer = RedisChannelLayer(hosts=[fresh_redis_server.url])
    try:
        channel = await layer.new_channel()
        await layer.group_add("room", channel)
        assert layer.stats.reconnects == 0
        fresh_redis_server.restart()
        await wait_resubscribed(layer)
        assert layer.stats.reconnects == 1
        await layer.group_send("room", {"type": "after"})
        assert (await asyncio.wait_for(layer.receive(channel), WAIT))["type"] == "after"
    finally:
        await layer.close()
