"""WebSocket keepalive: a ping every ``ws_ping_interval`` seconds, and the connection failed
(1011) when its pong has not come ``ws_ping_timeout`` seconds later.

The timers are shared: every connection of a loop with the same interval and timeout waits in
one :class:`_Schedule`, whose two queues (pings due, pongs awaited) are in due order by
construction (each entry is "now + the same delay"), so one loop timer per queue serves them
all. A timer handle per connection would cost ~550 bytes on every idle WebSocket.
"""

from __future__ import annotations

import asyncio
import collections
import os
from typing import Protocol

__all__ = ["Keepalive", "Pinged"]

# A loop timer may run a little before its time (asyncio's clock resolution): entries due
# within this many seconds of now are treated as due.
_SLACK = 0.001


class Pinged(Protocol):
    """The connection a :class:`Keepalive` pings."""

    def pinging(self) -> bool:
        """Is the connection still open for pings? (No more are sent once it is not.)"""
        ...

    def send_ping(self, payload: bytes) -> None: ...

    def keepalive_expired(self) -> None:
        """No pong within the timeout."""
        ...


class Keepalive:
    """The pings and pong deadlines of one accepted connection."""

    __slots__ = ("connection", "schedule", "payload", "ping_at", "pong_at")

    def __init__(
        self,
        connection: Pinged,
        loop: asyncio.AbstractEventLoop,
        interval: float,
        timeout: float | None,
    ) -> None:
        # None once stopped: the schedule then drops this entry when it comes due.
        self.connection: Pinged | None = connection
        self.payload = b""
        self.pong_at: float | None = None  # when the pong of the ping in flight is due
        self.schedule = _Schedule.of(loop, interval, timeout)
        self.ping_at = self.schedule.add_ping(self)  # when the next ping is due

    def pong(self, payload: bytes | bytearray | memoryview) -> None:
        """A pong came: the one answering our ping ends its wait."""
        if self.pong_at is not None and payload == self.payload:
            self.pong_at = None

    def stop(self) -> None:
        self.connection = None  # nor is the connection kept alive by a queued entry
        self.pong_at = None

    def _ping(self) -> None:
        connection = self.connection
        if connection is None or not connection.pinging():
            return
        if self.pong_at is None:  # else the previous ping is still waiting for its pong
            self.payload = os.urandom(4)
            connection.send_ping(self.payload)
            if self.connection is None:
                return  # sending dropped the connection
            if self.schedule.timeout:
                self.pong_at = self.schedule.add_pong(self)
        self.ping_at = self.schedule.add_ping(self)

    def _expired(self) -> None:
        self.pong_at = None
        if self.connection is not None:
            self.connection.keepalive_expired()


class _Schedule:
    """The keepalives of one loop sharing an interval and a timeout."""

    __slots__ = ("loop", "interval", "timeout", "pings", "pongs", "ping_timer", "pong_timer")

    _all: dict[tuple[asyncio.AbstractEventLoop, float, float | None], _Schedule] = {}

    @classmethod
    def of(
        cls, loop: asyncio.AbstractEventLoop, interval: float, timeout: float | None
    ) -> _Schedule:
        key = (loop, interval, timeout)
        schedule = cls._all.get(key)
        if schedule is None:
            for old in [k for k in cls._all if k[0].is_closed()]:
                del cls._all[old]  # a loop closed with keepalives still queued
            schedule = cls._all[key] = cls(loop, interval, timeout)
        return schedule

    def __init__(
        self, loop: asyncio.AbstractEventLoop, interval: float, timeout: float | None
    ) -> None:
        self.loop = loop
        self.interval = interval
        self.timeout = timeout
        # Keepalives by ping due (each is in it once, at its ping_at)...
        self.pings: collections.deque[Keepalive] = collections.deque()
        # ... and pong deadlines: (due, keepalive), stale once its pong_at is another.
        self.pongs: collections.deque[tuple[float, Keepalive]] = collections.deque()
        self.ping_timer: asyncio.TimerHandle | None = None
        self.pong_timer: asyncio.TimerHandle | None = None

    def add_ping(self, keepalive: Keepalive) -> float:
        due = self.loop.time() + self.interval
        self.pings.append(keepalive)
        if self.ping_timer is None:
            self.ping_timer = self.loop.call_at(due, self._run_pings)
        return due

    def add_pong(self, keepalive: Keepalive) -> float:
        assert self.timeout
        due = self.loop.time() + self.timeout
        self.pongs.append((due, keepalive))
        if self.pong_timer is None:
            self.pong_timer = self.loop.call_at(due, self._run_pongs)
        return due

    def _run_pings(self) -> None:
        self.ping_timer = None
        pings = self.pings
        now = self.loop.time() + _SLACK
        for _ in range(len(pings)):  # not the ones queued again meanwhile
            keepalive = pings[0]
            if keepalive.connection is not None and keepalive.ping_at > now:
                break
            pings.popleft()
            if keepalive.connection is not None:
                self._call(keepalive._ping)
        if pings:
            self.ping_timer = self.loop.call_at(pings[0].ping_at, self._run_pings)
        self._forget_if_idle()

    def _run_pongs(self) -> None:
        self.pong_timer = None
        pongs = self.pongs
        now = self.loop.time() + _SLACK
        for _ in range(len(pongs)):
            due, keepalive = pongs[0]
            live = keepalive.pong_at == due and keepalive.connection is not None
            if live and due > now:
                break
            pongs.popleft()
            if live:
                self._call(keepalive._expired)
        if pongs:
            self.pong_timer = self.loop.call_at(pongs[0][0], self._run_pongs)
        self._forget_if_idle()

    def _call(self, callback: object) -> None:
        # One connection's failure must not stop the others' keepalives.
        try:
            callback()  # type: ignore[operator]
        except Exception as exc:
            self.loop.call_exception_handler(
                {"message": "Exception in WebSocket keepalive", "exception": exc}
            )

    def _forget_if_idle(self) -> None:
        if not self.pings and not self.pongs:
            key = (self.loop, self.interval, self.timeout)
            if self._all.get(key) is self:
                del self._all[key]
