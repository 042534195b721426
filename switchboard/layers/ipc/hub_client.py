"""A node's side of the hub: reaching (or becoming) the hub, requests and their answers, and
the replicas the hub keeps current in every process (who has members in which group and
receives which worker channel; presence entries).

:class:`HubClient` is the half of :class:`~switchboard.layers.ipc.node.Node` that talks to the
hub over :class:`HubLink`; the node's other half moves messages between processes.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import os
from typing import TYPE_CHECKING, Any

from switchboard.layers.ipc import wire
from switchboard.layers.ipc.directory import ProcessTable
from switchboard.layers.ipc.hub import Hub, try_lock
from switchboard.layers.ipc.presence import PresenceTable, by_topic, pack_items, unpack_items
from switchboard.layers.stores.presence import PresenceEntry, broadcast_diff

if TYPE_CHECKING:
    from switchboard.layers.ipc.layer import IPCChannelLayer
    from switchboard.layers.ipc.node import Inbox
    from switchboard.layers.ipc.presence import Item

__all__ = ["HubClient", "HubLink"]

logger = logging.getLogger("switchboard.layers.ipc")

# Longest wait between two attempts to reach (or become) the hub.
MAX_RETRY_DELAY = 0.1
# Requests a new hub must be asked again (a HELLO covers the others).
_ASKED_AGAIN = (wire.APPEND, wire.RECOVER, wire.LATEST)
# Requests whose effect a HELLO restates (it names all we have).
_COVERED_BY_HELLO = (wire.JOIN, wire.RECEIVE, wire.TRACK, wire.UNTRACK)


class HubLink(asyncio.Protocol):
    """The control connection to the hub; frames go to the node's ``on_hub_frames``."""

    def __init__(self, node: HubClient) -> None:
        self.node = node
        # Unbounded: a new process's replica arrives as one frame per process.
        self.reader = wire.FrameReader()
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def write(self, frame: bytes) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.write(frame)

    def data_received(self, data: bytes) -> None:
        try:
            frames = self.reader.feed(data)
        except wire.ProtocolError as exc:
            logger.warning("IPC channel layer: the hub sent %s", exc)
            self.transport.close()  # type: ignore[union-attr]
            return
        self.node.on_hub_frames(frames)

    def connection_lost(self, exc: Exception | None) -> None:
        self.node.hub_lost(self)


