"""Wake-ups for task stores: telling waiting workers that a queue may have a task to claim.

A task store keeps the tasks; a wake-up object only carries hints between ``enqueue`` (and
``retry``, ``release``, ``requeue``) and ``wait``. Two kinds, used by the SQLite store
(:mod:`switchboard.layers.stores.sqlite_tasks`):

* :class:`ThreadWakeups`, within one process: a waiter's future is woken from whichever thread
  or event loop notifies (``call_soon_threadsafe``), so a task enqueued by a server loop wakes a
  worker on another thread's loop at once. No polling.
* :class:`GroupWakeups`, across processes through a channel layer's groups (the IPC layer's):
  each process (each IPC token, see ipc/node.py) that waits has one wake channel, added to the
  group ``sbtasks.wake.<hash of the queue>`` of each queue it waits on; a notify is a tiny
  ``group_send``. One reader task per wake channel hands each wake message to the waiters of
  its group, so concurrent waits on different queues in one process never steal each other's
  hints, and the channel is drained continuously (it never fills while joined). Memberships
  linger ten seconds after the last wait so a worker polling in a loop does not join and
  leave its groups every time.

Neither misses a wake-up (the contract's one hard rule): a waiter registers (and joins its
groups: ``group_add`` returns once a ``group_send`` from any process reaches the channel)
*before* it asks the store whether anything is claimable (``ready``). A task committed before
that question is found by it; one committed after it wakes the waiter. A notification that
cannot be delivered (a full channel, a layer that failed) is logged and dropped: it is a hint,
and the waiter's timeout bounds what it costs.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import threading
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

__all__ = ["GroupWakeups", "Ready", "TaskWakeups", "ThreadWakeups", "wake_group"]

logger = logging.getLogger("switchboard.layers.tasks")

# Seconds until a task of the waited queues may be claimable (0: now), or None when nothing
# is scheduled or leased there: what a store tells its wake-ups when a wait begins.
Ready = Callable[[], Awaitable[float | None]]

WAKE_TYPE = "sbtasks.wake"
# How long a process stays in a queue's wake group after its last wait ended.
LINGER = 10.0


def wake_group(queue: str) -> str:
    """The group that carries ``queue``'s wake-ups. Queue names may hold anything; group names
    may not, so the name is hashed (a collision would only cost a spurious wake-up)."""
    return "sbtasks.wake." + hashlib.blake2b(queue.encode(), digest_size=10).hexdigest()


class TaskWakeups(Protocol):
    async def notify(self, queues: Iterable[str]) -> None:
        """A task may have become claimable in ``queues``: wake their waiters. Never raises
        for a hint that could not be delivered."""

    async def wait(self, queues: Sequence[str], timeout: float, ready: Ready) -> None:
        """Return on a notify for one of ``queues``, when ``ready`` says so, or after
        ``timeout`` seconds."""

    async def close(self) -> None:
        """Let go of what this event loop holds (the object stays usable)."""


def _wake(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)


async def _sleep_on(future: asyncio.Future[None], timeout: float, ready: Ready) -> None:
    """Wait for ``future``, at most ``timeout`` or until ``ready`` says something is due."""
    delay = await ready()
    if future.done():
        return
    if delay is not None:
        # A little late rather than early: a task due at t is claimable from t on.
        timeout = min(timeout, delay + 0.002)
    if timeout <= 0:
        return
    handle = asyncio.get_running_loop().call_later(timeout, _wake, future)
    try:
        await future
    finally:
        handle.cancel()


class ThreadWakeups:
    """Wake-ups between the threads and event loops of one process (see the module docstring)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._waiters: dict[str, set[asyncio.Future[None]]] = {}

    async def notify(self, queues: Iterable[str]) -> None:
        self.notify_now(queues)

    def notify_now(self, queues: Iterable[str]) -> None:
        """``notify`` for code without an event loop."""
        with self._lock:
            futures = {f for q in queues for f in self._waiters.get(q, ())}
        for future in futures:
            try:
                future.get_loop().call_soon_threadsafe(_wake, future)
            except RuntimeError:
                pass  # its loop is closed: nobody waits there any more

    async def wait(self, queues: Sequence[str], timeout: float, ready: Ready) -> None:
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        keys = list(dict.fromkeys(queues))
        with self._lock:
            for key in keys:
                self._waiters.setdefault(key, set()).add(future)
        try:
            await _sleep_on(future, timeout, ready)
        finally:
            with self._lock:
                for key in keys:
                    waiting = self._waiters.get(key)
                    if waiting is not None:
                        waiting.discard(future)
                        if not waiting:
                            del self._waiters[key]

    async def close(self) -> None:
        pass


class _Token(Protocol):
    @property
    def token(self) -> str: ...


class WakeHost(Protocol):
    """What :class:`GroupWakeups` needs of its channel layer (the IPC layer has it all)."""

    async def ready_node(self) -> _Token: ...

    async def new_channel(self, prefix: str = ...) -> str: ...

    async def receive(self, channel: str) -> dict[str, Any]: ...

    async def group_add(self, group: str, channel: str) -> None: ...

    async def group_discard(self, group: str, channel: str) -> None: ...

    async def group_send(self, group: str, message: dict[str, Any]) -> None: ...

    def running_node(self) -> object | None:
        """This event loop's node if it has one (none is started)."""
        ...


@dataclass(eq=False)
class _Member:
    """One IPC token's wake channel: the groups it is in and the waits it serves. Touched only
    from the event loop that serves the token (one at a time)."""

    channel: str
    loop: asyncio.AbstractEventLoop
    reader: asyncio.Task[None] | None = None
    waiters: dict[str, set[asyncio.Future[None]]] = field(default_factory=dict)
    joined: set[str] = field(default_factory=set)
    lingering: dict[str, asyncio.TimerHandle] = field(default_factory=dict)
    leaving: dict[str, asyncio.Task[None]] = field(default_factory=dict)


