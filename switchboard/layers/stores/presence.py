"""Presence storage: who is connected to a topic, one entry per connection, across processes.

A layer that supports presence offers ``layer.presence_store()``, returning one
:class:`PresenceStore` per layer instance. The contract every implementation keeps (the
in-memory one here, Redis in :mod:`switchboard.layers.redis.presence`, and any other):

* ``track(topic, ref, key, meta)``: the connection ``ref`` (unique, opaque) is in ``topic`` as
  ``key`` (the user: many connections of one user share a key) with ``meta`` (a msgpack-able
  dict). Tracking a ``ref`` again replaces its meta. Broadcasts a diff (see below).
* ``untrack(topic, ref)``: the connection left; broadcasts a leave diff if it was tracked here.
* ``list(topic)``: every live entry, from every process, each connection exactly once.
* Liveness: entries of a process that died without untracking (SIGKILL, lost machine) vanish
  from ``list`` within ``timeout`` seconds, and some live process broadcasts their leave diff
  (each entry's leave is broadcast by one process only).
* A backend that can lose its data (a Redis restart without persistence) is refilled by every
  process from its own local entries within ``timeout`` seconds.
* Diffs: ``layer.group_send(presence_group(topic), diff_message(topic, joins, leaves))``.
  Receivers apply them idempotently by ``ref`` (a join of a known ref or a leave of an unknown
  one changes nothing), so a diff repeated after a resync never double counts.

This package knows nothing of Django: the consumer side is :mod:`switchboard.realtime.presence`.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

if TYPE_CHECKING:
    from switchboard.layers.stores.host import PresenceHost, StoreHost

__all__ = [
    "MemoryPresenceStore",
    "PresenceEntry",
    "PresenceStore",
    "broadcast_diff",
    "diff_message",
    "presence_group",
]

DIFF_TYPE = "sb.presence_diff"
_GROUP_PREFIX = "presence."


@dataclass(frozen=True)
class PresenceEntry:
    """One connection in a topic: ``ref`` identifies the connection, ``key`` the user."""

    ref: str
    key: str
    meta: dict[str, Any]

    def as_meta(self) -> dict[str, Any]:
        """The meta as clients see it: the application's fields plus ``ref``."""
        return {**self.meta, "ref": self.ref}


@runtime_checkable
class PresenceStore(Protocol):
    """What a layer's ``presence_store()`` returns (see the module docstring)."""

    async def track(self, topic: str, ref: str, key: str, meta: dict[str, Any]) -> None: ...

    async def untrack(self, topic: str, ref: str) -> None: ...

    async def list(self, topic: str) -> list[PresenceEntry]: ...

    async def close(self) -> None: ...


def presence_group(topic: str) -> str:
    """The group a topic's presence diffs are sent to (``presence.<topic>``)."""
    return _GROUP_PREFIX + topic


def group_by_key(entries: Iterable[PresenceEntry]) -> dict[str, dict[str, list[dict[str, Any]]]]:
    """``{key: {"metas": [meta, ...]}}``: many connections of one user collapse under its key."""
    grouped: dict[str, dict[str, list[dict[str, Any]]]] = {}
    for entry in entries:
        grouped.setdefault(entry.key, {"metas": []})["metas"].append(entry.as_meta())
    return grouped


def diff_message(
    topic: str, joins: Iterable[PresenceEntry], leaves: Iterable[PresenceEntry]
) -> dict[str, Any]:
    return {
        "type": DIFF_TYPE,
        "topic": topic,
        "joins": group_by_key(joins),
        "leaves": group_by_key(leaves),
    }


async def broadcast_diff(
    layer: PresenceHost,
    topic: str,
    joins: Iterable[PresenceEntry] = (),
    leaves: Iterable[PresenceEntry] = (),
) -> None:
    joins, leaves = list(joins), list(leaves)
    if joins or leaves:
        await layer.group_send(presence_group(topic), diff_message(topic, joins, leaves))


def check_topic(layer: StoreHost, topic: str) -> None:
    """A topic must be a group name, and so must its presence group."""
    layer.require_valid_group_name(topic)
    layer.require_valid_group_name(presence_group(topic))


class MemoryPresenceStore:
    """Presence held in one process (the in-memory layer): nothing can die behind its back,
    since every connection it knows lives in this process and untracks when it ends."""

    def __init__(self, layer: PresenceHost) -> None:
        self.layer = layer
        self.topics: dict[str, dict[str, PresenceEntry]] = {}

    async def track(self, topic: str, ref: str, key: str, meta: dict[str, Any]) -> None:
        check_topic(self.layer, topic)
        self.layer.codec.pack({"type": "presence", "meta": meta})  # fails here, not in a diff
        entry = PresenceEntry(ref, key, dict(meta))
        entries = self.topics.setdefault(topic, {})
        old = entries.get(ref)
        entries[ref] = entry
        await broadcast_diff(self.layer, topic, [entry], [old] if old is not None else [])

    async def untrack(self, topic: str, ref: str) -> None:
        entries = self.topics.get(topic)
        old = entries.pop(ref, None) if entries is not None else None
        if entries is not None and not entries:
            del self.topics[topic]
        if old is not None:
            await broadcast_diff(self.layer, topic, leaves=[old])

    async def list(self, topic: str) -> list[PresenceEntry]:
        return list(self.topics.get(topic, {}).values())

    async def close(self) -> None:
        pass
