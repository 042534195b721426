"""A process's own channel queues, and group messages fanned out to them in slices.

Shared by the layers whose messages arrive from other processes (Redis, IPC): a group message
reaches each process once, decoded once, and this hands that one dict to every local member
(no per-member copy: receivers treat messages as read-only, as with Channels' Redis layer).

A group of thousands handled in one callback would hold the event loop for milliseconds, so
big fan-outs are delivered at most ``FANOUT_SLICE`` puts per loop turn, FIFO. A direct send
to a local channel while fan-outs wait goes behind them, so it cannot overtake them.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from switchboard.layers.local import LocalQueue

if TYPE_CHECKING:
    from switchboard.layers.drops import DropCounter
    from switchboard.layers.stats import LayerStats

__all__ = ["FANOUT_SLICE", "LocalDelivery", "sweep_interval"]

Message = dict[str, Any]

# Local deliveries per loop turn when fanning a group message out to this process's members.
FANOUT_SLICE = 128


def sweep_interval(expiry: float) -> float:
    """Seconds between sweeps of queues whose messages expire after ``expiry``: often enough
    that expired messages do not pile up, at most once a second, at least twice a minute."""
    return max(1.0, min(expiry, 30.0))


class LocalDelivery:
    """``queues``: channel name -> LocalQueue. ``is_local(name)``: whether a channel is read in
    this process; members that are not (a group_add made here for another process's channel)
    go to ``forward(name, expires, message)``. Clock: wall time, as messages cross processes."""

    def __init__(
        self,
        capacity_of: Callable[[str], int],
        drops: DropCounter,
        is_local: Callable[[str], bool],
        forward: Callable[[str, float, Message], None],
        stats: LayerStats | None = None,
    ) -> None:
        self.capacity_of = capacity_of
        self.drops = drops
        self.stats = stats
        self.is_local = is_local
        self.forward = forward
        self.queues: dict[str, LocalQueue] = {}
        # Fan-outs waiting for their turn: [members, next index, expires, message, direct]
        self.backlog: deque[list[Any]] = deque()
        self.closed = False

    def queue(self, channel: str) -> LocalQueue:
        q = self.queues.get(channel)
        if q is None:
            q = self.queues[channel] = LocalQueue(self.capacity_of(channel), self.drops)
        return q

    def put(self, channel: str, expires: float, message: Message) -> bool:
        """A message for one local channel; False when the channel is full (nothing stored)."""
        q = self.queue(channel)
        if self.backlog:
            if len(q) >= q.capacity:
                return False
            self.backlog.append([[channel], 0, expires, message, True])
            return True
        return q.put(expires, message, time.time())

    def fan_out(self, members: list[str], expires: float, message: Message, direct: bool) -> None:
        """Hand ``message`` to each of ``members``; ``direct``: they are known to be local.
        A full member misses the message (counted): its sender cannot be told."""
        backlog = self.backlog
        if not backlog and len(members) <= FANOUT_SLICE:
            self._deliver(members, 0, len(members), expires, message, direct)
            return
        backlog.append([members, 0, expires, message, direct])
        if len(backlog) == 1:
            self.schedule()

    def schedule(self) -> None:
        """Resume draining the backlog on the running loop (also after a loop change)."""
        if self.backlog and not self.closed:
            asyncio.get_running_loop().call_soon(self._drain)

    def _drain(self) -> None:
        backlog = self.backlog
        budget = FANOUT_SLICE
        while backlog and budget > 0:
            job = backlog[0]
            members, start, expires, message, direct = job
            end = min(len(members), start + budget)
            self._deliver(members, start, end, expires, message, direct)
            budget -= end - start
            if end == len(members):
                backlog.popleft()
            else:
                job[1] = end
        if backlog and not self.closed:
            asyncio.get_running_loop().call_soon(self._drain)

    def _deliver(
        self,
        members: list[str],
        start: int,
        end: int,
        expires: float,
        message: Message,
        direct: bool,
    ) -> None:
        queues = self.queues
        drops = self.drops
        now = time.time()
        missed = 0  # not put here: dropped, or forwarded to another process
        for i in range(start, end):
            member = members[i]
            q = queues.get(member)  # a queue is only ever made for a local channel
            if q is None:
                if not direct and not self.is_local(member):
                    self.forward(member, expires, message)
                    missed += 1
                    continue
                q = queues[member] = LocalQueue(self.capacity_of(member), drops)
            if not q.put(expires, message, now):
                missed += 1
                drops.note("full", member)
        if not direct and self.stats is not None:
            self.stats.fanout_deliveries += end - start - missed

    def sweep(self) -> None:
        """Drop expired messages and forget idle queues, so dead channels cost nothing."""
        now = time.time()
        before = len(self.queues)
        for name, q in list(self.queues.items()):
            q.sweep(now)
            if q.idle:
                del self.queues[name]
        if before > 1024 and len(self.queues) < before // 4:
            self.queues = dict(self.queues)

    def release(self, channel: str) -> None:
        q = self.queues.get(channel)
        if q is not None and not q.waiters:
            del self.queues[channel]

    def clear(self) -> None:
        for q in self.queues.values():
            q.clear()
        self.backlog.clear()

    def cancel_waiters(self) -> None:
        """The loop the waiters belong to is ending: they can never be answered."""
        for q in self.queues.values():
            for waiter in q.waiters:
                waiter.cancel()
            q.waiters.clear()
