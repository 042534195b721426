"""WebSocket keepalive: a ping every ``ws_ping_interval`` seconds, and the connection failed
(1011) when its pong has not come ``ws_ping_timeout`` seconds later."""

from __future__ import annotations

import asyncio
import os
from typing import Protocol

__all__ = ["Keepalive", "Pinged"]


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
    """The ping and pong timers of one accepted connection."""

    __slots__ = ("connection", "loop", "interval", "timeout", "ping_timer", "pong_timer", "payload")

    def __init__(
        self,
        connection: Pinged,
        loop: asyncio.AbstractEventLoop,
        interval: float,
        timeout: float | None,
    ) -> None:
        self.connection = connection
        self.loop = loop
        self.interval = interval
        self.timeout = timeout
        self.payload = b""
        self.pong_timer: asyncio.TimerHandle | None = None
        self.ping_timer: asyncio.TimerHandle | None = loop.call_later(interval, self._ping)

    def pong(self, payload: bytes | bytearray | memoryview) -> None:
        """A pong came: the one answering our ping ends its wait."""
        if self.pong_timer is not None and payload == self.payload:
            self.pong_timer.cancel()
            self.pong_timer = None

    def stop(self) -> None:
        for handle in (self.ping_timer, self.pong_timer):
            if handle is not None:
                handle.cancel()
        self.ping_timer = self.pong_timer = None

    def _ping(self) -> None:
        self.ping_timer = None
        connection = self.connection
        if not connection.pinging():
            return
        if self.pong_timer is None:  # else the previous ping is still waiting for its pong
            self.payload = os.urandom(4)
            connection.send_ping(self.payload)
            if self.timeout:
                self.pong_timer = self.loop.call_later(self.timeout, self._expired)
        self.ping_timer = self.loop.call_later(self.interval, self._ping)

    def _expired(self) -> None:
        self.pong_timer = None
        self.connection.keepalive_expired()
