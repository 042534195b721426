"""The Redis presence store with two layer instances (two "processes") on a real redis-server."""

from __future__ import annotations

import asyncio

from switchboard.layers.redis import RedisChannelLayer
from switchboard.layers.stores.presence import presence_group


async def test_meta_update_stall_sweep_and_self_healing(redis_server):
    one = RedisChannelLayer(hosts=[redis_server.url], presence_timeout=0.6)
    two = RedisChannelLayer(hosts=[redis_server.url], presence_timeout=0.6)
    watcher = await two.new_channel()
    await two.group_add(presence_group("t"), watcher)
    first, second = one.presence_store(), two.presence_store()
    try:
        await first.track("t", "r1", "alice", {"status": "online"})
        diff = await asyncio.wait_for(two.receive(watcher), 5)
        assert list(diff["joins"]) == ["alice"] and diff["leaves"] == {}
        await second.track("t", "r2", "bob", {})
        await asyncio.wait_for(two.receive(watcher), 5)
        assert sorted(e.key for e in await second.list("t")) == ["alice", "bob"]

        # Tracking a ref again changes its meta: the old one leaves, the new one joins.
        await first.track("t", "r1", "alice", {"status": "away"})
        diff = await asyncio.wait_for(two.receive(watcher), 5)
        assert diff["leaves"]["alice"]["metas"] == [{"status": "online", "ref": "r1"}]
        assert diff["joins"]["alice"]["metas"] == [{"status": "away", "ref": "r1"}]

        # "one" stalls past its timeout: "two" drops its entry and announces the leave once.
        first._task.cancel()
        await asyncio.sleep(1.0)
        assert [e.key for e in await second.list("t")] == ["bob"]
        diff = await asyncio.wait_for(two.receive(watcher), 5)
        assert list(diff["leaves"]) == ["alice"]
        assert [e.key for e in await second.list("t")] == ["bob"]  # nothing left to sweep
        # "one" wakes up: its heartbeat finds its key gone and writes its entries again.
        await first.beat()
        diff = await asyncio.wait_for(two.receive(watcher), 5)
        assert list(diff["joins"]) == ["alice"]
        assert sorted(e.key for e in await second.list("t")) == ["alice", "bob"]

        await first.untrack("t", "r1")
        diff = await asyncio.wait_for(two.receive(watcher), 5)
        assert list(diff["leaves"]) == ["alice"]
        assert [e.key for e in await second.list("t")] == ["bob"]
    finally:
        await first.close()
        await second.close()
        await one.close()
        await two.close()
