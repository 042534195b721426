"""One channel's messages waiting in this process, and the receivers waiting for them.

Shared by the in-memory layer and the Redis layer's process channels, which differ only in
their clock (monotonic in one process, wall time once messages cross processes).

A send to a channel somebody is waiting on hands the message straight to that receiver's
future: no queue object, no task per wait. Most channels belong to one consumer and hold at
most one waiter and no messages, so the message deque is only made when a message has to
wait (an empty deque costs ~600 bytes, a few thousand connections' worth of megabytes).
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from switchboard.layers.drops import DropCounter

__all__ = ["LocalQueue"]

Message = dict[str, Any]


class LocalQueue:
    """Invariant: receivers only wait while no message does."""

    __slots__ = ("capacity", "drops", "messages", "waiters")

    def __init__(self, capacity: int, drops: DropCounter | None = None) -> None:
        self.capacity = capacity
        self.drops = drops  # told about every message dropped unread at its expiry
        self.messages: deque[tuple[float, Message]] | None = None
        self.waiters: list[asyncio.Future[Message]] = []

    @property
    def idle(self) -> bool:
        return not self.messages and not self.waiters

    def __len__(self) -> int:
        return len(self.messages) if self.messages else 0

    def hand_to_waiter(self, message: Message) -> bool:
        """Give ``message`` to the longest-waiting live receiver; False when there is none."""
        waiters = self.waiters
        while waiters:
            waiter = waiters.pop(0)
            if not waiter.done():
                waiter.set_result(message)
                return True
        return False

    def drop_expired(self, now: float) -> None:
        # Every message of a queue was given the same lifetime, so the oldest expire first.
        messages = self.messages
        dropped = 0
        while messages and messages[0][0] <= now:
            messages.popleft()
            dropped += 1
        if dropped and self.drops is not None:
            self.drops.note("expired", count=dropped)

    def put(self, expires: float, message: Message, now: float) -> bool:
        """Hand over or store ``message``; False when the queue is full of live messages."""
        if self.waiters and self.hand_to_waiter(message):
            return True
        messages = self.messages
        if messages is None:
            messages = self.messages = deque()
        if len(messages) >= self.capacity:
            self.drop_expired(now)  # only when full: the sweeps keep the rest bounded
            if len(messages) >= self.capacity:
                return False
        messages.append((expires, message))
        return True

    def pop(self, now: float) -> Message | None:
        """The oldest unexpired message, or None."""
        messages = self.messages
        while messages:
            expires, message = messages.popleft()
            if expires > now:
                return message
            if self.drops is not None:
                self.drops.note("expired")
        return None

    def clear(self) -> None:
        self.messages = None

    def sweep(self, now: float) -> None:
        """Drop expired messages, and the deque itself once it is empty."""
        self.drop_expired(now)
        if not self.messages:
            self.messages = None

    def next_future(
        self, now: float, on_idle: Callable[[], None] | None = None
    ) -> asyncio.Future[Message]:
        """The next message as a plain future: no coroutine or task while it waits.

        Cancelling the future withdraws it (then ``on_idle`` runs if the queue is left
        idle); a message it already holds is the canceller's to handle.
        """
        future: asyncio.Future[Message] = asyncio.get_running_loop().create_future()
        message = self.pop(now) if self.messages else None
        if message is not None:
            future.set_result(message)
            return future
        self.waiters.append(future)

        def withdraw(done: asyncio.Future[Message]) -> None:
            if done.cancelled():
                try:
                    self.waiters.remove(done)
                except ValueError:
                    pass
                if on_idle is not None and self.idle:
                    on_idle()

        future.add_done_callback(withdraw)
        return future

    async def get(self, clock: Callable[[], float], expiry: float) -> Message:
        """The oldest unexpired message, waiting for one if there is none.

        Cancelling a waiting get loses nothing: a message handed over just as the waiter was
        cancelled goes back to the next waiting receiver or the front of the queue.
        """
        message = self.pop(clock()) if self.messages else None
        if message is not None:
            return message
        waiter: asyncio.Future[Message] = asyncio.get_running_loop().create_future()
        self.waiters.append(waiter)
        try:
            return await waiter
        except asyncio.CancelledError:
            if waiter.done() and not waiter.cancelled():
                message = waiter.result()
                if not self.hand_to_waiter(message):
                    if self.messages is None:
                        self.messages = deque()
                    self.messages.appendleft((clock() + expiry, message))
            else:
                try:
                    self.waiters.remove(waiter)
                except ValueError:
                    pass
            raise
