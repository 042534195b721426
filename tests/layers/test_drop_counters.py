"""Messages dropped where no sender can be told are counted and the counts logged,
rate-limited, on the in-memory layer (the Redis layer's are in redis/test_redis_drops.py)."""

from __future__ import annotations

import asyncio
import logging

from switchboard.layers.inmemory import InMemoryChannelLayer


def drop_logs(caplog) -> list[str]:
    return [r.getMessage() for r in caplog.records if "dropped" in r.getMessage()]


async def test_full_members_and_expired_messages_are_counted_and_logged(caplog):
    caplog.set_level(logging.WARNING, logger="switchboard.layers")
    layer = InMemoryChannelLayer(capacity=1, expiry=0.05)
    layer.drops.interval = 0.3
    await layer.group_add("g", "slow")
    for n in range(3):
        await layer.group_send("g", {"type": "m", "n": n})  # the 2nd and 3rd find it full
    await layer.send("unread", {"type": "m"})
    assert layer.drops.totals == {"full": 2, "expired": 0}
    # The first drop is logged at once, the next one within the interval is not lost: it is
    # logged when the interval ends, without waiting for yet another drop.
    assert drop_logs(caplog) == [
        "Channel layer dropped 1 message(s) for full channels (latest: slow) and 0 unread "
        "past their expiry (latest: -) so far"
    ]
    await asyncio.sleep(0.1)
    layer.sweep()  # both channels' messages expired unread
    assert layer.drops.totals == {"full": 2, "expired": 2}
    await asyncio.sleep(0.4)
    logs = drop_logs(caplog)
    assert len(logs) == 2
    assert logs[1].startswith(
        "Channel layer dropped 1 message(s) for full channels (latest: slow) and 2 unread"
    )


async def test_expired_messages_skipped_by_receive_are_counted():
    layer = InMemoryChannelLayer(expiry=0.05)
    await layer.send("c", {"type": "old"})
    await asyncio.sleep(0.1)
    await layer.send("c", {"type": "new"})  # the old one is still stored, expired
    assert (await layer.receive("c"))["type"] == "new"
    assert layer.drops.totals["expired"] == 1
