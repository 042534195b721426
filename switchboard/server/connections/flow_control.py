"""Back-pressure for one transport, shared by the HTTP/1.1, WebSocket and HTTP/2 protocols.

Writing: asyncio calls the protocol's ``pause_writing``/``resume_writing`` when the transport's
buffer crosses its high/low water marks; a coroutine that writes awaits :meth:`drain` while the
buffer is full, so a client that does not read slows the application down.
Reading: the protocol stops reading from a client whose unread input piles up.
"""

from __future__ import annotations

import asyncio
from typing import Protocol


class _Readable(Protocol):
    def pause_reading(self) -> None: ...
    def resume_reading(self) -> None: ...


class FlowControl:
    """Pause/resume state of one transport, and the coroutines waiting for it to drain.

    ``stop()`` ends the helper's say over the transport (it closed, or another protocol took
    it over): reading is no longer paused or resumed from here and ``drain`` stops waiting.
    Waiters already parked are woken by ``release()``, at connection loss.
    """

    __slots__ = ("loop", "transport", "reading_paused", "writing_paused", "stopped", "_waiters")

    def __init__(self, loop: asyncio.AbstractEventLoop, transport: _Readable | None = None) -> None:
        self.loop = loop
        self.transport = transport
        self.reading_paused = False
        self.writing_paused = False
        self.stopped = False
        # Each is released with None, or expires with False (wait_writable).
        self._waiters: list[asyncio.Future[bool | None]] = []

    # -- reading --------------------------------------------------------------------------

    def pause_reading(self) -> None:
        if not self.reading_paused and not self.stopped and self.transport is not None:
            self.reading_paused = True
            self.transport.pause_reading()

    def resume_reading(self) -> None:
        if self.reading_paused and not self.stopped and self.transport is not None:
            self.reading_paused = False
            self.transport.resume_reading()

    # -- writing --------------------------------------------------------------------------

    def pause_writing(self) -> None:
        self.writing_paused = True

    def resume_writing(self) -> None:
        self.writing_paused = False
        self.release()

    async def drain(self) -> None:
        """Wait until the transport takes writes again (or the connection is gone)."""
        if self.writing_paused and not self.stopped:
            waiter = self.loop.create_future()
            self._waiters.append(waiter)
            await waiter

    async def wait_writable(self, timeout: float) -> bool:
        """Like :meth:`drain`, for at most ``timeout`` seconds: False if the transport was
        still paused then (the caller decides what a client that does not read costs it)."""
        if not self.writing_paused or self.stopped:
            return True
        waiter = self.loop.create_future()
        self._waiters.append(waiter)
        timer = self.loop.call_later(timeout, _expire, waiter)
        try:
            result = await waiter
        finally:
            timer.cancel()
        return result is None  # None: released; False: the timer came first

    def release(self) -> None:
        """Wake every coroutine waiting in ``drain``."""
        waiters, self._waiters = self._waiters, []
        for waiter in waiters:
            if not waiter.done():
                waiter.set_result(None)

    def stop(self) -> None:
        self.stopped = True


def _expire(waiter: asyncio.Future[bool | None]) -> None:
    if not waiter.done():
        waiter.set_result(False)
