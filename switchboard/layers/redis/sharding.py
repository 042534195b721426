"""Which shard owns a channel or a group: one canonical key, one hash, for send AND receive."""

from __future__ import annotations

import zlib
from typing import TYPE_CHECKING, Protocol

from switchboard.layers.stores.host import PresenceHost

if TYPE_CHECKING:
    from switchboard.layers.redis.connection import Shard

__all__ = [
    "RedisStoreHost",
    "channel_routing_key",
    "group_routing_key",
    "jump_hash",
    "shard_index",
]


def jump_hash(key: int, buckets: int) -> int:
    """Jump consistent hash (Lamping & Veach): adding a shard moves only 1/n of the keys."""
    b, j = -1, 0
    key &= 0xFFFFFFFFFFFFFFFF
    while j < buckets:
        b = j
        key = (key * 2862933555777941757 + 1) & 0xFFFFFFFFFFFFFFFF
        j = int((b + 1) * (float(1 << 31) / float((key >> 33) + 1)))
    return b


def channel_routing_key(channel: str) -> str:
    """Process channels route by their process part ("prefix.pid!"), so every channel a
    process owns lives on the shard that process subscribes to; others route by name."""
    bang = channel.find("!")
    return channel if bang < 0 else channel[: bang + 1]


def group_routing_key(group: str) -> str:
    return "group:" + group


def shard_index(routing_key: str, shards: int) -> int:
    if shards <= 1:
        return 0
    return jump_hash(zlib.crc32(routing_key.encode()), shards)


class RedisStoreHost(PresenceHost, Protocol):
    """What the Redis presence and history stores need of their layer: its key prefix and the
    running event loop's connection to the shard owning a routing key."""

    prefix: str

    def shard(self, routing_key: str) -> Shard: ...
