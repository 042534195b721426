"""Presence on Redis: a hash per topic, entries tagged by process, a heartbeat per process.

Keys:

* ``<prefix>:pr:{topic}``: hash, field ``<pid>|<ref>`` -> msgpack ``[key, meta]``. Expires
  ``2 * timeout`` after the last refresh, so a topic whose processes all died leaves nothing.
* ``<prefix>:pl:<pid>``: this process's heartbeat, refreshed every ``timeout / 3`` seconds
  with a ``timeout`` TTL.

Why it holds up:

* A process that dies stops refreshing its heartbeat: within ``timeout`` seconds ``list``
  ignores its entries, and the next sweep (every live process sweeps the topics it tracks in,
  each heartbeat; ``list`` sweeps what it finds) deletes them in one script, which returns the
  deleted entries to the one caller that deleted them: only that caller broadcasts the leaves.
* Every process keeps its own entries in memory. Its heartbeat script tells it when its
  heartbeat key had vanished (Redis restarted without persistence, or this process stalled
  long enough to be swept): it then writes all its entries again and broadcasts them as joins
  (idempotent at the receivers). A write that failed (Redis unreachable) marks the topic for
  the same resync at the next successful heartbeat.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
from typing import TYPE_CHECKING, Any

import msgpack

from switchboard.layers.codec import pack_value
from switchboard.layers.redis.scripts import Script, text
from switchboard.layers.redis.sharding import group_routing_key
from switchboard.layers.stores.presence import PresenceEntry, broadcast_diff, check_topic

if TYPE_CHECKING:
    from switchboard.layers.redis.connection import Shard
    from switchboard.layers.redis.sharding import RedisStoreHost

__all__ = ["DEFAULT_PRESENCE_TIMEOUT", "RedisPresenceStore"]

logger = logging.getLogger("switchboard.layers.redis")

DEFAULT_PRESENCE_TIMEOUT = 15.0

# KEYS: heartbeat. ARGV: ttl (ms). 1 if the key was there, 0 if it had vanished.
BEAT_SCRIPT = """
local old = redis.call('GET', KEYS[1])
redis.call('SET', KEYS[1], '1', 'PX', ARGV[1])
if old then return 1 end
return 0
"""

# KEYS: topic hash. ARGV: field prefixes ("<pid>|") of dead processes.
# Deletes their fields; returns {field, value, field, value, ...} of what it deleted.
SWEEP_SCRIPT = """
local removed = {}
local all = redis.call('HGETALL', KEYS[1])
for i = 1, #all, 2 do
  local f = all[i]
  for j = 1, #ARGV do
    if string.sub(f, 1, #ARGV[j]) == ARGV[j] then
      redis.call('HDEL', KEYS[1], f)
      removed[#removed + 1] = f
      removed[#removed + 1] = all[i + 1]
      break
    end
  end
end
return removed
"""


class RedisPresenceStore:
    """Presence of one ``RedisChannelLayer`` instance (see the module docstring)."""

    def __init__(self, layer: RedisStoreHost, timeout: float = DEFAULT_PRESENCE_TIMEOUT) -> None:
        if timeout <= 0:
            raise ValueError("presence timeout must be positive (seconds)")
        self.layer = layer
        self.timeout = timeout
        self.pid = secrets.token_hex(8)
        self.local: dict[str, dict[str, PresenceEntry]] = {}
        self.dirty: set[str] = set()
        self._beat_script = Script(BEAT_SCRIPT)
        self._sweep_script = Script(SWEEP_SCRIPT)
        self._task: asyncio.Task | None = None
        self._beating: asyncio.Future | None = None
        # False until the first heartbeat: before it, a missing key only means "not yet".
        self._beaten = False

    # -- keys and commands ----------------------------------------------------

    def _hash(self, topic: str) -> str:
        return f"{self.layer.prefix}:pr:{{{topic}}}"

    def _beat_key(self, pid: str) -> str:
        return f"{self.layer.prefix}:pl:{pid}"

    def _topic_shard(self, topic: str) -> Shard:
        return self.layer.shard(group_routing_key(topic))

    def _pid_shard(self, pid: str) -> Shard:
        return self.layer.shard("presence:" + pid)

    @staticmethod
    async def _eval(shard: Any, script: Script, key: str, *args: Any) -> Any:
        return await script.run(shard, (key,), *args)

    def _field(self, ref: str) -> str:
        return f"{self.pid}|{ref}"

    @staticmethod
    def _decode(field: Any, value: bytes) -> tuple[str, PresenceEntry]:
        pid, ref = text(field).split("|", 1)
        key, meta = msgpack.unpackb(value, raw=False)
        return pid, PresenceEntry(ref, key, meta)

    def _hash_ttl_ms(self) -> int:
        return max(1, int(self.timeout * 2000))

    # -- the store ------------------------------------------------------------

    async def track(self, topic: str, ref: str, key: str, meta: dict[str, Any]) -> None:
        check_topic(self.layer, topic)
        value = self.layer.codec.pack({"type": "presence", "meta": meta})  # checks it
        del value
        entry = PresenceEntry(ref, key, dict(meta))
        entries = self.local.setdefault(topic, {})
        old = entries.get(ref)
        entries[ref] = entry
        await self._ensure_heartbeat()
        shard = self._topic_shard(topic)
        try:
            await asyncio.gather(
                shard.command("HSET", self._hash(topic), self._field(ref), pack_value([key, meta])),
                shard.command("PEXPIRE", self._hash(topic), self._hash_ttl_ms()),
            )
        except Exception as exc:  # noqa: BLE001 - kept locally, written at the next heartbeat
            self.dirty.add(topic)
            logger.warning("Presence track in %r not stored yet (%r); will retry", topic, exc)
        await broadcast_diff(self.layer, topic, [entry], [old] if old is not None else [])

    async def untrack(self, topic: str, ref: str) -> None:
        entries = self.local.get(topic)
        old = entries.pop(ref, None) if entries is not None else None
        if entries is not None and not entries:
            del self.local[topic]
        if old is None:
            return
        try:
            await self._topic_shard(topic).command("HDEL", self._hash(topic), self._field(ref))
        except Exception as exc:  # noqa: BLE001 - removed at the next heartbeat's resync
            self.dirty.add(topic)
            logger.warning("Presence untrack in %r not stored yet (%r); will retry", topic, exc)
        await broadcast_diff(self.layer, topic, leaves=[old])

    async def list(self, topic: str) -> list[PresenceEntry]:
        raw = await self._topic_shard(topic).command("HGETALL", self._hash(topic))
        by_pid: dict[str, list[PresenceEntry]] = {}
        for field, value in (raw or {}).items():
            pid, entry = self._decode(field, value)
            by_pid.setdefault(pid, []).append(entry)
        dead = await self._dead(p for p in by_pid if p != self.pid)
        if dead:
            await self._remove_dead(topic, dead)
        return [e for pid, entries in by_pid.items() if pid not in dead for e in entries]

    async def close(self) -> None:
        """Stop the heartbeat and withdraw this process's entries from Redis."""
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
        self._beating = None
        for topic, entries in list(self.local.items()):
            fields = [self._field(ref) for ref in entries]
            await self._topic_shard(topic).command("HDEL", self._hash(topic), *fields)
            await broadcast_diff(self.layer, topic, leaves=entries.values())
        self.local.clear()
        await self._pid_shard(self.pid).command("DEL", self._beat_key(self.pid))

    # -- liveness -------------------------------------------------------------

    async def _dead(self, pids: Any) -> set[str]:
        pids = list(pids)
        if not pids:
            return set()
        alive = await asyncio.gather(
            *(self._pid_shard(p).command("EXISTS", self._beat_key(p)) for p in pids)
        )
        return {p for p, exists in zip(pids, alive, strict=True) if not exists}

    async def _remove_dead(self, topic: str, dead: set[str]) -> None:
        removed = await self._eval(
            self._topic_shard(topic), self._sweep_script, self._hash(topic),
            *(f"{p}|" for p in sorted(dead)),
        )  # fmt: skip
        leaves = [self._decode(f, v)[1] for f, v in zip(removed[::2], removed[1::2], strict=True)]
        await broadcast_diff(self.layer, topic, leaves=leaves)

    async def sweep(self, topic: str) -> None:
        """Delete (and announce the leave of) entries of processes whose heartbeat lapsed."""
        fields = await self._topic_shard(topic).command("HKEYS", self._hash(topic))
        pids = {text(f).split("|", 1)[0] for f in fields or ()}
        pids.discard(self.pid)
        dead = await self._dead(pids)
        if dead:
            await self._remove_dead(topic, dead)

    async def _ensure_heartbeat(self) -> None:
        loop = asyncio.get_running_loop()
        task = self._task
        if task is None or task.done() or task.get_loop() is not loop:
            # The first beat is awaited: until it lands, others would sweep our entries.
            self._beating = loop.create_future()
            self._task = loop.create_task(self._run(self._beating))
        beating = self._beating
        if beating is not None and not beating.done():
            await asyncio.shield(beating)

    async def _run(self, first: asyncio.Future) -> None:
        interval = self.timeout / 3
        while True:
            try:
                await self.beat()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - Redis away: try again next interval
                self.dirty.update(self.local)
                logger.warning("Presence heartbeat failed (%r); retrying", exc)
            if not first.done():
                first.set_result(None)
            await asyncio.sleep(interval)

    async def beat(self) -> None:
        """One heartbeat: refresh our key, resync what may be lost, sweep the dead."""
        was_there = await self._eval(
            self._pid_shard(self.pid), self._beat_script, self._beat_key(self.pid),
            max(1, int(self.timeout * 1000)),
        )  # fmt: skip
        if not was_there and self._beaten:
            self.dirty.update(self.local)  # our entries may be gone with the key: write again
        self._beaten = True
        for topic in list(self.dirty):
            await self._resync(topic)
            self.dirty.discard(topic)
        ttl = self._hash_ttl_ms()
        await asyncio.gather(
            *(self._topic_shard(t).command("PEXPIRE", self._hash(t), ttl) for t in self.local)
        )
        for topic in list(self.local):
            await self.sweep(topic)

    async def _resync(self, topic: str) -> None:
        """Make Redis hold exactly our local entries for ``topic`` (and tell subscribers)."""
        shard = self._topic_shard(topic)
        key = self._hash(topic)
        entries = self.local.get(topic, {})
        mine = f"{self.pid}|"
        fields = await shard.command("HKEYS", key)
        stale = [f for f in fields or () if text(f).startswith(mine)]
        stale = [f for f in stale if text(f)[len(mine) :] not in entries]
        if stale:
            await shard.command("HDEL", key, *stale)
        if entries:
            pairs: list[Any] = []
            for entry in entries.values():
                pairs += [self._field(entry.ref), pack_value([entry.key, entry.meta])]
            await shard.command("HSET", key, *pairs)
            await shard.command("PEXPIRE", key, self._hash_ttl_ms())
            await broadcast_diff(self.layer, topic, joins=entries.values())
