"""One event loop's presence in the IPC mesh: its socket, its links to peers and to the hub.

Every node listens on ``n-<token>.sock`` in the runtime directory and writes messages straight
to the socket of the process they are for: one hop, one write per peer per loop turn (frames
are batched), a group message sent once per process that has members. The hub (hub.py) is only
asked about membership changes; its replies keep :attr:`Node.replica` current.

What the node serves (channels, groups, worker channels received, counts of parked messages,
presence entries tracked here) is an :class:`Inbox`, which outlives the node: when sync code's
``async_to_sync`` ends a loop, the next loop's node takes the same inbox and token, so channel
names stay valid.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import os
import time
from typing import TYPE_CHECKING, Any, Protocol

from switchboard.layers.fanout import LocalDelivery, sweep_interval
from switchboard.layers.groups import GroupMemberships
from switchboard.layers.ipc import wire
from switchboard.layers.ipc.directory import ProcessTable
from switchboard.layers.ipc.hub import Hub, try_lock
from switchboard.layers.ipc.presence import PresenceTable, by_topic, pack_items, unpack_items
from switchboard.layers.ipc.runtime import ensure_private_dir, listen_unix, peer_is_us
from switchboard.layers.naming import ChannelNamer, process_token
from switchboard.layers.stores.host import PresenceHost
from switchboard.layers.stores.presence import PresenceEntry, broadcast_diff

if TYPE_CHECKING:
    from switchboard.layers.ipc.layer import IPCChannelLayer
    from switchboard.layers.ipc.presence import Item

__all__ = ["IPCStoreHost", "Inbox", "Node", "PeerUnreachable"]

logger = logging.getLogger("switchboard.layers.ipc")

# Longest wait between two attempts to reach (or become) the hub.
MAX_RETRY_DELAY = 0.1
# How long a closing node waits for its last writes to leave.
CLOSE_FLUSH_TIMEOUT = 2.0
# Unix socket paths are limited to 108 bytes (sun_path) on Linux.
MAX_SOCKET_PATH = 107

_UNREACHABLE = (FileNotFoundError, ConnectionRefusedError, ConnectionResetError)
# Requests a new hub must be asked again (a HELLO covers the others).
_ASKED_AGAIN = (wire.APPEND, wire.RECOVER, wire.LATEST)
# Requests whose effect a HELLO restates (it names all we have).
_COVERED_BY_HELLO = (wire.JOIN, wire.RECEIVE, wire.TRACK, wire.UNTRACK)


class IPCStoreHost(PresenceHost, Protocol):
    """What the IPC presence and history stores need of their layer: the running event loop's
    node, through which they reach the hub."""

    async def ready_node(self) -> Node:
        """The node, started and linked to the hub."""
        ...

    def running_node(self) -> Node | None:
        """The node if there is one; none is started."""
        ...


class PeerUnreachable(ConnectionError):
    """No process listens on that token's socket (gone, or between event loops)."""


class Inbox:
    """What one token owns, whichever event loop serves it."""

    def __init__(self, layer: IPCChannelLayer, token: str | None = None) -> None:
        self.namer = ChannelNamer(token)
        self.token = self.namer.token
        self.groups = GroupMemberships(layer.group_expiry, time.time)
        self.local = LocalDelivery(
            layer.get_capacity, layer.drops, self.is_local, self._no_forward, layer.stats
        )
        self.receivers: set[str] = set()  # worker channels this token receives
        self.parked: dict[str, int] = {}  # our messages the hub holds, by channel
        self.presence: dict[str, dict[str, PresenceEntry]] = {}  # topic -> ref -> entry

    def presence_items(self) -> list[Item]:
        return [(topic, e) for topic, refs in self.presence.items() for e in refs.values()]

    def is_local(self, channel: str) -> bool:
        token = process_token(channel)
        return token == self.token if token is not None else channel in self.receivers

    @staticmethod
    def _no_forward(channel: str, expires: float, message: dict[str, Any]) -> None:
        pass  # replaced by the serving node


class _Peer(asyncio.Protocol):
    """An outgoing data connection; frames written in one loop turn leave in one write."""

    __slots__ = ("_out", "loop", "node", "paused", "resumed", "token", "transport")

    def __init__(self, node: Node, token: str) -> None:
        self.node = node
        self.token = token
        self.loop = node.loop
        self.transport: asyncio.Transport | None = None
        self._out: list[bytes] = []
        self.paused = False
        self.resumed: asyncio.Future[None] | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def send(self, frame: bytes) -> None:
        out = self._out
        out.append(frame)
        if len(out) == 1:
            self.loop.call_soon(self.flush)

    def flush(self) -> None:
        out, self._out = self._out, []
        transport = self.transport
        if out and transport is not None and not transport.is_closing():
            transport.write(out[0] if len(out) == 1 else b"".join(out))

    def pause_writing(self) -> None:
        self.paused = True

    def resume_writing(self) -> None:
        self.paused = False
        if self.resumed is not None and not self.resumed.done():
            self.resumed.set_result(None)
        self.resumed = None

    async def drain(self) -> None:
        """Wait while the peer reads slower than we write (bounds our buffers)."""
        if self.paused:
            if self.resumed is None:
                self.resumed = self.loop.create_future()
            await asyncio.shield(self.resumed)

    def connection_lost(self, exc: Exception | None) -> None:
        self.resume_writing()
        self.node.peer_lost(self)

    def data_received(self, data: bytes) -> None:
        pass  # data connections are one-way


