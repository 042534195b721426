"""Sentinel: the layer finds the master through Sentinel and follows a failover."""

from __future__ import annotations

import asyncio
import time

from switchboard.layers.redis import RedisChannelLayer

WAIT = 5.0


async def eventually(check, timeout=15.0):
    deadline = time.monotonic() + timeout
    while True:
        try:
            return await check()
        except Exception:
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.1)


async def test_sentinel_failover(redis_sentinel):
    config = {"sentinels": redis_sentinel.sentinels, "service_name": redis_sentinel.service_name}
    a, b = RedisChannelLayer(**config), RedisChannelLayer(**config)
    try:
        ca, cb = await a.new_channel(), await b.new_channel()
        await a.group_add("room", ca)
        await b.group_add("room", cb)
        await a.group_send("room", {"type": "before"})
        for layer, ch in ((a, ca), (b, cb)):
            assert (await asyncio.wait_for(layer.receive(ch), WAIT))["type"] == "before"
        await a.send("jobs", {"type": "job"})
        assert (await asyncio.wait_for(b.receive("jobs"), WAIT))["type"] == "job"

        new_master = await asyncio.to_thread(redis_sentinel.failover)
        assert new_master != redis_sentinel.master.address
        # The old master (now a replica) goes away entirely: nothing may still lean on it.
        redis_sentinel.master.kill()

        async def round_trip():
            await a.group_send("room", {"type": "after"})
            for layer, ch in ((a, ca), (b, cb)):
                assert (await asyncio.wait_for(layer.receive(ch), 0.5))["type"] == "after"

        await eventually(round_trip)
        await eventually(lambda: a.send(cb, {"type": "direct"}))
        # Earlier attempts of round_trip may have left extra "after" messages queued.
        while (await asyncio.wait_for(b.receive(cb), WAIT))["type"] == "after":
            pass
    finally:
        await a.close()
        await b.close()


async def test_sentinel_in_a_channels_redis_host_dict(redis_sentinel):
    host = {"sentinels": redis_sentinel.sentinels, "master_name": redis_sentinel.service_name}
    a, b = RedisChannelLayer(hosts=[host]), RedisChannelLayer(hosts=[host])
    try:
        cb = await b.new_channel()
        await a.send(cb, {"type": "direct"})
        await a.send("jobs", {"type": "job"})
        assert (await asyncio.wait_for(b.receive(cb), WAIT))["type"] == "direct"
        assert (await asyncio.wait_for(b.receive("jobs"), WAIT))["type"] == "job"
        with redis_sentinel.master.client() as r:
            assert r.info("clients")["connected_clients"] >= 2  # it really talks to the master
    finally:
        await a.close()
        await b.close()
