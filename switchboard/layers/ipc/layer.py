"""IPCChannelLayer: channels and groups shared by the processes of one host, no server needed.

For sites on one machine that run several processes (``serve --workers N``, ``runworker``, a
``manage.py shell`` calling ``group_send``) without Redis. Design, and why:

* **A direct mesh.** Each process (each event loop, see node.py) listens on a Unix socket of its
  own in a private runtime directory (runtime.py) and writes every message straight to the
  socket of the process it is for: one hop, no broker. A process channel's name carries its
  owner's token (``<prefix>.<token>!<n>``), so a reply needs no lookup at all. Routing every
  message through one Python hub would cap the whole host at one core's worth of messages.
* **Per-process fan-out.** ``group_send`` writes one frame to each process that has members in
  the group, which hands the one decoded message to all its local members (fanout.py), as the
  Redis layer does with pub/sub.
* **A directory hub, elected.** One process, the holder of ``flock`` on ``hub.lock``, keeps who
  has members in which group and who receives which worker channel, and broadcasts each change
  to every process's replica (hub.py). It carries no message traffic, so its death loses none
  for live processes: the kernel releases its lock, another process takes over within
  milliseconds, and every process re-announces its own memberships (each is the source of truth
  for its members). ``group_add`` returns once every process's replica has the change.
* **Worker channels** (no ``!``) are queued in the process that receives them (registered with
  the hub on its first ``receive``); senders pick a receiver from their replica, this process
  first if it receives the channel. A message for a channel nobody receives yet (or for a process
  channel whose process is between event loops) is parked in the hub within capacity and expiry
  and handed over on registration; if the hub dies holding it, the sender counts it as ``lost``
  in its drop counters (logged), rather than losing it silently.

Presence (presence.py) and history (history.py) are ordered and held by the hub, presence
replicated in every process like group memberships, history in the hub's memory only (a new hub
means a new epoch: an explicit resync, never wrong data).

Guarantees: like the Redis layer's pub/sub paths, at most once; ``ChannelFull`` is raised for
channels this process holds or the hub parks, and a full channel in another process drops and
counts the message there. Messages are checked and encoded by the layer codec at send time, like
every layer's; a group message is one dict shared by the local members: treat it as read-only.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import threading
import time
from typing import Any

from switchboard.exceptions import ChannelFull
from switchboard.layers.base import BaseChannelLayer
from switchboard.layers.codec import DEFAULT_MAX_MESSAGE_SIZE
from switchboard.layers.ipc import wire
from switchboard.layers.ipc.history import IPCHistoryStore
from switchboard.layers.ipc.node import Inbox, Node
from switchboard.layers.ipc.peers import PeerUnreachable
from switchboard.layers.ipc.presence import DEFAULT_PRESENCE_TIMEOUT, IPCPresenceStore
from switchboard.layers.ipc.runtime import default_path, ensure_private_dir
from switchboard.layers.naming import process_token
from switchboard.layers.stores.host import StoresMixin
from switchboard.layers.stores.sqlite_tasks import SqliteTaskStore
from switchboard.layers.stores.task_wakeups import GroupWakeups

__all__ = ["IPCChannelLayer"]


class IPCChannelLayer(StoresMixin, BaseChannelLayer):
    """Channels and groups across the processes of one host (see the module docstring).

    CONFIG keys: ``path``: the runtime directory (default: one per ``prefix`` and current
    directory, under ``$XDG_RUNTIME_DIR`` or the temporary directory, see runtime.py; every
    process that should meet must agree on it). ``prefix``: keeps several layers (aliases,
    projects) apart when ``path`` is not given. ``expiry``, ``capacity``, ``channel_capacity``,
    ``group_expiry``, ``max_message_size``: as for every layer (see BaseChannelLayer).
    ``presence_timeout``: after the hub's process dies, how long the next hub waits for each
    process to announce its presence entries again before it declares the silent ones gone
    (seconds; other processes' deaths are seen at once).
    """

    extensions = ("groups", "flush", "presence", "history", "receive_future", "tasks")

    def __init__(
        self,
        path: str | None = None,
        prefix: str = "asgi",
        expiry: float = 60,
        group_expiry: float = 86400,
        capacity: int = 100,
        channel_capacity: dict[Any, int] | None = None,
        max_message_size: int | None = DEFAULT_MAX_MESSAGE_SIZE,
        presence_timeout: float = DEFAULT_PRESENCE_TIMEOUT,
    ) -> None:
        super().__init__(
            expiry=expiry,
            capacity=capacity,
            channel_capacity=channel_capacity,
            group_expiry=group_expiry,
            max_message_size=max_message_size,
        )
        if not prefix:
            raise ValueError("prefix must be a non-empty string")
        if presence_timeout <= 0:
            raise ValueError("presence timeout must be positive (seconds)")
        self.presence_timeout = presence_timeout
        self.prefix = prefix
        self.path = os.path.abspath(path) if path else default_path(prefix)
        self._nodes: dict[asyncio.AbstractEventLoop, Node] = {}
        self._free: list[Inbox] = []  # inboxes of loops that ended, for the next loop
        self._lock = threading.Lock()  # async_to_sync may reach the layer from many threads
        self._pid = os.getpid()

    # -- nodes (one per event loop) ---------------------------------------------------

    def _node(self) -> Node:
        loop = asyncio.get_running_loop()
        node = self._nodes.get(loop)
        if node is not None and not node.closed:
            return node
        with self._lock:
            if os.getpid() != self._pid:
                # Forked: the parent's nodes and tokens are the parent's.
                self._nodes.clear()
                self._free.clear()
                self._pid = os.getpid()
            for old_loop, old in list(self._nodes.items()):
                if old_loop.is_closed():  # closed without cancelling its tasks first
                    del self._nodes[old_loop]
                    self._abandon(old)
            inbox = self._free.pop() if self._free else Inbox(self)
            node = self._nodes[loop] = Node(self, inbox, loop)
        return node

    async def ready_node(self) -> Node:
        """This event loop's node, started and linked to the hub (the stores reach the hub
        through it)."""
        node = self._node()
        if not node.ready:
            try:
                await asyncio.shield(node.started)
            except asyncio.CancelledError:
                if node.started.cancelled() and not node.closed:
                    await self._retire(node)
                raise
            except BaseException:
                await self._retire(node)  # the next call tries again from scratch
                raise
        return node

    def running_node(self) -> Node | None:
        """This event loop's node if it has one; none is started."""
        return self._nodes.get(asyncio.get_running_loop())

    async def _retire(self, node: Node) -> None:
        with self._lock:
            if self._nodes.get(node.loop) is node:
                del self._nodes[node.loop]
        await node.close()
        with self._lock:
            if os.getpid() == self._pid:
                self._free.append(node.inbox)

    def _abandon(self, node: Node) -> None:
        """A node whose loop was closed under it: release what the OS holds for it."""
        node.closed = True
        node.inbox.local.closed = True
        for q in node.inbox.local.queues.values():
            q.waiters.clear()
        with contextlib.suppress(FileNotFoundError):
            os.unlink(node.socket_path)
        hub = node.hub
        if hub is not None and hub.lock_fd is not None:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(hub.path)
            os.close(hub.lock_fd)
            hub.lock_fd = None
        self._free.append(node.inbox)

    # -- optional stores (switchboard.realtime.presence, .history, switchboard.tasks) ----

    def _new_presence_store(self) -> IPCPresenceStore:
        return IPCPresenceStore(self)

    def _new_history_store(self) -> IPCHistoryStore:
        return IPCHistoryStore(self)

    def _new_task_store(self) -> SqliteTaskStore:
        """Tasks in ``tasks.sqlite3`` inside the runtime directory, shared by every process
        that meets there: per project like the directory, private to its user (0700), kept
        across process restarts and ``flush`` (not across a reboot when the directory is on a
        tmpfs such as ``$XDG_RUNTIME_DIR``: give ``path`` a durable directory for that).
        Wake-ups travel as group messages of this layer."""
        ensure_private_dir(self.path)
        return SqliteTaskStore(os.path.join(self.path, "tasks.sqlite3"), GroupWakeups(self))

    # -- channels -------------------------------------------------------------------

    async def new_channel(self, prefix: str = "specific") -> str:
        """A channel name only this process (this event loop) receives: ``<prefix>.<token>!<n>``."""
        node = await self.ready_node()
        name = node.inbox.namer.new_name(prefix)
        self.require_valid_channel_name(name)
        return name

    async def send(self, channel: str, message: dict[str, Any]) -> None:
        """Raises ChannelFull when a channel this process holds (or the hub parks) is full,
        UnserializableMessage or ChannelMessageTooLarge when no layer could carry it."""
        self.require_valid_channel_name(channel)
        self.require_valid_message(message)
        node = self._nodes.get(asyncio.get_running_loop())
        if node is None or not node.ready:
            node = await self.ready_node()
        codec = self.codec
        expires = time.time() + self.expiry
        token = process_token(channel)
        if token is not None:
            if token == node.token:
                # Encoded and decoded although it stays here: the same checks as a remote
                # send, and the receiver's copy is its own.
                if not node.inbox.local.put(channel, expires, codec.decode(codec.pack(message))):
                    raise ChannelFull(channel)
                self.stats.sends += 1
                return
            data = codec.encode(message)
            peer = node.peers.get(token)
            if peer is None:
                try:
                    peer = await node.peer(token)
                except PeerUnreachable:
                    # Its process is between event loops, or gone: the hub keeps it a while.
                    if not await node.park(channel, expires, data):
                        raise ChannelFull(channel) from None
                    self.stats.sends += 1
                    return
            peer.send(wire.msg_frame(channel, expires, data))
            if peer.paused:
                await peer.drain()
            self.stats.sends += 1
            return
        data = codec.encode(message)
        while True:
            target = node.pick_receiver(channel)
            if target is None:
                if not await node.park(channel, expires, data):
                    raise ChannelFull(channel)
                self.stats.sends += 1
                return
            if target == node.token:
                if not node.inbox.local.put(channel, expires, codec.decode(data)):
                    raise ChannelFull(channel)
                self.stats.sends += 1
                return
            try:
                peer = await node.peer(target)
            except PeerUnreachable:
                node.forget(target)
                continue
            peer.send(wire.msg_frame(channel, expires, data))
            if peer.paused:
                await peer.drain()
            self.stats.sends += 1
            return

    async def receive(self, channel: str) -> dict[str, Any]:
        """The oldest unexpired message on ``channel``, waiting for one if there is none.

        A process channel is received only by the process (event loop) that made it; a
        worker channel by any process, each message by one of them.
        """
        self.require_valid_channel_name(channel, receive=True)
        node = self._nodes.get(asyncio.get_running_loop())
        if node is None or not node.ready:
            node = await self.ready_node()
        local = node.inbox.local
        # A queue exists only for a channel received here: the common case checks nothing more.
        # Idle queues are kept for the next receive and dropped by the periodic sweep.
        q = local.queues.get(channel)
        if q is None:
            await self._register(node, channel)
            q = local.queue(channel)
        return await q.get(time.time, self.expiry)

    async def _register(self, node: Node, channel: str) -> None:
        token = process_token(channel)
        if token is not None:
            if token != node.token:
                raise ValueError(
                    f"Channel {channel!r} belongs to another process (or a running event loop "
                    "of this one); only the layer that made it with new_channel() receives it"
                )
            return
        if channel not in node.inbox.receivers:
            node.inbox.receivers.add(channel)
            # Finishes even if this receive is cancelled: the registration stands.
            await asyncio.shield(node.loop.create_task(node.request(wire.RECEIVE, channel)))

    def receive_future(self, channel: str) -> asyncio.Future[dict[str, Any]]:
        """Like ``receive``, as a future; for this process's channels it waits without a task
        (consumers use it to wait on their channel and the client at once cheaply)."""
        self.require_valid_channel_name(channel, receive=True)
        node = self._nodes.get(asyncio.get_running_loop())
        if node is not None and node.ready:
            inbox = node.inbox
            if process_token(channel) == node.token or channel in inbox.receivers:
                queues = inbox.local.queues
                q = inbox.local.queue(channel)

                def forget() -> None:
                    if queues.get(channel) is q and q.idle:
                        del queues[channel]

                return q.next_future(time.time(), forget)
        return asyncio.ensure_future(self.receive(channel))

    # -- groups ---------------------------------------------------------------------

    async def group_add(self, group: str, channel: str) -> None:
        """Add ``channel`` to ``group`` (or renew it for another ``group_expiry``); returns once
        a ``group_send`` from any process reaches it."""
        self.require_valid_group_name(group)
        self.require_valid_channel_name(channel)
        node = await self.ready_node()
        joining: asyncio.Future[Any] | None
        if node.inbox.groups.add(group, channel):
            joining = node.loop.create_task(node.request(wire.JOIN, group))
            node.joining[group] = joining
            joining.add_done_callback(
                lambda done: (
                    node.joining.pop(group, None) if node.joining.get(group) is done else None
                )
            )
        else:
            joining = node.joining.get(group)
        if joining is not None:
            await asyncio.shield(joining)

    async def group_discard(self, group: str, channel: str) -> None:
        self.require_valid_group_name(group)
        self.require_valid_channel_name(channel)
        node = await self.ready_node()
        if node.inbox.groups.discard(group, channel):
            node.leave(group)

    async def group_send(self, group: str, message: dict[str, Any]) -> None:
        """One frame to each process with members in ``group``; each hands it to its members.
        A member whose channel is full misses it (counted where it lives)."""
        self.require_valid_group_name(group)
        self.require_valid_message(message)
        node = self._nodes.get(asyncio.get_running_loop())
        if node is None or not node.ready:
            node = await self.ready_node()
        codec = self.codec
        data = codec.encode(message)
        expires = time.time() + self.expiry
        tokens = node.replica.groups.get(group)
        if tokens:
            frame = wire.group_frame(group, expires, data)
            paused = None
            for token in list(tokens):
                peer = node.peers.get(token)
                if peer is None:
                    try:
                        peer = await node.peer(token)
                    except PeerUnreachable:
                        node.forget(token)  # died with the hub, which cannot say so
                        continue
                peer.send(frame)
                if peer.paused:
                    paused = paused or []
                    paused.append(peer)
            for peer in paused or ():
                await peer.drain()
        groups = node.inbox.groups
        if group in groups:
            members = groups.members(group)
            if members:
                node.inbox.local.fan_out(members, expires, codec.decode(data), direct=False)
            elif groups.is_empty(group):
                node.leave(group)
        self.stats.group_sends += 1

    def queued_messages(self) -> int:
        # Copies before iterating: a scrape may run in another thread.
        return sum(
            len(q)
            for node in list(self._nodes.values())
            for q in list(node.inbox.local.queues.values())
        )

    async def release_channel(self, channel: str) -> None:
        """Forget ``channel``: out of every group it joined here, its waiting messages dropped."""
        node = self._nodes.get(asyncio.get_running_loop())
        if node is None:
            return
        inbox = node.inbox
        emptied = inbox.groups.release(channel)
        inbox.local.release(channel)
        for group in emptied:
            node.leave(group)

    # -- housekeeping -----------------------------------------------------------------

    async def flush(self) -> None:
        """Drop the messages parked in the hub and all history, and this process's messages
        and groups (presence stays: it is the connections that are live)."""
        node = await self.ready_node()
        await node.request(wire.FLUSH)
        for group in node.inbox.groups.clear():
            node.leave(group)
        node.inbox.local.clear()

    async def close(self) -> None:
        """Leave the mesh on the running loop (handing the hub over if we hold it)."""
        node = self._nodes.get(asyncio.get_running_loop())
        if node is not None:
            await self._retire(node)

    def __repr__(self) -> str:
        return f"<IPCChannelLayer path={self.path!r}>"
