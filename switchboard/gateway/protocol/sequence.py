"""Order, duplicates and bounded buffers for the events of one relayed connection.

Each event that crosses the layer for a connection has a sequence number (see
:mod:`switchboard.gateway.protocol.messages`). Two pieces keep the stream whole:

- :class:`InOrderReceiver`, on the receiving side: delivers events in sequence order, holds
  the few that arrive ahead of a missing one, drops duplicates (an event re-sent after a move,
  or a layer that delivered twice) and says which numbers are missing.
- :class:`ResendBuffer`, on the sending side: numbers the events and keeps each one until the
  other side acknowledges it, so that when a worker stops or dies, what it had not read yet
  goes to the next worker, in order.

Both are bounded, and neither raises when full: the caller gets :data:`OVERFLOW` back as a
value, the event is not kept, and ``overflows`` counts it for a metric. The policy is the same
on both sides: keep what is already held and refuse what comes next, because dropping an event
from the middle would deliver a stream with a hole in it, and blocking would move the pressure
to the layer, where it stalls every other connection. A connection whose stream no longer fits
is closed by the caller with 1013 (try again later): the client knows, and reconnects.

The overflow counters count over an object's life (``restart`` keeps them), so a metric can
read them at any time; the caller that replaces an object adds its counts to its own total.
"""

from __future__ import annotations

import collections
import enum
from typing import Generic, Literal, NamedTuple, TypeVar

__all__ = [
    "OVERFLOW",
    "InOrderReceiver",
    "Received",
    "ResendBuffer",
    "SequenceError",
    "Status",
]

T = TypeVar("T")


class Status(enum.Enum):
    """What happened to an event offered to an :class:`InOrderReceiver` (or, ``OVERFLOW``
    only, pushed to a :class:`ResendBuffer`)."""

    DELIVERED = "delivered"  # next in order: delivered, with the held ones that follow it
    HELD = "held"  # ahead of a missing one: kept until the gap fills
    DUPLICATE = "duplicate"  # seen before: dropped
    OVERFLOW = "overflow"  # over the bound: not kept; the caller closes the socket (1013)


DELIVERED, HELD, DUPLICATE = Status.DELIVERED, Status.HELD, Status.DUPLICATE
OVERFLOW: Literal[Status.OVERFLOW] = Status.OVERFLOW


class SequenceError(ValueError):
    """A peer named a sequence number that cannot be right (an ack for an event never sent)."""


class Received(NamedTuple, Generic[T]):
    """An offered event's :class:`Status`, and the events now ready, in order (empty unless
    ``DELIVERED``)."""

    status: Status
    ready: list[T]


class InOrderReceiver(Generic[T]):
    """Events in, the same events out in sequence order, each once.

    ``window``: how far ahead of the next expected number an event may be and still be held
    (at most ``window`` events are held: a bound in events, as each is at most one layer
    message). An event further ahead is :data:`OVERFLOW`: so many missing numbers mean the
    stream lost something, and waiting longer would only hold more.
    """

    __slots__ = ("window", "expected", "held", "delivered", "duplicates", "overflows")

    def __init__(self, window: int, start: int = 1) -> None:
        if window < 0:
            raise ValueError("window must be 0 or more events")
        if start < 1:
            raise ValueError("sequence numbers start at 1 or more")
        self.window = window
        self.expected = start  # the number delivered next
        self.held: dict[int, T] = {}
        self.delivered = 0
        self.duplicates = 0
        self.overflows = 0

    def receive(self, seq: int, item: T) -> Received[T]:
        """Offer event number ``seq``; see :class:`Status` for what the answer means."""
        expected = self.expected
        if seq < expected or seq in self.held:
            self.duplicates += 1
            return Received(DUPLICATE, [])
        if seq == expected:
            ready = [item]
            expected += 1
            held = self.held
            while held and expected in held:
                ready.append(held.pop(expected))
                expected += 1
            self.expected = expected
            self.delivered += len(ready)
            return Received(DELIVERED, ready)
        if seq - expected > self.window:
            self.overflows += 1
            return Received(OVERFLOW, [])
        self.held[seq] = item
        return Received(HELD, [])

    @property
    def delivered_through(self) -> int:
        """The last number delivered (0 before any): what an ack names."""
        return self.expected - 1

    @property
    def waiting_for(self) -> int | None:
        """The missing number that holds events back, or None when nothing is held."""
        return self.expected if self.held else None

    def gaps(self) -> list[int]:
        """The numbers missing before the furthest held event, in order."""
        if not self.held:
            return []
        return [n for n in range(self.expected, max(self.held)) if n not in self.held]

    def restart(self, start: int) -> list[T]:
        """Expect ``start`` next (a new epoch of the stream); returns the held events dropped.
        The counters go on."""
        if start < 1:
            raise ValueError("sequence numbers start at 1 or more")
        dropped = [self.held[n] for n in sorted(self.held)]
        self.held.clear()
        self.expected = start
        return dropped


