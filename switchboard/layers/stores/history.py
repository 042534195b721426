"""History for reliable groups: a bounded log per topic, with offsets and an epoch.

A layer that supports history offers ``layer.history_store()``, returning one
:class:`HistoryStore` per layer instance. The contract (in memory here, Redis Streams in
:mod:`switchboard.layers.redis.history`, and any other implementation):

* ``append(topic, data, size, ttl)`` stores ``data`` (a msgpack-able dict) and returns its
  :class:`Position`: offsets are 1, 2, 3... per topic, strictly increasing, never reused within
  an epoch. The log keeps at most ``size`` publications, none older than ``ttl`` seconds.
* The epoch is an opaque string naming one unbroken log. Whenever a log had to start again
  (its data was lost: a Redis restart without persistence, an in-memory layer's process
  restarting, the log expiring), the new log has a new epoch, so an offset from the old one is
  never read against the new one.
* ``recover(topic, epoch, offset, limit)`` returns every publication after ``offset``, in order,
  when the log still holds all of them (at most ``limit``) and the epoch matches; otherwise
  ``complete`` is False: the reader must resynchronise (a gap is never papered over).
* ``latest(topic, limit)``: the last ``limit`` publications still held (history on join).

This package knows nothing of Django: the consumer side is :mod:`switchboard.realtime.history`.
"""

from __future__ import annotations

import secrets
import time
from collections import deque
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

if TYPE_CHECKING:
    from switchboard.layers.stores.host import StoreHost

__all__ = [
    "DEFAULT_HISTORY_SIZE",
    "DEFAULT_HISTORY_TTL",
    "HistoryRead",
    "HistoryStore",
    "MemoryHistoryStore",
    "Position",
    "new_epoch",
]

DEFAULT_HISTORY_SIZE = 1000
DEFAULT_HISTORY_TTL = 300.0
# How long a topic's epoch and offset counter outlive its last publication.
DEFAULT_META_TTL = 86400.0


def new_epoch() -> str:
    return secrets.token_hex(6)


@dataclass(frozen=True)
class Position:
    epoch: str
    offset: int


@dataclass
class HistoryRead:
    """``publications``: ``(offset, data)`` pairs, oldest first. ``offset``: the topic's latest
    offset when read (0 before any publication). ``complete``: False when the publications
    asked for are no longer all held, or the epoch differs (resynchronise)."""

    epoch: str
    offset: int
    publications: list[tuple[int, dict[str, Any]]] = field(default_factory=list)
    complete: bool = True


@runtime_checkable
class HistoryStore(Protocol):
    """What a layer's ``history_store()`` returns (see the module docstring)."""

    async def append(self, topic: str, data: dict[str, Any], size: int, ttl: float) -> Position: ...

    async def recover(self, topic: str, epoch: str, offset: int, limit: int) -> HistoryRead: ...

    async def latest(self, topic: str, limit: int) -> HistoryRead: ...

    async def close(self) -> None: ...


def check_bounds(size: int, ttl: float) -> None:
    if size < 1:
        raise ValueError("history size must be at least 1")
    if ttl <= 0:
        raise ValueError("history ttl must be positive (seconds)")


def encode_append(
    layer: StoreHost, topic: str, data: dict[str, Any], size: int, ttl: float
) -> bytes:
    """The checks every store's ``append`` makes before it stores or sends anything (topic
    name, size, ttl), then ``data`` encoded as the stores keep it."""
    layer.require_valid_group_name(topic)
    check_bounds(size, ttl)
    return layer.codec.encode(data)


class _Log:
    __slots__ = ("entries", "epoch", "offset", "touched", "ttl")

    def __init__(self, epoch: str) -> None:
        self.epoch = epoch
        self.offset = 0
        self.ttl = DEFAULT_HISTORY_TTL
        self.touched = 0.0
        self.entries: deque[tuple[int, float, bytes]] = deque()

    def trim(self, now: float, size: int | None = None) -> None:
        entries = self.entries
        if size is not None:
            while len(entries) > size:
                entries.popleft()
        limit = now - self.ttl
        while entries and entries[0][1] < limit:
            entries.popleft()


class MemoryHistoryStore:
    """Logs held in this process's memory; each gets a fresh epoch when first written, so
    a restarted process never answers an offset given out by its previous life."""

    def __init__(self, layer: StoreHost, meta_ttl: float = DEFAULT_META_TTL) -> None:
        self.layer = layer
        self.meta_ttl = meta_ttl
        self.logs: dict[str, _Log] = {}
        self.clock = time.monotonic

    async def append(
        self,
        topic: str,
        data: dict[str, Any],
        size: int = DEFAULT_HISTORY_SIZE,
        ttl: float = DEFAULT_HISTORY_TTL,
    ) -> Position:
        # Stored encoded: every reader gets its copy.
        packed = encode_append(self.layer, topic, data, size, ttl)
        now = self.clock()
        log = self._log(topic, now)
        log.offset += 1
        log.ttl = ttl
        log.touched = now
        log.entries.append((log.offset, now, packed))
        log.trim(now, size)
        return Position(log.epoch, log.offset)

    def _log(self, topic: str, now: float) -> _Log:
        log = self.logs.get(topic)
        if log is not None and now - log.touched > self.meta_ttl:
            log = None  # forgotten, as the Redis store's metadata expires: a new epoch
        if log is None:
            log = self.logs[topic] = _Log(new_epoch())
            log.touched = now
            self._forget_idle(now)
        return log

    def _forget_idle(self, now: float) -> None:
        # Runs when a log is created, so idle topics cost nothing for long.
        for name, log in list(self.logs.items()):
            if now - log.touched > self.meta_ttl:
                del self.logs[name]

    async def recover(self, topic: str, epoch: str, offset: int, limit: int) -> HistoryRead:
        now = self.clock()
        log = self._log(topic, now)
        read = HistoryRead(log.epoch, log.offset)
        if epoch != log.epoch or offset > log.offset or offset < 0:
            read.complete = False
            return read
        missed = log.offset - offset
        if missed == 0:
            return read
        log.trim(now)
        if missed > limit or len(log.entries) < missed:
            read.complete = False
            return read
        decode = self.layer.codec.decode
        start = len(log.entries) - missed
        read.publications = [(o, decode(d)) for o, _, d in list(log.entries)[start:]]
        return read

    async def latest(self, topic: str, limit: int) -> HistoryRead:
        now = self.clock()
        log = self._log(topic, now)
        log.trim(now)
        decode = self.layer.codec.decode
        tail = list(log.entries)[-limit:] if limit > 0 else []
        return HistoryRead(log.epoch, log.offset, [(o, decode(d)) for o, _, d in tail])

    async def close(self) -> None:
        pass