class _Incoming(asyncio.Protocol):
    """A peer's data connection to us."""

    __slots__ = ("node", "reader", "transport")

    def __init__(self, node: Node) -> None:
        self.node = node
        self.reader = wire.FrameReader(node.layer.max_message_size)
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        sock = transport.get_extra_info("socket")
        if sock is None or not peer_is_us(sock):
            logger.warning("IPC channel layer refused a connection from another user")
            transport.close()
            return
        self.node.incoming.add(self)

    def data_received(self, data: bytes) -> None:
        try:
            frames = self.reader.feed(data)
        except wire.ProtocolError as exc:
            logger.warning("IPC channel layer: closing a connection that sent %s", exc)
            self.transport.close()  # type: ignore[union-attr]
            return
        self.node.on_data(frames)

    def connection_lost(self, exc: Exception | None) -> None:
        self.node.incoming.discard(self)


class _HubLink(asyncio.Protocol):
    def __init__(self, node: Node) -> None:
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


class Node:
    """Serves ``inbox`` on ``loop`` (see the module docstring)."""

    def __init__(self, layer: IPCChannelLayer, inbox: Inbox, loop: asyncio.AbstractEventLoop):
        self.layer = layer
        self.inbox = inbox
        self.token = inbox.token
        self.loop = loop
        self.directory = layer.path
        self.socket_path = os.path.join(self.directory, f"n-{self.token}.sock")
        self.replica = ProcessTable()
        self.presence = PresenceTable()  # every process's entries, ours included
        self._presence_heard: set[str] | None = None  # tokens a new hub told us of
        self.peers: dict[str, _Peer] = {}
        self._connecting: dict[str, asyncio.Future[_Peer]] = {}
        self.incoming: set[_Incoming] = set()
        self.hub: Hub | None = None
        self.link: _HubLink | None = None
        self.hub_retiring = False  # the hub said it closes normally: no warning
        self.linked: asyncio.Future[None] = loop.create_future()
        self._seq = itertools.count(1)
        # seq -> (request kind, future of True for OK / False for FULL / a REPLY's payload)
        self.pending: dict[int, tuple[int, asyncio.Future[Any]]] = {}
        self.joining: dict[str, asyncio.Future[None]] = {}
        self._round_robin = itertools.count()
        self.server: asyncio.AbstractServer | None = None
        self.closed = False
        self.ready = False
        self._tasks: set[asyncio.Task[Any]] = set()
        self._linker: asyncio.Task[None] | None = None
        self._sweeper: asyncio.TimerHandle | None = None
        inbox.local.forward = self._forward
        inbox.local.closed = False
        self.started: asyncio.Task[None] = loop.create_task(self._start())
        # Cancelled when the loop shuts down (asyncio.run and async_to_sync cancel every task
        # on the way out): the node then flushes its writes and lets the inbox go.
        self.guard = loop.create_task(self._watch_loop_end())

    # -- lifecycle ------------------------------------------------------------------

    async def _start(self) -> None:
        ensure_private_dir(self.directory)
        if len(self.socket_path.encode()) > MAX_SOCKET_PATH:
            raise ValueError(
                f"IPC channel layer path {self.directory!r} is too long for Unix sockets; "
                "set a shorter CONFIG 'path'"
            )
        # Replaces our own token's file from a loop of ours that ended, if any.
        sock = listen_unix(self.socket_path)
        self.server = await self.loop.create_unix_server(lambda: _Incoming(self), sock=sock)
        await self._link_up()
        self.ready = True
        self._sweeper = self.loop.call_later(sweep_interval(self.layer.expiry), self._sweep)
        self.inbox.local.schedule()  # a fan-out left half-done by the previous loop

    async def _watch_loop_end(self) -> None:
        try:
            await self.loop.create_future()
        except asyncio.CancelledError:
            if not self.closed:
                await self.layer._retire(self)
            raise

    async def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        self.ready = False
        if self.guard is not asyncio.current_task():
            self.guard.cancel()
        if self._sweeper is not None:
            self._sweeper.cancel()
        for task in (self.started, self._linker, *self._tasks):
            if task is not None and task is not asyncio.current_task() and not task.done():
                task.cancel()
        # Messages already written must leave before the process (or loop) goes.
        for peer in list(self.peers.values()):
            peer.flush()
        deadline = time.monotonic() + CLOSE_FLUSH_TIMEOUT
        while time.monotonic() < deadline and any(
            p.transport is not None and p.transport.get_write_buffer_size()
            for p in self.peers.values()
        ):
            await asyncio.sleep(0.005)
        for peer in list(self.peers.values()):
            if peer.transport is not None:
                peer.transport.close()
        self.peers.clear()
        if self.server is not None:
            self.server.close()
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self.socket_path)
        for incoming in list(self.incoming):
            if incoming.transport is not None:
                incoming.transport.abort()
        link, self.link = self.link, None
        if link is not None and link.transport is not None:
            link.transport.close()
        if self.hub is not None:
            await self.hub.close()
            self.hub = None
        for _kind, future in self.pending.values():
            future.cancel()
        self.pending.clear()
        self.inbox.local.closed = True
        self.inbox.local.cancel_waiters()

    # -- the hub ------------------------------------------------------------------------

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
                    lambda: _HubLink(self), hub_path
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

    def hub_lost(self, link: _HubLink) -> None:
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
                peer = self.peers.pop(token, None)
                if peer is not None and peer.transport is not None:
                    peer.flush()
                    peer.transport.close()
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

    # -- peers --------------------------------------------------------------------------

    async def peer(self, token: str) -> _Peer:
        """The connection to ``token``'s process; raises PeerUnreachable if nobody listens."""
        peer = self.peers.get(token)
        if peer is not None:
            return peer
        connecting = self._connecting.get(token)
        if connecting is None:
            connecting = self._connecting[token] = self.loop.create_future()
            path = os.path.join(self.directory, f"n-{token}.sock")
            try:
                _transport, peer = await self.loop.create_unix_connection(
                    lambda: _Peer(self, token), path
                )
            except OSError as exc:
                error = PeerUnreachable(f"no IPC process listens for {token}: {exc}")
                connecting.set_exception(error)
                connecting.exception()  # retrieved: others may not be waiting
                raise error from exc
            finally:
                if self._connecting.get(token) is connecting:
                    del self._connecting[token]
            self.peers[token] = peer
            connecting.set_result(peer)
            return peer
        return await asyncio.shield(connecting)

    def peer_lost(self, peer: _Peer) -> None:
        if self.peers.get(peer.token) is peer:
            del self.peers[peer.token]

    def forget(self, token: str) -> None:
        """``token`` could not be reached: its process is gone (the hub may not say so if it
        died with it)."""
        self.replica.remove(token)

    def pick_receiver(self, channel: str) -> str | None:
        """A process receiving worker channel ``channel``: ourselves if we do, else in turn."""
        if channel in self.inbox.receivers:
            return self.token
        tokens = self.replica.receivers.get(channel)
        if not tokens:
            return None
        return tokens[next(self._round_robin) % len(tokens)]

    # -- arriving messages --------------------------------------------------------------

    def on_data(self, frames: Any) -> None:
        inbox = self.inbox
        local = inbox.local
        drops = self.layer.drops
        now = time.time()
        for frame in frames:
            kind = frame[0]
            if kind == wire.MSG:
                _, channel, expires, message = frame
                if expires <= now:
                    drops.note("expired", channel)
                elif not local.put(channel, expires, message):
                    drops.note("full", channel)
            elif kind == wire.GROUP:
                _, group, expires, message = frame
                if expires <= now:
                    drops.note("expired", group)
                    continue
                members = inbox.groups.members(group)
                if members:
                    local.fan_out(members, expires, message, direct=False)
                elif inbox.groups.is_empty(group):
                    # Every membership expired (group_expiry): stop receiving the group.
                    self.leave(group)
            else:
                logger.warning("IPC channel layer: unexpected frame kind %r", kind)

    def leave(self, group: str) -> None:
        if self.link is not None:
            self.link.write(wire.control(wire.LEAVE, group))

    def _forward(self, channel: str, expires: float, message: dict[str, Any]) -> None:
        # A member of a group joined here that another process reads.
        self.spawn(self.layer.send(channel, message))

    def spawn(self, coro: Any) -> None:
        task = self.loop.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._task_done)

    def _task_done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            logger.warning("IPC channel layer: forwarding failed: %r", task.exception())

    # -- housekeeping -------------------------------------------------------------------

    def _sweep(self) -> None:
        self.inbox.local.sweep()
        for group in self.inbox.groups.sweep():
            self.leave(group)
        if not self.closed:
            self._sweeper = self.loop.call_later(sweep_interval(self.layer.expiry), self._sweep)
