"""The Redis layer from sync code: every async_to_sync call outside a running loop runs on a
loop of its own (Django views, management commands, Celery tasks), so a channel made in one
loop is read in another and group_send runs from many threads at once."""

from __future__ import annotations

import asyncio
import threading
from concurrent.futures import ThreadPoolExecutor

import pytest
from asgiref.sync import async_to_sync

from switchboard.layers.redis import RedisChannelLayer


def in_a_thread(fn, *args):
    with ThreadPoolExecutor(1) as pool:
        return pool.submit(fn, *args).result(timeout=20)


def test_a_channel_made_in_one_loop_is_read_in_another(redis_server):
    layer = RedisChannelLayer(hosts=[redis_server.url])
    other = RedisChannelLayer(hosts=[redis_server.url])
    name = in_a_thread(async_to_sync(layer.new_channel))
    # Sent while no loop of ``layer`` is running: the message waits in Redis.
    async_to_sync(other.send)(name, {"type": "m", "n": 1})
    async_to_sync(layer.send)(name, {"type": "m", "n": 2})
    assert in_a_thread(async_to_sync(layer.receive), name) == {"type": "m", "n": 1}
    assert async_to_sync(layer.receive)(name) == {"type": "m", "n": 2}

    # A receive already waiting in one thread's loop gets what another thread sends.
    got = []
    reader = threading.Thread(target=lambda: got.append(async_to_sync(layer.receive)(name)))
    reader.start()
    reader.join(0.5)
    in_a_thread(async_to_sync(other.send), name, {"type": "m", "n": 3})
    reader.join(10)
    assert got == [{"type": "m", "n": 3}]
    async_to_sync(other.close)()


async def test_group_send_from_many_plain_threads(redis_server):
    """One layer instance, as get_channel_layer() gives: consumers on the server's loop, and
    worker threads sending to their group, each async_to_sync call on a loop of its own."""
    layer = RedisChannelLayer(hosts=[redis_server.url])
    channel = await layer.new_channel()
    await layer.group_add("jobs-done", channel)

    def report(n: int) -> None:
        async_to_sync(layer.group_send)("jobs-done", {"type": "done", "n": n})

    loop = asyncio.get_running_loop()
    with ThreadPoolExecutor(8) as pool:
        await asyncio.gather(*(loop.run_in_executor(pool, report, n) for n in range(40)))
    received = [(await asyncio.wait_for(layer.receive(channel), 5))["n"] for _ in range(40)]
    assert sorted(received) == list(range(40))
    # The threads' loops ended and took their state and connections with them.
    assert list(layer._states) == [loop]
    await layer.close()


def test_messages_queued_when_a_loop_ends_go_to_the_next_loop_in_order(redis_server):
    layer = RedisChannelLayer(hosts=[redis_server.url])
    other = RedisChannelLayer(hosts=[redis_server.url])

    async def take_one_of_three() -> tuple[str, dict]:
        name = await layer.new_channel()
        for n in range(3):
            await other.send(name, {"type": "m", "n": n})
        first = await layer.receive(name)
        await asyncio.sleep(0.2)  # the other two arrive in this loop's queue, unread
        return name, first

    name, first = in_a_thread(async_to_sync(take_one_of_three))
    assert first["n"] == 0
    async_to_sync(other.send)(name, {"type": "m", "n": 3})  # nobody listens: mailbox
    assert [async_to_sync(layer.receive)(name)["n"] for _ in range(3)] == [1, 2, 3]
    async_to_sync(other.close)()


async def test_a_channel_read_by_a_running_loop_is_refused_elsewhere(redis_server):
    layer = RedisChannelLayer(hosts=[redis_server.url])
    name = await layer.new_channel()
    with pytest.raises(ValueError, match="another running event loop"):
        in_a_thread(async_to_sync(layer.receive), name)
    await layer.close()
