"""Redis restarts and lost connections: memberships are local, so delivery resumes."""

from __future__ import annotations

import asyncio
import time

from switchboard.layers.redis import RedisChannelLayer

WAIT = 3.0


async def wait_resubscribed(*layers, timeout=10.0):
    """Until every subscriber of every layer has reconnected at least once and is live."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        subs = [
            s for layer in layers for st in layer._states.values() for s in st.subscribers.values()
        ]
        if subs and all(s.reconnects >= 1 and s.connected.is_set() for s in subs):
            return
        await asyncio.sleep(0.02)
    raise AssertionError("subscribers did not reconnect")


async def test_restart_keeps_memberships_and_delivery_resumes(fresh_redis_server, caplog):
    a = RedisChannelLayer(hosts=[fresh_redis_server.url])
    b = RedisChannelLayer(hosts=[fresh_redis_server.url])
    try:
        ca = [await a.new_channel() for _ in range(3)]
        cb = [await b.new_channel() for _ in range(3)]
        for layer, chans in ((a, ca), (b, cb)):
            for ch in chans:
                await layer.group_add("room", ch)
        await a.group_send("room", {"type": "before"})
        for layer, chans in ((a, ca), (b, cb)):
            for ch in chans:
                assert (await asyncio.wait_for(layer.receive(ch), WAIT))["type"] == "before"

        with caplog.at_level("WARNING", logger="switchboard.layers.redis"):
            fresh_redis_server.restart()  # comes back empty, like a crash without persistence
            await wait_resubscribed(a, b)
        assert "Reconnected to Redis" in caplog.text
        assert "re-subscribed" in caplog.text

        await b.group_send("room", {"type": "after"})
        for layer, chans in ((a, ca), (b, cb)):
            for ch in chans:
                assert (await asyncio.wait_for(layer.receive(ch), WAIT))["type"] == "after"
        # Process channels and worker channels work again too.
        await a.send(cb[0], {"type": "direct"})
        assert (await asyncio.wait_for(b.receive(cb[0]), WAIT))["type"] == "direct"
        await a.send("jobs", {"type": "job"})
        assert (await asyncio.wait_for(b.receive("jobs"), WAIT))["type"] == "job"
    finally:
        await a.close()
        await b.close()


async def test_worker_receive_survives_a_crash(fresh_redis_server):
    a = RedisChannelLayer(hosts=[fresh_redis_server.url])
    b = RedisChannelLayer(hosts=[fresh_redis_server.url])
    try:
        reader = asyncio.ensure_future(b.receive("jobs"))
        await asyncio.sleep(0.1)
        fresh_redis_server.kill()
        await asyncio.sleep(0.3)
        assert not reader.done()
        fresh_redis_server.start()
        deadline = time.monotonic() + 10
        while True:
            try:
                await a.send("jobs", {"type": "job"})
                break
            except Exception:
                if time.monotonic() > deadline:
                    raise
                await asyncio.sleep(0.1)
        assert (await asyncio.wait_for(reader, 5))["type"] == "job"
    finally:
        await a.close()
        await b.close()


async def test_group_add_while_redis_is_down_subscribes_on_reconnect(fresh_redis_server):
    a = RedisChannelLayer(hosts=[fresh_redis_server.url])
    b = RedisChannelLayer(hosts=[fresh_redis_server.url])
    try:
        ch = await a.new_channel()
        fresh_redis_server.kill()
        await asyncio.wait_for(a.group_add("late", ch), 10)  # returns; subscription pending
        fresh_redis_server.start()
        await wait_resubscribed(a)
        await b.group_send("late", {"type": "hello"})
        assert (await asyncio.wait_for(a.receive(ch), WAIT))["type"] == "hello"
    finally:
        await a.close()
        await b.close()
