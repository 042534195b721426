"""Presence on the IPC layer: the hub orders it, every process keeps a replica.

The hub holds the authoritative :class:`PresenceTable` (topic -> connection ``ref`` -> the
owning process's token and the entry), and tells every process each change, answering a
``track``/``untrack`` only once every replica has it (as for ``group_add``): ``list`` then reads
the local replica, without a round trip, and sees every write that returned anywhere.

Liveness and the contract of :mod:`switchboard.layers.stores.presence`:

* **A dead process** ends its hub connection (the kernel closes it, SIGKILL included). The hub
  drops its entries, tells the replicas (``GONE``) and its own process broadcasts the leaves:
  one process announces each leave.
* **The hub's process dies**: another takes the hub over and starts from its own replica (the
  table as of the last change every process acknowledged). Every process announces its own
  entries again with its HELLO (each process is the source of truth for its connections, as for
  its group memberships); the entries of processes that do not come back within
  ``presence_timeout`` seconds (the old hub's process among them) are dropped and their leaves
  broadcast by the new hub's process. A process declared gone that comes back later has its
  entries announced as joins again.
* Diffs use :func:`~switchboard.layers.stores.presence.broadcast_diff`; a join repeated across a
  hub change is harmless (receivers apply by ``ref``).

Control frames carry presence in one frame per process (the hub link reads frames of any
size: it is a trusted connection between processes of one user).
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from switchboard.layers.ipc import wire
from switchboard.layers.stores.presence import PresenceEntry, broadcast_diff, check_topic

if TYPE_CHECKING:
    from switchboard.layers.ipc.node import Inbox, IPCStoreHost

__all__ = ["DEFAULT_PRESENCE_TIMEOUT", "IPCPresenceStore", "PresenceTable"]

# How long a new hub waits for the processes it inherited to announce themselves again.
DEFAULT_PRESENCE_TIMEOUT = 5.0

# An entry on the wire: [topic, ref, key, meta]
Item = tuple[str, PresenceEntry]
# Spelled once here: inside the classes below, ``list`` names their ``list`` method.
Items = list[Item]


def pack_items(items: Iterable[Item]) -> list[list[Any]]:
    return [[topic, e.ref, e.key, e.meta] for topic, e in items]


def unpack_items(packed: Iterable[list[Any]]) -> list[Item]:
    return [(topic, PresenceEntry(ref, key, meta)) for topic, ref, key, meta in packed]


def by_topic(items: Iterable[Item]) -> dict[str, list[PresenceEntry]]:
    grouped: dict[str, list[PresenceEntry]] = {}
    for topic, entry in items:
        grouped.setdefault(topic, []).append(entry)
    return grouped


class PresenceTable:
    """Presence entries by topic and ref, each owned by one process token; no I/O."""

    __slots__ = ("_of", "topics")

    def __init__(self) -> None:
        self.topics: dict[str, dict[str, tuple[str, PresenceEntry]]] = {}
        self._of: dict[str, set[tuple[str, str]]] = {}  # token -> {(topic, ref)}

    def tokens(self) -> list[str]:
        return list(self._of)

    def list(self, topic: str) -> list[PresenceEntry]:
        return [entry for _token, entry in self.topics.get(topic, {}).values()]

    def of(self, token: str) -> Items:
        return [(topic, self.topics[topic][ref][1]) for topic, ref in self._of.get(token, ())]

    def put(self, token: str, topic: str, entry: PresenceEntry) -> PresenceEntry | None:
        """Add or replace ``entry``; returns the entry it replaced, if any."""
        refs = self.topics.setdefault(topic, {})
        old = refs.get(entry.ref)
        if old is not None:
            self._unindex(old[0], topic, entry.ref)
        refs[entry.ref] = (token, entry)
        self._of.setdefault(token, set()).add((topic, entry.ref))
        return old[1] if old is not None else None

    def drop(self, topic: str, ref: str) -> PresenceEntry | None:
        refs = self.topics.get(topic)
        old = refs.pop(ref, None) if refs is not None else None
        if refs is not None and not refs:
            del self.topics[topic]
        if old is None:
            return None
        self._unindex(old[0], topic, ref)
        return old[1]

    def remove(self, token: str) -> Items:
        """Drop every entry of ``token``; returns them."""
        gone = self.of(token)
        for topic, entry in gone:
            self.drop(topic, entry.ref)
        return gone

    def set(self, token: str, items: Iterable[Item]) -> Items:
        """Make ``items`` all of ``token``'s entries; returns those it did not have before."""
        before = {(topic, e.ref): e for topic, e in self.remove(token)}
        new = []
        for topic, entry in items:
            self.put(token, topic, entry)
            if before.get((topic, entry.ref)) != entry:
                new.append((topic, entry))
        return new

    def copy(self) -> PresenceTable:
        table = PresenceTable()
        table.topics = {topic: dict(refs) for topic, refs in self.topics.items()}
        table._of = {token: set(keys) for token, keys in self._of.items()}
        return table

    def _unindex(self, token: str, topic: str, ref: str) -> None:
        keys = self._of.get(token)
        if keys is not None:
            keys.discard((topic, ref))
            if not keys:
                del self._of[token]


class IPCPresenceStore:
    """``IPCChannelLayer.presence_store()`` (see the module docstring).

    Each entry also stays in the :class:`~switchboard.layers.ipc.node.Inbox` of the event loop
    that tracked it, which announces it to every new hub.
    """

    def __init__(self, layer: IPCStoreHost) -> None:
        self.layer = layer
        self._owners: dict[tuple[str, str], Inbox] = {}  # (topic, ref) -> inbox holding it
        self._pid = os.getpid()

    def _forked(self) -> None:
        if os.getpid() != self._pid:  # the parent's connections are not ours
            self._owners.clear()
            self._pid = os.getpid()

    def _forget(self, topic: str, ref: str) -> PresenceEntry | None:
        inbox = self._owners.pop((topic, ref), None)
        if inbox is None:
            return None
        entries = inbox.presence.get(topic, {})
        old = entries.pop(ref, None)
        if not entries:
            inbox.presence.pop(topic, None)
        return old

    async def track(self, topic: str, ref: str, key: str, meta: dict[str, Any]) -> None:
        check_topic(self.layer, topic)
        self.layer.codec.pack({"type": "presence", "meta": meta})  # fails here, not in a diff
        self._forked()
        node = await self.layer.ready_node()
        entry = PresenceEntry(ref, key, dict(meta))
        old = self._forget(topic, ref)
        node.inbox.presence.setdefault(topic, {})[ref] = entry
        self._owners[(topic, ref)] = node.inbox
        node.presence.put(node.token, topic, entry)
        await node.request(wire.TRACK, topic, ref, key, entry.meta)
        await broadcast_diff(self.layer, topic, [entry], [old] if old is not None else [])

    async def untrack(self, topic: str, ref: str) -> None:
        self._forked()
        old = self._forget(topic, ref)
        if old is None:
            return  # not tracked here
        node = self.layer.running_node()
        if node is None or node.closed:
            # This loop's node is gone: its hub connection ended, and the hub dropped (and
            # announced) its entries then.
            return
        node.presence.drop(topic, ref)
        await node.request(wire.UNTRACK, topic, ref)
        await broadcast_diff(self.layer, topic, leaves=[old])

    async def list(self, topic: str) -> list[PresenceEntry]:
        node = await self.layer.ready_node()
        return node.presence.list(topic)

    async def close(self) -> None:
        """Untrack (and announce the leave of) every entry tracked through this store."""
        for topic, ref in list(self._owners):
            await self.untrack(topic, ref)