class HubClient:
    """The hub-facing half of a node (see the module docstring); the node supplies
    ``on_data``, ``spawn`` and ``drop_peer``."""

    def __init__(
        self, layer: IPCChannelLayer, inbox: Inbox, loop: asyncio.AbstractEventLoop
    ) -> None:
        self.layer = layer
        self.inbox = inbox
        self.token = inbox.token
        self.loop = loop
        self.directory = layer.path
        self.closed = False
        self.replica = ProcessTable()
        self.presence = PresenceTable()  # every process's entries, ours included
        self._presence_heard: set[str] | None = None  # tokens a new hub told us of
        self.hub: Hub | None = None
        self.link: HubLink | None = None
        self.hub_retiring = False  # the hub said it closes normally: no warning
        self.linked: asyncio.Future[None] = loop.create_future()
        self._seq = itertools.count(1)
        # seq -> (request kind, future of True for OK / False for FULL / a REPLY's payload)
        self.pending: dict[int, tuple[int, asyncio.Future[Any]]] = {}
        self.joining: dict[str, asyncio.Future[None]] = {}
        self._linker: asyncio.Task[None] | None = None

    async def _link_up(self) -> None:
        """Reach the hub, becoming it if nobody holds the lock, and announce ourselves."""
        delay = 0.002
        lock_path = os.path.join(self.directory, "hub.lock")
        hub_path = os.path.join(self.directory, "hub.sock")
        while not self.closed:
            if self.hub is None:
                fd = try_lock(lock_path)
                if fd is not None:
                    hub = Hub(
                        self.directory,
                        fd,
                        self.layer.drops,
                        presence=self.presence.copy(),  # where the last hub left presence
                        announce=self._announce,
                        presence_timeout=self.layer.presence_timeout,
                    )
                    try:
                        await hub.start()
                    except BaseException:
                        await hub.close()
                        raise
                    self.hub = hub
            try:
                _transport, link = await self.loop.create_unix_connection(
                    lambda: HubLink(self), hub_path
                )
            except OSError:
                await asyncio.sleep(delay)
                delay = min(delay * 2, MAX_RETRY_DELAY)
                continue
            self.link = link
            seq = next(self._seq)
            done: asyncio.Future[bool] = self.loop.create_future()
            self.pending[seq] = (wire.HELLO, done)
            groups = [g for g in self.inbox.groups.groups() if not self.inbox.groups.is_empty(g)]
            mine = self.inbox.presence_items()
            self.presence.set(self.token, mine)
            self._presence_heard = set()
            link.write(
                wire.control(
                    wire.HELLO,
                    seq,
                    self.token,
                    os.getpid(),
                    groups,
                    sorted(self.inbox.receivers),
                    pack_items(mine),
                )
            )
            try:
                await done
            except ConnectionError:
                continue  # lost again before the answer: try the next hub
            # The hub told us of every process it knows before answering: whoever else our
            # replica still holds is gone (it died with a previous hub).
            heard, self._presence_heard = self._presence_heard, None
            for token in self.presence.tokens():
                if token != self.token and token not in heard:
                    self.presence.remove(token)
            # Requests made before the HELLO are covered by it (it names all we have), whether
            # or not the hub that died had answered them.
            for pending_seq, (kind, future) in list(self.pending.items()):
                if pending_seq < seq and kind in _COVERED_BY_HELLO and not future.done():
                    future.set_result(True)
                    del self.pending[pending_seq]
            if not self.linked.done():
                self.linked.set_result(None)
            return

    def hub_lost(self, link: HubLink) -> None:
        if link is not self.link:
            return
        self.link = None
        if self.closed:
            return
        if self.linked.done():
            self.linked = self.loop.create_future()
        log = logger.info if self.hub_retiring else logger.warning
        self.hub_retiring = False
        log("IPC channel layer (process %d) lost its hub; electing another", os.getpid())
        drops = self.layer.drops
        # What the dead hub held for us is gone: counted, not silent.
        for channel, count in self.inbox.parked.items():
            if count > 0:
                drops.note("lost", channel, count=count)
        self.inbox.parked.clear()
        for seq, (kind, future) in list(self.pending.items()):
            if kind == wire.PARK:
                del self.pending[seq]
                if not future.done():
                    drops.note("lost")
                    future.set_result(True)
            elif kind == wire.HELLO and not future.done():
                del self.pending[seq]
                future.set_exception(ConnectionError("hub lost"))
            elif kind in _ASKED_AGAIN and not future.done():
                del self.pending[seq]
                future.set_exception(wire.HubLost("hub lost"))
        if self._linker is None or self._linker.done():
            self._linker = self.loop.create_task(self._link_up())

    async def request(self, kind: int, *items: Any) -> Any:
        """Send a request to the hub and wait for its answer (True: OK, False: FULL, or a
        REPLY's payload); raises HubLost if a request of ``_ASKED_AGAIN`` lost its hub."""
        while self.link is None:
            await asyncio.shield(self.linked)
        seq = next(self._seq)
        future: asyncio.Future[Any] = self.loop.create_future()
        self.pending[seq] = (kind, future)
        self.link.write(wire.control(kind, seq, *items))
        try:
            return await future
        finally:
            self.pending.pop(seq, None)

    async def park(self, channel: str, expires: float, message_data: bytes) -> bool:
        """Leave a message with the hub for whoever receives ``channel`` later."""
        while self.link is None:
            await asyncio.shield(self.linked)
        seq = next(self._seq)
        future: asyncio.Future[bool] = self.loop.create_future()
        self.pending[seq] = (wire.PARK, future)
        capacity = self.layer.get_capacity(channel)
        frame = wire.park_frame(seq, channel, capacity, expires, message_data)
        self.link.write(frame)
        try:
            stored = await future
        finally:
            self.pending.pop(seq, None)
        if stored:
            parked = self.inbox.parked
            parked[channel] = parked.get(channel, 0) + 1
        return stored

    def on_hub_frames(self, frames: list[list[Any]]) -> None:
        replica = self.replica
        for frame in frames:
            kind = frame[0]
            if kind == wire.OK or kind == wire.FULL:
                entry = self.pending.get(frame[1])
                if entry is not None and not entry[1].done():
                    entry[1].set_result(kind == wire.OK)
            elif kind == wire.UPDATE:
                _, bseq, token, groups, receivers, replace = frame
                if token != self.token:
                    if replace:
                        replica.set(token, groups, receivers)
                    else:
                        replica.add(token, groups, receivers)
                if bseq and self.link is not None:
                    self.link.write(wire.control(wire.ACK, bseq))
            elif kind == wire.LEFT:
                replica.leave(frame[1], frame[2])
            elif kind == wire.REPLY:
                entry = self.pending.get(frame[1])
                if entry is not None and not entry[1].done():
                    entry[1].set_result(frame[2])
            elif kind == wire.TRACKED or kind == wire.UNTRACKED or kind == wire.PRESENCE:
                self._presence_frame(frame)
            elif kind == wire.GONE:
                token = frame[1]
                replica.remove(token)
                self.presence.remove(token)
                self.drop_peer(token)
            elif kind == wire.RETIRING:
                self.hub_retiring = True
            elif kind == wire.SETTLED:
                _, channel, count = frame
                parked = self.inbox.parked
                left = parked.get(channel, 0) - count
                if left > 0:
                    parked[channel] = left
                else:
                    parked.pop(channel, None)
            else:
                self.on_data((frame,))

    def _presence_frame(self, frame: list[Any]) -> None:
        kind, bseq = frame[0], frame[1]
        if kind == wire.TRACKED:
            _, _, token, topic, ref, key, meta = frame
            self.presence.put(token, topic, PresenceEntry(ref, key, meta))
            if self._presence_heard is not None:
                self._presence_heard.add(token)
        elif kind == wire.UNTRACKED:
            self.presence.drop(frame[2], frame[3])
        else:
            _, _, token, items = frame
            if token != self.token:  # ours are kept here, not learnt
                self.presence.set(token, unpack_items(items))
            if self._presence_heard is not None:
                self._presence_heard.add(token)
        if bseq and self.link is not None:
            self.link.write(wire.control(wire.ACK, bseq))

    def _announce(self, joins: list[Item], leaves: list[Item]) -> None:
        """Presence diffs the hub we host must broadcast (processes that died, came back)."""
        joined, left = by_topic(joins), by_topic(leaves)
        for topic in {*joined, *left}:
            diff = broadcast_diff(self.layer, topic, joined.get(topic, ()), left.get(topic, ()))
            self.spawn(diff)

    # -- supplied by the node -------------------------------------------------------------

    def on_data(self, frames: Any) -> None:
        raise NotImplementedError

    def spawn(self, coro: Any) -> None:
        raise NotImplementedError

    def drop_peer(self, token: str) -> None:
        raise NotImplementedError
