"""A 3-master Redis Cluster: sharded pub/sub groups, process channels, worker channels."""

from __future__ import annotations

import asyncio

from switchboard.layers.redis import RedisChannelLayer

WAIT = 5.0


async def test_cluster_groups_process_and_worker_channels(redis_cluster):
    a = RedisChannelLayer(hosts=redis_cluster.urls, cluster=True)
    host, port = redis_cluster.startup_nodes[1]
    b = RedisChannelLayer(hosts=[f"redis+cluster://{host}:{port}/0"])
    try:
        ca, cb = await a.new_channel(), await b.new_channel()
        await a.send(cb, {"type": "direct"})
        assert (await asyncio.wait_for(b.receive(cb), WAIT))["type"] == "direct"
        groups = [f"room{i}" for i in range(8)]  # spread over the three masters' slots
        for g in groups:
            await a.group_add(g, ca)
            await b.group_add(g, cb)
        for g in groups:
            await b.group_send(g, {"type": "chat", "g": g})
        for layer, ch in ((a, ca), (b, cb)):
            got = [(await asyncio.wait_for(layer.receive(ch), WAIT))["g"] for _ in groups]
            assert sorted(got) == sorted(groups)
        # Sharded pub/sub was used on more than one node.
        nodes = {key for key in a._states[asyncio.get_running_loop()].subscribers}
        assert len(nodes) >= 2
        for name in ("jobs", "jobs.email", "other-queue"):
            await a.send(name, {"type": "w", "name": name})
            assert (await asyncio.wait_for(b.receive(name), WAIT))["name"] == name
        await a.flush()
    finally:
        await a.close()
        await b.close()


async def test_cluster_at_least_once(redis_cluster):
    config = {"hosts": redis_cluster.urls, "cluster": True, "at_least_once_channels": ["tasks"]}
    a = RedisChannelLayer(redelivery_timeout=0.3, **config)
    b = RedisChannelLayer(redelivery_timeout=0.3, **config)
    try:
        await a.send("tasks", {"type": "t"})
        await asyncio.wait_for(a.receive("tasks"), WAIT)
        await a.close()
        msg = await asyncio.wait_for(b.receive("tasks"), WAIT)
        assert msg == {"type": "t"}
        await b.ack("tasks", msg)
    finally:
        await b.close()
