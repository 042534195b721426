"""RedisChannelLayer against a real redis-server: channels, groups, capacity, expiry,
encryption, concurrency, flush, configuration."""

from __future__ import annotations

import asyncio
import threading
import time

import pytest
import redis

from switchboard.exceptions import ChannelFull
from switchboard.layers.redis import RedisChannelLayer

WAIT = 3.0


@pytest.fixture
async def make_layer(redis_server):
    layers: list[RedisChannelLayer] = []

    def make(**config) -> RedisChannelLayer:
        config.setdefault("hosts", [redis_server.url])
        layer = RedisChannelLayer(**config)
        layers.append(layer)
        return layer

    yield make
    for layer in layers:
        await layer.close()


async def receive(layer, channel, timeout=WAIT):
    return await asyncio.wait_for(layer.receive(channel), timeout)


async def nothing_on(layer, channel, timeout=0.2) -> bool:
    try:
        await asyncio.wait_for(layer.receive(channel), timeout)
    except TimeoutError:
        return True
    return False


async def test_worker_channel_point_to_point(make_layer):
    sender, reader = make_layer(), make_layer()
    await sender.send("jobs", {"type": "job", "n": 1, "blob": b"\x00\xff"})
    await sender.send("jobs", {"type": "job", "n": 2})
    assert await receive(reader, "jobs") == {"type": "job", "n": 1, "blob": b"\x00\xff"}
    assert (await receive(reader, "jobs"))["n"] == 2


async def test_worker_channel_one_reader_per_message(make_layer):
    sender, r1, r2 = make_layer(), make_layer(), make_layer()
    readers = [asyncio.ensure_future(r.receive("work")) for r in (r1, r2)]
    await asyncio.sleep(0.05)
    await sender.send("work", {"type": "a"})
    done, pending = await asyncio.wait(readers, timeout=WAIT, return_when=asyncio.FIRST_COMPLETED)
    await asyncio.sleep(0.2)
    assert len(done) == 1 and not any(t.done() for t in pending)
    for t in pending:
        t.cancel()


async def test_process_channel_between_two_layers(make_layer):
    a, b = make_layer(), make_layer()
    ca, cb = await a.new_channel(), await b.new_channel("websocket")
    assert cb.startswith("websocket.") and "!" in cb
    for i in range(5):
        await a.send(cb, {"type": "to.b", "i": i})
    await b.send(ca, {"type": "to.a"})
    assert [(await receive(b, cb))["i"] for _ in range(5)] == list(range(5))
    assert (await receive(a, ca))["type"] == "to.a"


async def test_receive_on_another_process_channel_is_refused(make_layer):
    a, b = make_layer(), make_layer()
    cb = await b.new_channel()
    with pytest.raises(ValueError, match="another process"):
        await a.receive(cb)


async def test_group_send_reaches_members_in_every_layer(make_layer):
    a, b = make_layer(), make_layer()
    members_a = [await a.new_channel() for _ in range(3)]
    members_b = [await b.new_channel() for _ in range(2)]
    for ch in members_a:
        await a.group_add("room", ch)
    for ch in members_b:
        await b.group_add("room", ch)
    await a.group_send("room", {"type": "chat", "text": "hi"})
    await b.group_send("room", {"type": "chat", "text": "yo"})
    for layer, members in ((a, members_a), (b, members_b)):
        for ch in members:
            assert (await receive(layer, ch))["text"] == "hi"
            assert (await receive(layer, ch))["text"] == "yo"


async def test_group_discard_and_empty_group(make_layer):
    a, b = make_layer(), make_layer()
    c1, c2 = await a.new_channel(), await a.new_channel()
    await a.group_add("g", c1)
    await a.group_add("g", c2)
    await a.group_discard("g", c1)
    await b.group_send("g", {"type": "m"})
    assert (await receive(a, c2))["type"] == "m"
    assert await nothing_on(a, c1)
    await a.group_discard("g", c2)  # last member: the process unsubscribes
    await a.group_discard("g", c2)  # twice is harmless
    await b.group_send("g", {"type": "m2"})
    assert await nothing_on(a, c2)


async def test_group_with_a_worker_channel_member(make_layer):
    a = make_layer()
    await a.group_add("g", "tasks")
    await a.group_send("g", {"type": "task"})
    assert (await receive(a, "tasks"))["type"] == "task"