class GroupWakeups:
    """Wake-ups across the processes sharing a channel layer (see the module docstring)."""

    def __init__(self, layer: WakeHost, linger: float = LINGER) -> None:
        self.layer = layer
        self.linger = linger
        self._lock = threading.Lock()  # the members of several threads' loops
        self._members: dict[str, _Member] = {}

    async def notify(self, queues: Iterable[str]) -> None:
        for queue in dict.fromkeys(queues):
            group = wake_group(queue)
            try:
                await self.layer.group_send(group, {"type": WAKE_TYPE, "group": group})
            except Exception:  # noqa: BLE001 - a hint; waiters time out instead
                logger.debug("Task wake-up for queue %r not sent", queue, exc_info=True)

    async def wait(self, queues: Sequence[str], timeout: float, ready: Ready) -> None:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[None] = loop.create_future()
        try:
            member = await self._member(loop)
        except Exception:  # noqa: BLE001 - no layer: the store still answers, by timeout
            logger.warning("Task wake-ups unavailable; waiting by timeout", exc_info=True)
            await _sleep_on(future, timeout, ready)
            return
        groups = [wake_group(queue) for queue in dict.fromkeys(queues)]
        for group in groups:
            member.waiters.setdefault(group, set()).add(future)
            timer = member.lingering.pop(group, None)
            if timer is not None:
                timer.cancel()
        try:
            if member.reader is None or member.reader.done():
                member.reader = loop.create_task(self._read(member))
            try:
                await self._join(member, groups)
            except Exception:  # noqa: BLE001
                logger.warning("Task wake-ups unavailable; waiting by timeout", exc_info=True)
            await _sleep_on(future, timeout, ready)
        finally:
            for group in groups:
                waiting = member.waiters.get(group)
                if waiting is not None:
                    waiting.discard(future)
                    if not waiting:
                        del member.waiters[group]
                        self._linger(member, group)

    async def _member(self, loop: asyncio.AbstractEventLoop) -> _Member:
        token = (await self.layer.ready_node()).token
        with self._lock:
            member = self._members.get(token)
        if member is None:
            channel = await self.layer.new_channel("sbtasks")
            with self._lock:
                member = self._members.setdefault(token, _Member(channel, loop))
        if member.loop is not loop:
            # The token's inbox moved to this loop (its old loop ended): what was scheduled
            # on the old loop is gone with it; memberships and the channel stay valid.
            member.loop = loop
            member.reader = None
            member.lingering.clear()
            member.leaving.clear()
        return member

    async def _join(self, member: _Member, groups: list[str]) -> None:
        # Re-added on every wait: cheap when already a member (no hub round trip on the IPC
        # layer), and it renews the membership's expiry and survives a layer flush.
        for group in groups:
            leaving = member.leaving.get(group)
            if leaving is not None:
                await asyncio.wait([leaving])  # a discard must not land after this add
        await asyncio.gather(*(self.layer.group_add(g, member.channel) for g in groups))
        member.joined.update(groups)

    def _linger(self, member: _Member, group: str) -> None:
        if group in member.joined and group not in member.lingering:
            member.lingering[group] = member.loop.call_later(
                self.linger, self._leave, member, group
            )

    def _leave(self, member: _Member, group: str) -> None:
        member.lingering.pop(group, None)
        if member.waiters.get(group) or group not in member.joined:
            return
        member.joined.discard(group)
        task = member.loop.create_task(self._discard(member, group))
        member.leaving[group] = task
        task.add_done_callback(
            lambda done: (
                member.leaving.pop(group, None) if member.leaving.get(group) is done else None
            )
        )
        if not member.joined and member.reader is not None:
            member.reader.cancel()
            member.reader = None

    async def _discard(self, member: _Member, group: str) -> None:
        try:
            await self.layer.group_discard(group, member.channel)
        except Exception:  # noqa: BLE001 - stale memberships only cost spurious hints
            logger.debug("Task wake group %s not left", group, exc_info=True)

    async def _read(self, member: _Member) -> None:
        """Hand each wake message on ``member``'s channel to the waits of its group."""
        while True:
            try:
                message = await self.layer.receive(member.channel)
            except asyncio.CancelledError:
                task = asyncio.current_task()
                if task is not None and task.cancelling():
                    raise
                return  # the layer closed this loop's node: the next wait starts a reader
            except Exception:  # noqa: BLE001
                logger.debug("Task wake channel %s failed", member.channel, exc_info=True)
                return
            group = message.get("group")
            if group in member.waiters:
                targets: Iterable[asyncio.Future[None]] = member.waiters[group]
            else:
                targets = () if group else [f for fs in member.waiters.values() for f in fs]
            for future in list(targets):
                _wake(future)

    async def close(self) -> None:
        """Leave this event loop's wake groups and stop its reader."""
        loop = asyncio.get_running_loop()
        with self._lock:
            mine = [(t, m) for t, m in self._members.items() if m.loop is loop]
            for token, _member in mine:
                del self._members[token]
        for _token, member in mine:
            for timer in member.lingering.values():
                timer.cancel()
            if member.reader is not None:
                member.reader.cancel()
                await asyncio.wait([member.reader])
            if self.layer.running_node() is not None:  # else the layer closed: start nothing
                for group in list(member.joined):
                    await self._discard(member, group)
            member.joined.clear()
            for future in (f for fs in member.waiters.values() for f in fs):
                _wake(future)  # waits in progress return (a spurious return is allowed)
