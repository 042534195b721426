"""A channel layer that lives in one process: for development, tests and single-process sites.

Design, for speed and bounded memory:

* Each channel is a :class:`~switchboard.layers.local.LocalQueue`: messages with their
  expiry plus waiting receivers' futures. A send to a channel somebody is waiting on hands
  the message straight to that future: no queue object, no task per wait.
* Expired messages are dropped lazily whenever a channel is touched, and a cheap periodic
  sweep (a loop timer, not a task) drops them from channels nobody touches. A channel's
  structure is removed as soon as it holds no message and no waiter, so channels nobody
  reads cost nothing once their messages expire.
* Group memberships carry their own expiry (``group_expiry``), renewed by ``group_add``.

Copying and checking: a message is encoded once at ``send``/``group_send`` and every receiver
gets its own decoded copy, so neither the sender nor another receiver can change it afterwards.
The encoding is the Redis layer's (:mod:`switchboard.layers.codec`), so a message this layer
accepts is one the Redis layer accepts too, size limit included, and a bad one fails at send.

Like any asyncio object, a layer instance is used from one event loop at a time (sync code
reaches it through ``async_to_sync``, which runs on that loop). It may move to a new loop once
the old one is finished, as happens between tests.
"""

from __future__ import annotations

import asyncio
import itertools
import secrets
import time
from typing import Any

from switchboard.exceptions import ChannelFull
from switchboard.layers.base import BaseChannelLayer
from switchboard.layers.groups import GroupMemberships
from switchboard.layers.local import LocalQueue
from switchboard.layers.stores.history import MemoryHistoryStore
from switchboard.layers.stores.host import StoresMixin
from switchboard.layers.stores.presence import MemoryPresenceStore
from switchboard.layers.stores.sqlite_tasks import SqliteTaskStore
from switchboard.layers.stores.task_wakeups import ThreadWakeups

__all__ = ["InMemoryChannelLayer"]