class ResendBuffer(Generic[T]):
    """Numbers outgoing events and keeps each one until acknowledged, for re-delivery.

    ``max_items`` and ``max_bytes`` (``None``: no byte bound) bound what is kept; ``size`` of
    each :meth:`push` is the caller's measure of the event (its payload's length). A push over
    either bound is :data:`OVERFLOW`, and the event gets no number, so the numbers stay
    contiguous. An empty buffer takes any one event, so an event larger than ``max_bytes``
    (the server's own frame limit bounds it) goes through alone rather than never.
    """

    __slots__ = (
        "max_items",
        "max_bytes",
        "next_seq",
        "acked",
        "pending",
        "pending_bytes",
        "overflows",
    )

    def __init__(self, max_items: int, max_bytes: int | None = None, start: int = 1) -> None:
        if max_items < 1:
            raise ValueError("max_items must be at least 1")
        if max_bytes is not None and max_bytes < 1:
            raise ValueError("max_bytes must be a positive number of bytes, or None")
        if start < 1:
            raise ValueError("sequence numbers start at 1 or more")
        self.max_items = max_items
        self.max_bytes = max_bytes
        self.next_seq = start  # the number the next push gets
        self.acked = start - 1  # every number up to this one was acknowledged
        self.pending: collections.deque[tuple[int, T, int]] = collections.deque()
        self.pending_bytes = 0
        self.overflows = 0

    def push(self, item: T, size: int = 0) -> int | Literal[Status.OVERFLOW]:
        """Keep ``item`` under the next number and return that number, or return
        :data:`OVERFLOW` (the item is not kept)."""
        max_bytes = self.max_bytes
        if len(self.pending) >= self.max_items or (
            max_bytes is not None and self.pending and self.pending_bytes + size > max_bytes
        ):
            self.overflows += 1
            return OVERFLOW
        seq = self.next_seq
        self.next_seq = seq + 1
        self.pending.append((seq, item, size))
        self.pending_bytes += size
        return seq

    def ack(self, seq: int) -> int:
        """Every event up to ``seq`` arrived: forget them; returns how many were forgotten (0
        for an ack older than one already seen). Raises :class:`SequenceError` for a number
        never handed out."""
        if seq >= self.next_seq:
            raise SequenceError(
                f"ack for event {seq}, but only events up to {self.next_seq - 1} were sent"
            )
        pending = self.pending
        released = 0
        while pending and pending[0][0] <= seq:
            self.pending_bytes -= pending.popleft()[2]
            released += 1
        self.acked = max(self.acked, seq)
        return released

    def unacked(self) -> list[tuple[int, T]]:
        """The events not acknowledged yet, with their numbers, oldest first: what the next
        worker gets."""
        return [(seq, item) for seq, item, _size in self.pending]

    @property
    def first_unacked(self) -> int:
        """The number the next worker's stream starts from (``next_seq`` of
        ``gateway.connect``)."""
        return self.acked + 1

    @property
    def room(self) -> int:
        """How many more events fit by count (a caller may pause reading before it is 0)."""
        return self.max_items - len(self.pending)

    def __len__(self) -> int:
        return len(self.pending)
