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
