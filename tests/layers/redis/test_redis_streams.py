"""At-least-once worker channels (Redis Streams): ack, redelivery after a reader dies."""

from __future__ import annotations

import asyncio

import pytest

from switchboard.exceptions import ChannelFull
from switchboard.layers.redis import RedisChannelLayer

WAIT = 3.0


def durable(server, **config) -> RedisChannelLayer:
    config.setdefault("redelivery_timeout", 0.3)
    return RedisChannelLayer(hosts=[server.url], at_least_once_channels=["jobs.*"], **config)


async def test_unacked_message_is_redelivered_after_the_reader_dies(redis_server):
    sender, dying, survivor = durable(redis_server), durable(redis_server), durable(redis_server)
    late = durable(redis_server)
    try:
        await sender.send("jobs.email", {"type": "job", "to": "a@example.com"})
        got = await asyncio.wait_for(dying.receive("jobs.email"), WAIT)
        assert got["to"] == "a@example.com"
        await dying.close()  # "dies" without acknowledging
        again = await asyncio.wait_for(survivor.receive("jobs.email"), WAIT)
        assert again == got
        await survivor.ack("jobs.email", again)
        with pytest.raises(asyncio.TimeoutError):
            await asyncio.wait_for(late.receive("jobs.email"), 0.8)
    finally:
        for layer in (sender, survivor, late):
            await layer.close()


async def test_acked_message_is_not_redelivered_and_stream_is_trimmed(redis_server):
    sender, reader, other = durable(redis_server), durable(redis_server), durable(redis_server)
    try:
        for i in range(3):
            await sender.send("jobs.x", {"type": "job", "i": i})
        seen = []
        for _ in range(3):
            msg = await asyncio.wait_for(reader.receive("jobs.x"), WAIT)
            seen.append(msg["i"])
            await reader.ack("jobs.x", msg)
        assert seen == [0, 1, 2]
        with pytest.raises(asyncio.TimeoutError):
            await asyncio.wait_for(other.receive("jobs.x"), 0.8)
        with redis_server.client() as r:
            (key,) = r.keys("asgi:s:*")
            assert r.xlen(key) == 0
    finally:
        for layer in (sender, reader, other):
            await layer.close()


async def test_next_receive_acknowledges_the_previous_message(redis_server):
    sender, reader, other = durable(redis_server), durable(redis_server), durable(redis_server)
    try:
        await sender.send("jobs.y", {"type": "job", "i": 1})
        await sender.send("jobs.y", {"type": "job", "i": 2})
        assert (await asyncio.wait_for(reader.receive("jobs.y"), WAIT))["i"] == 1
        assert (await asyncio.wait_for(reader.receive("jobs.y"), WAIT))["i"] == 2  # acks #1
        await reader.close()  # #2 never acknowledged
        assert (await asyncio.wait_for(other.receive("jobs.y"), WAIT))["i"] == 2
    finally:
        for layer in (sender, other):
            await layer.close()


async def test_stream_capacity(redis_server):
    layer = durable(redis_server, capacity=2)
    try:
        await layer.send("jobs.z", {"type": "a"})
        await layer.send("jobs.z", {"type": "b"})
        with pytest.raises(ChannelFull):
            await layer.send("jobs.z", {"type": "c"})
        msg = await asyncio.wait_for(layer.receive("jobs.z"), WAIT)
        await layer.ack("jobs.z", msg)
        await layer.send("jobs.z", {"type": "c"})
    finally:
        await layer.close()