class InMemoryChannelLayer(StoresMixin, BaseChannelLayer):
    """Channels and groups held in this process's memory (see the module docstring)."""

    extensions = ("groups", "flush", "presence", "history", "receive_future", "tasks")
    spans_processes = False

    def __init__(
        self,
        expiry: float = 60,
        group_expiry: float = 86400,
        capacity: int = 100,
        channel_capacity: dict[Any, int] | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(
            expiry=expiry,
            capacity=capacity,
            channel_capacity=channel_capacity,
            group_expiry=group_expiry,
            **kwargs,
        )
        self.channels: dict[str, LocalQueue] = {}
        self.groups = GroupMemberships(group_expiry, time.monotonic)
        # Random per instance (unique across processes), counter within it (unique here).
        self._name_token = secrets.token_hex(6)
        self._name_counter = itertools.count(1)
        self._sweep_handle: asyncio.TimerHandle | None = None
        self._sweep_loop: asyncio.AbstractEventLoop | None = None
        # Sweeping more often than messages can expire would only burn CPU.
        self.sweep_interval = min(max(float(expiry), 0.01), 60.0)

    # -- optional stores (switchboard.realtime.presence, .history, switchboard.tasks) ----

    def _new_presence_store(self) -> MemoryPresenceStore:
        return MemoryPresenceStore(self)

    def _new_history_store(self) -> MemoryHistoryStore:
        return MemoryHistoryStore(self)

    def _new_task_store(self) -> SqliteTaskStore:
        """Tasks in an in-memory SQLite database of this layer's own: usable from every thread
        and event loop of the process, gone with it; ``flush`` keeps them."""
        return SqliteTaskStore(None, ThreadWakeups())

    # -- channels ----------------------------------------------------------

    async def send(self, channel: str, message: dict[str, Any]) -> None:
        """Put ``message`` on ``channel``; raises ChannelFull when the channel is at capacity,
        UnserializableMessage or ChannelMessageTooLarge when no layer could carry it."""
        self.require_valid_message(message)
        self.require_valid_channel_name(channel)
        codec = self.codec
        if not self._deliver(channel, codec.decode(codec.pack(message)), time.monotonic()):
            raise ChannelFull(channel)
        self.stats.sends += 1

    def _deliver(self, name: str, message: dict[str, Any], now: float) -> bool:
        """Store or hand over an already-copied message; False when the channel is full."""
        chan = self.channels.get(name)
        if chan is None:
            chan = self.channels[name] = LocalQueue(self.get_capacity(name), self.drops)
        elif chan.waiters and chan.hand_to_waiter(message):
            return True  # handed over: nothing stored, nothing to expire
        if not chan.put(now + self.expiry, message, now):
            return False
        self._arm_sweep()
        return True

    async def receive(self, channel: str) -> dict[str, Any]:
        """The oldest unexpired message on ``channel``, waiting for one if there is none.

        Cancelling a waiting receive loses nothing: a message already handed to it goes back
        to the front of the channel (or to the next waiting receiver).
        """
        self.require_valid_channel_name(channel, receive=True)
        chan = self.channels.get(channel)
        if chan is None:
            chan = self.channels[channel] = LocalQueue(self.get_capacity(channel), self.drops)
        try:
            return await chan.get(time.monotonic, self.expiry)
        finally:
            # A flush may have replaced the structure; only drop the one we used.
            if chan.idle and self.channels.get(channel) is chan:
                del self.channels[channel]
            elif chan.messages:
                self._arm_sweep()  # a message given back on cancellation must still expire

    def receive_future(self, channel: str) -> asyncio.Future[dict[str, Any]]:
        """Like ``receive``, as a plain future: no coroutine or task while it waits.

        Consumers use it to wait on their channel and the client at once cheaply. Cancelling
        the future withdraws it; a message it already holds is the canceller's to handle.
        """
        self.require_valid_channel_name(channel, receive=True)
        chan = self.channels.get(channel)
        if chan is None:
            chan = self.channels[channel] = LocalQueue(self.get_capacity(channel), self.drops)

        def forget() -> None:
            if self.channels.get(channel) is chan:
                del self.channels[channel]

        future = chan.next_future(time.monotonic(), forget)
        if chan.idle:  # answered from a stored message that was the last one
            forget()
        return future

    async def new_channel(self, prefix: str = "specific") -> str:
        """A channel name no other ``new_channel`` call returns: ``<prefix>.inmemory!<id>``."""
        name = f"{prefix}.inmemory!{self._name_token}{next(self._name_counter)}"
        self.require_valid_channel_name(name)
        return name

    # -- groups ------------------------------------------------------------

    async def group_add(self, group: str, channel: str) -> None:
        """Add ``channel`` to ``group`` (or renew its membership for another ``group_expiry``)."""
        self.require_valid_group_name(group)
        self.require_valid_channel_name(channel)
        self.groups.add(group, channel)
        self._arm_sweep()

    async def group_discard(self, group: str, channel: str) -> None:
        self.require_valid_group_name(group)
        self.require_valid_channel_name(channel)
        self.groups.discard(group, channel)

    async def group_send(self, group: str, message: dict[str, Any]) -> None:
        """Send ``message`` to every member; members whose channel is full miss it.

        The members share one decoded copy, as members in one process do on the Redis and IPC
        layers (decoded once per process): what a consumer may do with a group message in
        development is what it may do in production. The sender's dict is never shared.
        """
        self.require_valid_message(message)
        self.require_valid_group_name(group)
        codec = self.codec
        copy = codec.decode(codec.pack(message))  # a bad message fails here, members or not
        members = self.groups.members(group)
        self.stats.group_sends += 1
        if not members:
            return
        now = time.monotonic()
        deliver = self._deliver
        missed = 0
        for channel in members:
            if not deliver(channel, copy, now):
                missed += 1
                self.drops.note("full", channel)  # like Channels: a full member misses it
        self.stats.fanout_deliveries += len(members) - missed

    async def release_channel(self, channel: str) -> None:
        """Forget ``channel``: out of every group, its waiting messages dropped.

        Costs one lookup per group it joined. Receivers still waiting on it keep waiting.
        """
        self.groups.release(channel)
        chan = self.channels.get(channel)
        if chan is not None and not chan.waiters:
            del self.channels[channel]

    # -- housekeeping ------------------------------------------------------

    def queued_messages(self) -> int:
        # list() copies in one step, so a scrape from another thread never sees the dict
        # change size under it.
        return sum(len(chan) for chan in list(self.channels.values()))

    async def flush(self) -> None:
        """Drop every message, group, presence entry and history; receivers already waiting
        keep waiting."""
        self.groups.clear()
        self._forget_stores()
        for name, chan in list(self.channels.items()):
            chan.clear()
            if not chan.waiters:
                del self.channels[name]

    async def close(self) -> None:
        self._cancel_sweep()

    def sweep(self, now: float | None = None) -> None:
        """Drop expired messages and memberships and the structures they leave empty."""
        now = time.monotonic() if now is None else now
        before = len(self.channels)
        for name, chan in list(self.channels.items()):
            if chan.waiters:
                continue  # Waiting means its messages are empty already.
            chan.sweep(now)
            if chan.messages is None:
                del self.channels[name]
        # Dicts never shrink their tables on delete; rebuild after a large die-off.
        if before > 1024 and len(self.channels) < before // 4:
            self.channels = dict(self.channels)
        self.groups.sweep()

    def _arm_sweep(self) -> None:
        # One timer per layer while it holds anything that can expire; re-armed on a new loop.
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return
        if self._sweep_handle is not None and self._sweep_loop is loop:
            return
        self._cancel_sweep()
        self._sweep_loop = loop
        self._sweep_handle = loop.call_later(self.sweep_interval, self._timed_sweep)

    def _timed_sweep(self) -> None:
        self._sweep_handle = None
        self._sweep_loop = None
        self.sweep()
        if any(chan.messages for chan in self.channels.values()) or self.groups:
            self._arm_sweep()

    def _cancel_sweep(self) -> None:
        if self._sweep_handle is not None:
            self._sweep_handle.cancel()
        self._sweep_handle = None
        self._sweep_loop = None