async def test_group_expiry(make_layer):
    a, b = make_layer(group_expiry=1), make_layer()
    ch = await a.new_channel()
    await a.group_add("g", ch)
    await asyncio.sleep(1.1)
    await b.group_send("g", {"type": "late"})
    assert await nothing_on(a, ch, 0.3)
    # The expired group is no longer subscribed to; joining again works.
    subs = list(a._states[asyncio.get_running_loop()].subscribers.values())
    assert all(b"asgi:g:g" not in sub.wanted for sub in subs)
    await a.group_add("g", ch)
    await b.group_send("g", {"type": "again"})
    assert (await receive(a, ch))["type"] == "again"


async def test_concurrent_group_adds_then_send(make_layer):
    a, b = make_layer(), make_layer()
    chans = await asyncio.gather(*(a.new_channel() for _ in range(20)))
    await asyncio.gather(*(a.group_add("burst", ch) for ch in chans))
    await b.group_send("burst", {"type": "x"})
    for ch in chans:
        assert (await receive(a, ch))["type"] == "x"


async def test_capacity_is_per_channel(make_layer):
    layer = make_layer(capacity=2)
    channels = [await layer.new_channel() for _ in range(150)]
    for ch in channels:  # 150 consumers in one process, each with its own capacity
        await layer.send(ch, {"type": "a"})
        await layer.send(ch, {"type": "b"})
    with pytest.raises(ChannelFull):
        await layer.send(channels[0], {"type": "c"})
    assert (await receive(layer, channels[-1]))["type"] == "a"
    await layer.send(channels[-1], {"type": "c"})


async def test_capacity_of_worker_channel_and_overrides(make_layer):
    layer = make_layer(capacity=3, channel_capacity={"small.*": 1})
    for _ in range(3):
        await layer.send("big", {"type": "x"})
    with pytest.raises(ChannelFull):
        await layer.send("big", {"type": "x"})
    await layer.send("small.one", {"type": "x"})
    with pytest.raises(ChannelFull):
        await layer.send("small.one", {"type": "x"})


async def test_remote_sends_beyond_capacity_are_dropped_at_the_receiver(make_layer):
    a, b = make_layer(), make_layer(capacity=2)
    cb = await b.new_channel()
    for i in range(5):
        await a.send(cb, {"type": "x", "i": i})
    await asyncio.sleep(0.2)
    assert [(await receive(b, cb))["i"] for _ in range(2)] == [0, 1]
    assert await nothing_on(b, cb)


async def test_expiry(make_layer):
    layer = make_layer(expiry=1)
    ch = await layer.new_channel()
    await layer.send("slow", {"type": "old"})
    await layer.send(ch, {"type": "old"})
    await asyncio.sleep(1.1)
    await layer.send("slow", {"type": "new"})
    assert (await receive(layer, "slow"))["type"] == "new"
    assert await nothing_on(layer, ch)


async def test_cancelled_receive_loses_nothing(make_layer):
    a, b = make_layer(), make_layer()
    cb = await b.new_channel()
    waiter = asyncio.ensure_future(b.receive(cb))
    await asyncio.sleep(0.05)
    waiter.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiter
    await a.send(cb, {"type": "after"})
    assert (await receive(b, cb))["type"] == "after"


async def test_cancelled_worker_receive_loses_nothing(make_layer):
    a, b = make_layer(), make_layer()
    for delay in (0.0, 0.05, 0.3):
        waiter = asyncio.ensure_future(b.receive("queue"))
        await asyncio.sleep(delay)
        await a.send("queue", {"type": "m", "delay": delay})
        waiter.cancel()
        try:
            got = await waiter  # it may have been delivered just before the cancel
        except asyncio.CancelledError:
            got = await receive(b, "queue")  # then it is still there for the next reader
        assert got["delay"] == delay
    assert await nothing_on(b, "queue")


async def test_encryption_round_trip(make_layer, redis_server):
    a = make_layer(symmetric_encryption_keys=["s3cret"])
    b = make_layer(symmetric_encryption_keys=["new-key", "s3cret"])  # rotation: old key decrypts
    await a.send("secret.jobs", {"type": "x", "card": "4111-1111"})
    with redis_server.client() as r:
        (key,) = r.keys("asgi:c:*")
        raw = r.lindex(key, 0)
    assert b"4111" not in raw and b"card" not in raw
    assert (await receive(b, "secret.jobs"))["card"] == "4111-1111"
    cb = await b.new_channel()
    await b.group_add("g", cb)
    await a.group_send("g", {"type": "g", "v": 1})
    assert (await receive(b, cb))["v"] == 1


async def test_wrong_key_cannot_read(make_layer, caplog):
    a, b = (
        make_layer(symmetric_encryption_keys=["one"]),
        make_layer(symmetric_encryption_keys=["two"]),
    )
    cb = await b.new_channel()
    await b.group_add("g", cb)
    with caplog.at_level("ERROR", logger="switchboard.layers.redis"):
        await a.group_send("g", {"type": "x"})
        assert await nothing_on(b, cb, 0.3)
    assert "undeliverable" in caplog.text


