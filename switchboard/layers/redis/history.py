"""History for reliable groups on Redis: one Stream per topic, trimmed by count and age.

Keys (the topic is the Cluster hash tag, so both live in one slot):

* ``<prefix>:h:{topic}``: a Stream whose entry ids are ``<offset>-0``, fields ``t`` (server
  time in ms) and ``d`` (the encoded publication). ``XADD ... MAXLEN size`` keeps the count,
  the append script drops entries older than ``ttl`` from the head, and the key expires
  ``ttl`` after the last append.
* ``<prefix>:hm:{topic}``: a hash with ``epoch``, ``seq`` (the latest offset) and ``ttl``,
  expiring ``meta_ttl`` after the last append.

The epoch is chosen by whichever process first writes the hash. If the hash is lost (a Redis
restart without persistence, expiry) the next append starts a new log under a new epoch, and
deletes any stream left without its hash, so an old offset never reads new data. With
persistence (AOF) both keys come back together and recovery goes on across the restart.

Offsets are assigned and stored in one script, so offset order is the order in the stream.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from switchboard.layers.redis.scripts import Script, text
from switchboard.layers.redis.sharding import group_routing_key
from switchboard.layers.stores.history import (
    DEFAULT_HISTORY_SIZE,
    DEFAULT_HISTORY_TTL,
    DEFAULT_META_TTL,
    HistoryRead,
    Position,
    encode_append,
    new_epoch,
)

if TYPE_CHECKING:
    from switchboard.layers.redis.sharding import RedisStoreHost

__all__ = ["RedisHistoryStore"]

# KEYS: stream, meta. ARGV: data, size, ttl (ms), epoch if new, meta ttl (s).
APPEND_SCRIPT = """
local epoch = redis.call('HGET', KEYS[2], 'epoch')
if not epoch then
  epoch = ARGV[4]
  redis.call('DEL', KEYS[1])
  redis.call('HSET', KEYS[2], 'epoch', epoch, 'seq', 0)
end
local offset = redis.call('HINCRBY', KEYS[2], 'seq', 1)
redis.call('HSET', KEYS[2], 'ttl', ARGV[3])
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('XADD', KEYS[1], 'MAXLEN', ARGV[2], offset .. '-0', 't', now, 'd', ARGV[1])
local oldest = now - tonumber(ARGV[3])
local head = redis.call('XRANGE', KEYS[1], '-', '+', 'COUNT', 100)
local keep = nil
for _, entry in ipairs(head) do
  if tonumber(entry[2][2]) >= oldest then break end
  keep = tonumber(string.match(entry[1], '^(%d+)')) + 1
end
if keep then redis.call('XTRIM', KEYS[1], 'MINID', keep .. '-0') end
redis.call('PEXPIRE', KEYS[1], ARGV[3])
redis.call('EXPIRE', KEYS[2], ARGV[5])
return {epoch, offset}
"""

# KEYS: stream, meta. ARGV: first offset wanted, count (0: the last ARGV[3] entries).
# Returns {epoch or '', latest offset, now (ms), ttl (ms), entries}.
READ_SCRIPT = """
local meta = redis.call('HMGET', KEYS[2], 'epoch', 'seq', 'ttl')
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local entries
if tonumber(ARGV[2]) > 0 then
  entries = redis.call('XRANGE', KEYS[1], ARGV[1] .. '-0', '+', 'COUNT', ARGV[2])
else
  entries = redis.call('XREVRANGE', KEYS[1], '+', '-', 'COUNT', ARGV[3])
end
return {meta[1] or '', tonumber(meta[2] or '0'), now, tonumber(meta[3] or '0'), entries}
"""


def _fields(raw: Any) -> dict[bytes, bytes]:
    if isinstance(raw, dict):
        return raw
    return dict(zip(raw[::2], raw[1::2], strict=True))


class RedisHistoryStore:
    """Reliable-group history of one ``RedisChannelLayer`` (see the module docstring)."""

    def __init__(self, layer: RedisStoreHost, meta_ttl: float = DEFAULT_META_TTL) -> None:
        self.layer = layer
        self.meta_ttl = meta_ttl
        self._append = Script(APPEND_SCRIPT)
        self._read = Script(READ_SCRIPT)

    def _keys(self, topic: str) -> tuple[str, str]:
        prefix = self.layer.prefix
        return f"{prefix}:h:{{{topic}}}", f"{prefix}:hm:{{{topic}}}"

    async def _eval(self, topic: str, script: Script, *args: Any) -> Any:
        shard = self.layer.shard(group_routing_key(topic))
        return await script.run(shard, self._keys(topic), *args)

    async def append(
        self,
        topic: str,
        data: dict[str, Any],
        size: int = DEFAULT_HISTORY_SIZE,
        ttl: float = DEFAULT_HISTORY_TTL,
    ) -> Position:
        packed = encode_append(self.layer, topic, data, size, ttl)
        ttl_ms = max(1, int(ttl * 1000))
        epoch, offset = await self._eval(
            topic, self._append, packed, size, ttl_ms, new_epoch(), max(1, int(self.meta_ttl))
        )
        return Position(text(epoch), int(offset))

    def _entries(self, raw: list[Any], now: int, ttl: int) -> list[tuple[int, dict[str, Any]]]:
        decode = self.layer.codec.decode
        oldest = now - ttl if ttl else None
        out = []
        for entry_id, fields in raw:
            values = _fields(fields)
            if oldest is not None and int(values[b"t"]) < oldest:
                continue
            out.append((int(text(entry_id).split("-", 1)[0]), decode(values[b"d"])))
        return out

    async def recover(self, topic: str, epoch: str, offset: int, limit: int) -> HistoryRead:
        want = max(1, limit + 1)
        found_epoch, latest, now, ttl, raw = await self._eval(
            topic, self._read, max(0, offset) + 1, want, 0
        )
        read = HistoryRead(text(found_epoch), int(latest))
        if not read.epoch or read.epoch != epoch or offset > read.offset or offset < 0:
            read.complete = False
            return read
        missed = read.offset - offset
        if missed == 0:
            return read
        if missed > limit:
            read.complete = False
            return read
        publications = [p for p in self._entries(raw, now, ttl) if p[0] <= read.offset]
        expected = range(offset + 1, read.offset + 1)
        if [o for o, _ in publications] != list(expected):
            read.complete = False  # trimmed by count or age: a gap would be invisible
            return read
        read.publications = publications
        return read

    async def latest(self, topic: str, limit: int) -> HistoryRead:
        found_epoch, latest, now, ttl, raw = await self._eval(
            topic, self._read, 0, 0, max(0, limit)
        )
        epoch = text(found_epoch)
        if not epoch:
            # Nothing published yet: answer with the epoch the first append will use, so a
            # client that subscribed before it recovers from offset 0 without a resync.
            epoch = await self._claim_epoch(topic)
        publications = self._entries(raw, now, ttl) if limit > 0 else []
        publications.reverse()
        return HistoryRead(epoch, int(latest), publications)

    async def _claim_epoch(self, topic: str) -> str:
        shard = self.layer.shard(group_routing_key(topic))
        meta = self._keys(topic)[1]
        await shard.command("HSETNX", meta, "epoch", new_epoch())
        await shard.command("HSETNX", meta, "seq", 0)
        await shard.command("EXPIRE", meta, max(1, int(self.meta_ttl)))
        return text(await shard.command("HGET", meta, "epoch"))

    async def close(self) -> None:
        pass
