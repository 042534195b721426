"""LocalQueue: the per-channel structure both the in-memory and the Redis layer deliver into."""

from __future__ import annotations

import asyncio

from switchboard.layers.local import LocalQueue


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


async def test_a_waiting_receiver_gets_the_message_without_it_being_stored():
    q = LocalQueue(capacity=2)
    getter = asyncio.ensure_future(q.get(Clock(), 60))
    await asyncio.sleep(0)
    assert q.put(160, {"n": 1}, 100)
    assert await getter == {"n": 1}
    # No message ever waited, so no deque was allocated: idle channels stay small.
    assert q.messages is None and q.idle


async def test_full_queue_refuses_until_expired_messages_make_room():
    q = LocalQueue(capacity=2)
    assert q.put(110, {"n": 1}, 100) and q.put(120, {"n": 2}, 100)
    assert not q.put(130, {"n": 3}, 105)
    assert q.put(130, {"n": 3}, 115)  # the first one has expired by now
    clock = Clock()
    clock.now = 115
    assert [await q.get(clock, 60), await q.get(clock, 60)] == [{"n": 2}, {"n": 3}]


async def test_expired_messages_are_never_returned():
    q = LocalQueue(capacity=5)
    q.put(110, {"n": 1}, 100)
    clock = Clock()
    clock.now = 111
    getter = asyncio.ensure_future(q.get(clock, 60))
    await asyncio.sleep(0)
    assert not getter.done()
    q.put(200, {"n": 2}, 111)
    assert await getter == {"n": 2}


async def test_cancelled_receiver_gives_a_handed_over_message_back_in_front():
    q = LocalQueue(capacity=5)
    clock = Clock()
    getter = asyncio.ensure_future(q.get(clock, 60))
    await asyncio.sleep(0)
    q.put(160, {"n": 1}, 100)  # handed to getter's future...
    q.put(160, {"n": 2}, 100)  # ...so this one is stored
    getter.cancel()  # ...but getter is cancelled before it runs
    await asyncio.gather(getter, return_exceptions=True)
    assert [await q.get(clock, 60), await q.get(clock, 60)] == [{"n": 1}, {"n": 2}]


async def test_cancelled_waiter_leaves_no_trace_and_sweep_releases_the_deque():
    q = LocalQueue(capacity=5)
    getter = asyncio.ensure_future(q.get(Clock(), 60))
    await asyncio.sleep(0)
    getter.cancel()
    await asyncio.gather(getter, return_exceptions=True)
    assert q.idle
    q.put(110, {"n": 1}, 100)
    q.sweep(111)
    assert q.messages is None and q.idle