async def test_thousand_concurrent_sends(make_layer):
    a, b = make_layer(capacity=2000), make_layer(capacity=2000)
    cb = await b.new_channel()
    await asyncio.gather(*(a.send(cb, {"type": "x", "i": i}) for i in range(1000)))
    await asyncio.gather(*(a.send("bulk", {"type": "x", "i": i}) for i in range(1000)))
    got = {(await receive(b, cb))["i"] for _ in range(1000)}
    assert got == set(range(1000))
    bulk = {(await receive(b, "bulk"))["i"] for _ in range(1000)}
    assert bulk == set(range(1000))


async def test_flush(make_layer, redis_server):
    layer = make_layer()
    ch = await layer.new_channel()
    await layer.group_add("g", ch)
    await layer.send("pending", {"type": "x"})
    await layer.send(ch, {"type": "x"})
    await layer.flush()
    with redis_server.client() as r:
        assert r.keys("asgi:*") == []
    assert await nothing_on(layer, ch)
    await layer.group_send("g", {"type": "after-flush"})
    assert await nothing_on(layer, ch)


async def test_invalid_input_is_refused(make_layer):
    layer = make_layer()
    with pytest.raises(TypeError):
        await layer.send("bad name!!", {"type": "x"})
    with pytest.raises(TypeError):
        await layer.send("ok", {"type": ["not", "a", "str"]})
    with pytest.raises(TypeError):
        await layer.group_add("bad group!", "ok")
    with pytest.raises(TypeError):
        await layer.group_send("g", ["not", "a", "dict"])


def test_config_forms(redis_server):
    url = redis_server.url
    host, port = redis_server.address
    for hosts in ([url], [(host, port)], [{"address": url}], [{"address": (host, port)}]):
        RedisChannelLayer(hosts=hosts)
    for bad in ("redis://x", ["not-a-url"], [("h",)], [42]):
        with pytest.raises(ValueError):
            RedisChannelLayer(hosts=bad)
    with pytest.raises(ValueError):
        RedisChannelLayer(sentinels=[("127.0.0.1", 1)])  # no service_name
    with pytest.raises(TypeError):
        RedisChannelLayer(hosts=[url], no_such_option=1)


def test_configured_through_channel_layers(redis_server):
    from switchboard.layers.registry import ChannelLayerManager

    config = {
        "default": {
            "BACKEND": "switchboard.layers.redis.RedisChannelLayer",
            "CONFIG": {"hosts": [redis_server.url], "prefix": "app", "capacity": 7},
        }
    }
    layer = ChannelLayerManager(lambda: config)["default"]
    assert isinstance(layer, RedisChannelLayer) and layer.capacity == 7


def test_used_from_several_event_loops(redis_server):
    layer = RedisChannelLayer(hosts=[redis_server.url])
    results = []

    async def roundtrip(n):
        await layer.send("loops", {"type": "x", "n": n})
        results.append((await asyncio.wait_for(layer.receive("loops"), WAIT))["n"])
        await layer.close()

    asyncio.run(roundtrip(1))
    thread = threading.Thread(target=lambda: asyncio.run(roundtrip(2)))
    thread.start()
    thread.join(10)
    asyncio.run(roundtrip(3))
    assert sorted(results) == [1, 2, 3]


def test_no_redis_side_group_membership(redis_server):
    async def main():
        layer = RedisChannelLayer(hosts=[redis_server.url])
        await layer.group_add("g", await layer.new_channel())
        await layer.close()

    asyncio.run(main())
    with redis_server.client() as r:
        assert r.keys("*") == []


def test_redis_down_gives_a_clear_error():
    from tests.support.redis_servers import free_port

    async def main():
        layer = RedisChannelLayer(hosts=[("127.0.0.1", free_port())])
        try:
            with pytest.raises((redis.ConnectionError, OSError)):
                await asyncio.wait_for(layer.send("x", {"type": "x"}), 20)
        finally:
            await layer.close()

    asyncio.run(main())


