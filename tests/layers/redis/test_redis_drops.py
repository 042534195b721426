"""The Redis layer counts and logs the messages its receivers drop: full local queues (the
remote sender's PUBLISH already succeeded) and messages that expired unread."""

from __future__ import annotations

import asyncio
import logging

from switchboard.layers.redis import RedisChannelLayer


async def test_receiver_side_drops_are_counted_and_logged(redis_server, caplog):
    caplog.set_level(logging.WARNING, logger="switchboard.layers")
    sender = RedisChannelLayer(hosts=[redis_server.url], expiry=1)
    receiver = RedisChannelLayer(hosts=[redis_server.url], capacity=2, expiry=1)
    try:
        channel = await receiver.new_channel()
        member = await receiver.new_channel()
        await receiver.group_add("g", member)
        for i in range(5):
            await sender.send(channel, {"type": "x", "i": i})
        for i in range(4):
            await sender.group_send("g", {"type": "x", "i": i})
        await receiver.send("slow-jobs", {"type": "old"})
        deadline = asyncio.get_running_loop().time() + 3
        while receiver.drops.totals["full"] < 5 and asyncio.get_running_loop().time() < deadline:
            await asyncio.sleep(0.02)
        assert receiver.drops.totals == {"full": 5, "expired": 0}
        for _ in range(2):
            await asyncio.wait_for(receiver.receive(member), 3)
        await asyncio.sleep(1.1)
        await receiver.send("slow-jobs", {"type": "new"})
        assert (await asyncio.wait_for(receiver.receive("slow-jobs"), 3))["type"] == "new"
        await sender.send(channel, {"type": "x", "i": "fresh"})
        await asyncio.sleep(0.1)
        assert (await asyncio.wait_for(receiver.receive(channel), 3))["i"] == "fresh"
        # Two expired unread on the process channel, one on the worker list.
        assert receiver.drops.totals == {"full": 5, "expired": 3}
        receiver.drops.flush()
        logs = [r.getMessage() for r in caplog.records if "dropped" in r.getMessage()]
        assert logs and logs[0].startswith("Channel layer dropped 1 message(s) for full")
        assert sum(int(m.split()[3]) for m in logs) == 5  # every full drop reported
    finally:
        await sender.close()
        await receiver.close()
