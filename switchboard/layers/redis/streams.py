"""At-least-once worker channels on Redis Streams with one consumer group.

A message stays pending in the stream until the reader acknowledges it
(``layer.ack(channel, message)``, or automatically when the same layer next
receives from that channel). If the reader dies first, another reader claims
it with XAUTOCLAIM once it has been idle for ``redelivery_timeout`` seconds.
"""

from __future__ import annotations

from typing import Any

from redis.asyncio import Redis
from redis.exceptions import ResponseError

GROUP = "switchboard"
FIELD = b"d"

# Capacity is checked and the entry added in one round trip. XLEN counts entries still
# in the stream; acknowledged entries are deleted, so it counts waiting + in-flight ones.
SEND_SCRIPT = """
if redis.call('XLEN', KEYS[1]) >= tonumber(ARGV[2]) then return 0 end
redis.call('XADD', KEYS[1], '*', 'd', ARGV[1])
redis.call('EXPIRE', KEYS[1], ARGV[3])
return 1
"""


async def ensure_group(client: Redis, key: str) -> None:
    try:
        await client.xgroup_create(key, GROUP, id="0", mkstream=True)
    except ResponseError as exc:
        if "BUSYGROUP" not in str(exc):
            raise


async def claim_one(
    client: Redis, key: str, consumer: str, min_idle_ms: int
) -> tuple[bytes, bytes] | None:
    """A message another consumer left unacknowledged for ``min_idle_ms``, if any."""
    reply = await client.execute_command(
        "XAUTOCLAIM", key, GROUP, consumer, min_idle_ms, "0-0", "COUNT", 1
    )
    entries = reply[1] if reply else []
    for entry in entries:
        if entry and entry[1]:
            return entry[0], _field(entry[1])
    return None


async def read_one(
    client: Redis, key: str, consumer: str, block_ms: int
) -> tuple[bytes, bytes] | None:
    reply = await client.execute_command(
        "XREADGROUP",
        "GROUP",
        GROUP,
        consumer,
        "COUNT",
        1,
        "BLOCK",
        block_ms,
        "STREAMS",
        key,
        ">",
    )
    if not reply:
        return None
    # RESP2: [[key, [[id, [field, value]]]]]; RESP3 may give a mapping.
    streams = reply.items() if isinstance(reply, dict) else reply
    for _key, entries in streams:
        for entry_id, fields in entries:
            return entry_id, _field(fields)
    return None


def _field(fields: Any) -> bytes:
    if isinstance(fields, dict):
        return fields[FIELD]
    return dict(zip(fields[::2], fields[1::2], strict=True))[FIELD]


async def ack(client: Redis, key: str, entry_id: bytes) -> None:
    pipe = client.pipeline(transaction=False)
    pipe.xack(key, GROUP, entry_id)
    pipe.xdel(key, entry_id)
    await pipe.execute()