async def test_group_send_from_sync_code_is_not_lost(redis_server):
    """async_to_sync ends its loop as soon as group_send returns: the PUBLISH must be out."""
    from asgiref.sync import async_to_sync

    receiver = RedisChannelLayer(hosts=[redis_server.url])
    channel = await receiver.new_channel()
    await receiver.group_add("sync-senders", channel)

    def send_from_a_thread() -> None:
        sender = RedisChannelLayer(hosts=[redis_server.url])
        for i in range(20):
            async_to_sync(sender.group_send)("sync-senders", {"type": "m", "i": i})

    thread = threading.Thread(target=send_from_a_thread)
    thread.start()
    received = [await asyncio.wait_for(receiver.receive(channel), 5) for _ in range(20)]
    thread.join()
    assert [m["i"] for m in received] == list(range(20))
    await receiver.close()


async def test_large_local_fan_out_is_sliced_but_keeps_every_members_order(make_layer):
    from switchboard.layers.fanout import FANOUT_SLICE

    layer = make_layer()
    members = [await layer.new_channel() for _ in range(FANOUT_SLICE * 4 + 7)]
    for channel in members:
        await layer.group_add("big", channel)
    await layer.group_send("big", {"type": "m", "n": 1})
    await layer.send(members[-1], {"type": "m", "n": "direct"})  # queued behind the fan-out
    await layer.group_send("big", {"type": "m", "n": 2})
    # The sender got control back before the last member had its first message.
    assert layer._state().backlog or not layer._state().queues[members[-1]].messages
    for channel in members[:-1]:
        got = [await asyncio.wait_for(layer.receive(channel), WAIT) for _ in range(2)]
        assert [m["n"] for m in got] == [1, 2]
    got = [await asyncio.wait_for(layer.receive(members[-1]), WAIT) for _ in range(3)]
    assert [m["n"] for m in got] == [1, "direct", 2]


async def test_a_send_after_group_send_never_overtakes_the_group_message(make_layer):
    # The group message reaches this process's members over the pub/sub connection, while
    # group_send's PUBLISH is answered on another: Redis may let the reply be read first.
    # group_send returns only once the local copy is in, as if both went through one mailbox
    # (channels_redis puts both in the channel's own queue, so Channels code relies on it).
    layer = make_layer()
    member = await layer.new_channel()
    await layer.group_add("pair", member)
    for i in range(300):
        await layer.group_send("pair", {"type": "m", "n": i})
        await layer.send(member, {"type": "m", "n": f"direct {i}"})
        got = [await asyncio.wait_for(layer.receive(member), WAIT) for _ in range(2)]
        assert [m["n"] for m in got] == [i, f"direct {i}"]
    assert not layer._state().echoes  # every wait was answered and forgotten
    await layer.close()


async def test_group_sends_in_flight_together_do_not_wait_for_their_echoes(make_layer):
    # PUBLISHes leave on several connections, so Redis may apply two of one process's group
    # sends in either order; the process's own copy of each must be matched wherever it is
    # in line, or every later send waits out the echo timeout (1 s) as if it were lost.
    layer = make_layer()
    channel = await layer.new_channel()
    await layer.group_add("room", channel)
    for _round in range(3):
        started = time.monotonic()
        sends = []
        for n in range(40):  # spread out a little: each goes in a pipeline of its own
            sends.append(asyncio.ensure_future(layer.group_send("room", {"type": "m", "n": n})))
            await asyncio.sleep(0.0003)
        await asyncio.gather(*sends)
        assert time.monotonic() - started < 0.5
        received = [(await layer.receive(channel))["n"] for _ in range(40)]
        assert sorted(received) == list(range(40))


async def test_a_group_add_for_another_process_s_channel_outlives_its_maker(make_layer):
    # A Channels 1 worker adds an interface server's reply channel to a group, then restarts:
    # the membership is the channel's owner's, so the group still reaches the channel.
    owner, maker, sender = make_layer(), make_layer(), make_layer()
    channel = await owner.new_channel()
    await maker.group_add("room", channel)
    await maker.close()
    await sender.group_send("room", {"type": "m", "text": "still here"})
    assert (await receive(owner, channel))["text"] == "still here"
    # A discard made elsewhere is applied by the owner too.
    await sender.group_discard("room", channel)
    await sender.group_send("room", {"type": "m", "text": "gone"})
    assert await nothing_on(owner, channel)


async def test_a_group_add_whose_owner_does_not_answer_is_kept_by_its_maker(make_layer):
    owner, maker = make_layer(), make_layer()
    channel = await owner.new_channel()
    await owner.close()  # nobody answers for the channel now
    started = time.monotonic()
    await maker.group_add("room", channel)
    assert time.monotonic() - started < 1.5
    await maker.group_send("room", {"type": "m", "text": "kept"})
    # The maker forwards it; the owner's next receive (a restarted loop adopts the channel)
    # finds it in the channel's mailbox.
    assert (await receive(owner, channel))["text"] == "kept"
