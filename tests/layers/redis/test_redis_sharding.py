"""Several independent Redis servers: one canonical key per channel/group for send and receive."""

from __future__ import annotations

import asyncio
from collections import Counter

from switchboard.layers.redis import RedisChannelLayer
from switchboard.layers.redis.sharding import channel_routing_key, jump_hash, shard_index

WAIT = 3.0


def test_jump_hash_is_stable_and_moves_little():
    keys = [f"k{i}" for i in range(2000)]
    three = [shard_index(k, 3) for k in keys]
    four = [shard_index(k, 4) for k in keys]
    assert Counter(three).keys() == {0, 1, 2}
    moved = sum(1 for x, y in zip(three, four, strict=True) if x != y)
    assert moved < len(keys) * 0.35  # about 1/4 move, never a reshuffle
    assert all(0 <= jump_hash(i, 7) < 7 for i in range(1000))
    assert channel_routing_key("specific.abc!x1") == channel_routing_key("specific.abc!y2")


async def test_direct_sends_to_consumers_on_several_shards(redis_shards):
    hosts = [s.url for s in redis_shards]
    a = RedisChannelLayer(hosts=hosts)
    b = RedisChannelLayer(hosts=list(reversed(hosts))[::-1])
    try:
        consumers = [await b.new_channel() for _ in range(20)]
        for i, ch in enumerate(consumers):
            await a.send(ch, {"type": "direct", "i": i})
        for i, ch in enumerate(consumers):
            assert (await asyncio.wait_for(b.receive(ch), WAIT))["i"] == i
    finally:
        await a.close()
        await b.close()


async def test_many_processes_many_shards(redis_shards):
    hosts = [s.url for s in redis_shards]
    layers = [RedisChannelLayer(hosts=hosts) for _ in range(4)]
    try:
        chans = [[await layer.new_channel() for _ in range(5)] for layer in layers]
        # Process channels land on more than one shard.
        shards = {layer._state().shard_for(layer._state().pid) for layer in layers}
        for layer, mine in zip(layers, chans, strict=True):
            for ch in mine:
                for g in ("g1", "g2", "g3", "g4", "g5"):
                    await layer.group_add(g, ch)
        for g in ("g1", "g2", "g3", "g4", "g5"):
            await layers[0].group_send(g, {"type": g})
        for layer, mine in zip(layers, chans, strict=True):
            for ch in mine:
                got = [(await asyncio.wait_for(layer.receive(ch), WAIT))["type"] for _ in range(5)]
                assert sorted(got) == ["g1", "g2", "g3", "g4", "g5"]
        # Every sender finds every receiver's channel.
        for sender in layers:
            for receiver, mine in zip(layers, chans, strict=True):
                await sender.send(mine[0], {"type": "p2p"})
                assert (await asyncio.wait_for(receiver.receive(mine[0]), WAIT))["type"] == "p2p"
        # Worker channels spread over the shards.
        for i in range(30):
            await layers[0].send(f"work{i}", {"type": "w", "i": i})
        used = 0
        for server in redis_shards:
            with server.client() as r:
                used += bool(r.keys("asgi:c:*"))
        assert used >= 2 or len(shards) >= 2
        for i in range(30):
            assert (await asyncio.wait_for(layers[1].receive(f"work{i}"), WAIT))["i"] == i
    finally:
        for layer in layers:
            await layer.close()
