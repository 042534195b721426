"""Redis restarts and lost connections: memberships are local, so delivery resumes."""

from __future__ import annotations

import asyncio
import time

import pytest

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


async def test_no_acknowledged_direct_send_is_lost_across_a_crash(fresh_redis_server):
    """Redis killed (SIGKILL) and restarted empty while one process sends steadily to another
    process's consumer channel. A send that raised was not acknowledged and may be lost; one
    that returned must arrive. Between the restart and the receiver's re-subscribe a PUBLISH
    reaches nobody, and such a message waits in the channel's mailbox, which the receiver
    reads once it is subscribed again (channels_redis's pub/sub layer loses these silently)."""
    receiver = RedisChannelLayer(hosts=[fresh_redis_server.url])
    sender = RedisChannelLayer(hosts=[fresh_redis_server.url])
    try:
        channel = await receiver.new_channel()
        acknowledged: list[int] = []
        refused = 0
        stop = asyncio.Event()

        async def send_steadily() -> None:
            nonlocal refused
            n = 0
            while not stop.is_set():
                try:
                    await sender.send(channel, {"type": "tick", "n": n})
                    acknowledged.append(n)
                except Exception:  # noqa: BLE001 - refused while Redis is down: not acknowledged
                    refused += 1
                n += 1
                await asyncio.sleep(0.002)

        received: list[int] = []

        async def read_steadily() -> None:  # a consumer keeps up: nothing is dropped as full
            while True:
                received.append((await receiver.receive(channel))["n"])

        reading = asyncio.ensure_future(read_steadily())
        sending = asyncio.ensure_future(send_steadily())
        await asyncio.sleep(0.3)
        fresh_redis_server.kill()
        await asyncio.sleep(0.3)
        await asyncio.to_thread(fresh_redis_server.start)
        await wait_resubscribed(receiver)
        await asyncio.sleep(0.5)
        stop.set()
        await sending
        deadline = time.monotonic() + WAIT
        while not set(acknowledged) <= set(received) and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        reading.cancel()
        lost = sorted(set(acknowledged) - set(received))
        assert not lost, f"{len(lost)} of {len(acknowledged)} acknowledged sends lost: {lost[:20]}"
        assert len(acknowledged) > 100
    finally:
        await receiver.close()
        await sender.close()


async def test_a_group_message_too_large_for_pub_sub_is_refused_at_send(redis_server):
    """Redis disconnects a pub/sub subscriber whose output buffer passes client-output-buffer-
    limit pubsub (32 MB at once by default; redis.conf): a 40 MB group message cut the
    subscriber, and it and the chat messages behind it were lost with no error to anyone.
    Refused at send instead, with the reason and the fix; the subscriber keeps working."""
    from switchboard.layers.codec import ChannelMessageTooLarge
    from switchboard.layers.redis.core import PubSubMessageTooLarge

    big = 64 * 1024 * 1024
    a = RedisChannelLayer(hosts=[redis_server.url], max_message_size=big, prefix="ceiling")
    b = RedisChannelLayer(hosts=[redis_server.url], max_message_size=big, prefix="ceiling")
    try:
        channel = await a.new_channel()
        await a.group_add("room", channel)
        with pytest.raises(PubSubMessageTooLarge, match="client-output-buffer-limit") as raised:
            await b.group_send("room", {"type": "big", "blob": b"x" * (40 * 1024 * 1024)})
        assert isinstance(raised.value, ChannelMessageTooLarge)  # what callers already catch
        with pytest.raises(PubSubMessageTooLarge):
            await b.send(channel, {"type": "big", "blob": b"x" * (40 * 1024 * 1024)})
        for n in range(3):
            await b.group_send("room", {"type": "chat", "n": n})
        got = [(await asyncio.wait_for(a.receive(channel), WAIT))["n"] for _ in range(3)]
        assert got == [0, 1, 2]
        subscriber = next(iter(next(iter(a._states.values())).subscribers.values()))
        assert subscriber.reconnects == 0  # never cut
        # Worker channels are lists, not pub/sub: max_message_size alone applies there.
        await b.send("uploads", {"type": "big", "blob": b"x" * (12 * 1024 * 1024)})
        assert len((await asyncio.wait_for(a.receive("uploads"), WAIT))["blob"]) == 12 * 1024 * 1024
    finally:
        await a.close()
        await b.close()
