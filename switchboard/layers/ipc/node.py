"""One event loop's presence in the IPC mesh: its socket, its links to peers and to the hub.

Every node listens on ``n-<token>.sock`` in the runtime directory and writes messages straight
to the socket of the process they are for: one hop, one write per peer per loop turn (frames
are batched), a group message sent once per process that has members. The hub (hub.py) is only
asked about membership changes (hub_client.py, the node's other half); its replies keep
:attr:`Node.replica` current. The connections to and from peers are in peers.py.

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
from switchboard.layers.ipc.hub_client import HubClient
from switchboard.layers.ipc.peers import Incoming, Peer, PeerUnreachable
from switchboard.layers.ipc.runtime import ensure_private_dir, listen_unix
from switchboard.layers.naming import ChannelNamer, process_token
from switchboard.layers.stores.host import PresenceHost
from switchboard.layers.stores.presence import PresenceEntry

if TYPE_CHECKING:
    from switchboard.layers.ipc.layer import IPCChannelLayer
    from switchboard.layers.ipc.presence import Item

__all__ = ["IPCStoreHost", "Inbox", "Node"]

logger = logging.getLogger("switchboard.layers.ipc")

# How long a closing node waits for its last writes to leave.
CLOSE_FLUSH_TIMEOUT = 2.0
# Unix socket paths are limited to 108 bytes (sun_path) on Linux.
MAX_SOCKET_PATH = 107


class IPCStoreHost(PresenceHost, Protocol):
    """What the IPC presence and history stores need of their layer: the running event loop's
    node, through which they reach the hub."""

    async def ready_node(self) -> Node:
        """The node, started and linked to the hub."""
        ...

    def running_node(self) -> Node | None:
        """The node if there is one; none is started."""
        ...


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


class Node(HubClient):
    """Serves ``inbox`` on ``loop`` (see the module docstring)."""

    def __init__(self, layer: IPCChannelLayer, inbox: Inbox, loop: asyncio.AbstractEventLoop):
        super().__init__(layer, inbox, loop)
        self.socket_path = os.path.join(self.directory, f"n-{self.token}.sock")
        self.peers: dict[str, Peer] = {}
        self._connecting: dict[str, asyncio.Future[Peer]] = {}
        self.incoming: set[Incoming] = set()
        self._round_robin = itertools.count()
        self.server: asyncio.AbstractServer | None = None
        self.ready = False
        self._tasks: set[asyncio.Task[Any]] = set()
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
        self.server = await self.loop.create_unix_server(lambda: Incoming(self), sock=sock)
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

    # -- peers --------------------------------------------------------------------------

    async def peer(self, token: str) -> Peer:
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
                    lambda: Peer(self, token), path
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

    def peer_lost(self, peer: Peer) -> None:
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

    def drop_peer(self, token: str) -> None:
        """``token``'s process is gone: what we wrote to it leaves, then the connection closes."""
        peer = self.peers.pop(token, None)
        if peer is not None and peer.transport is not None:
            peer.flush()
            peer.transport.close()

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
