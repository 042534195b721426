"""Coalescing: rapid changes of one instance merged over ``coalesce_window`` seconds.

Both directions use it:

* notifications (:class:`Coalescer`, one per event loop, fed by ``publish``): the first event
  for a ``(stream, pk)`` goes out at once and opens a window; updates arriving during the
  window replace each other and the last one goes out when it ends (opening the next window).
  Creates and deletes are never delayed: a delete drops the update still waiting, a create
  sends it first. A slider saved 60 times a second thus costs one notification per window,
  and the final state always arrives.
* client writes (:class:`PendingUpdates`, one per connection): an update sent within the window
  after the last one written for that instance waits for the window to end, merged with any
  that follow; every one of them is answered once the merged update is written.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any

__all__ = ["Coalescer", "PendingUpdate", "PendingUpdates", "keep_task"]

logger = logging.getLogger("switchboard.binding")

Event = dict[str, Any]

_tasks: set[asyncio.Task[Any]] = set()


def keep_task(task: asyncio.Task[Any]) -> None:
    """Hold a publishing task until it ends (the loop keeps only weak references), logging
    its failure: nobody awaits it."""
    _tasks.add(task)
    task.add_done_callback(_done)


def _done(task: asyncio.Task[Any]) -> None:
    _tasks.discard(task)
    if not task.cancelled() and task.exception() is not None:
        logger.error("Publishing a binding event failed", exc_info=task.exception())


class _Window:
    __slots__ = ("handle", "pending", "send")

    def __init__(self, handle: asyncio.TimerHandle) -> None:
        self.handle = handle
        self.pending: Event | None = None
        self.send: Callable[[Event], Awaitable[None]] | None = None


class Coalescer:
    """Leading- and trailing-edge throttling of events per ``(stream, pk)`` (see above).

    Sends for one key go out in the order they were decided, even though a trailing send
    runs in a task of its own.
    """

    def __init__(self) -> None:
        self.windows: dict[tuple[str, Any], _Window] = {}
        self.tails: dict[tuple[str, Any], asyncio.Future[None]] = {}

    async def submit(
        self, event: Event, window: float, send: Callable[[Event], Awaitable[None]]
    ) -> None:
        if window <= 0:
            await send(event)
            return
        key = (event["stream"], event["pk"])
        slot = self.windows.get(key)
        if slot is None:
            self._open(key, window)
            await self._in_order(key, send, event)
        elif event["action"] == "update":
            slot.pending, slot.send = event, send  # the latest state replaces the waiting one
        else:
            pending, slot.pending = slot.pending, None
            if pending is not None and event["action"] == "create":
                await self._in_order(key, send, pending)
            await self._in_order(key, send, event)

    def _open(self, key: tuple[str, Any], window: float) -> None:
        loop = asyncio.get_running_loop()
        self.windows[key] = _Window(loop.call_later(window, self._close, key, window))

    def _close(self, key: tuple[str, Any], window: float) -> None:
        slot = self.windows.pop(key, None)
        if slot is None or slot.pending is None or slot.send is None:
            return
        self._open(key, window)  # keep throttling while updates keep coming
        keep_task(asyncio.ensure_future(self._in_order(key, slot.send, slot.pending)))

    def _in_order(
        self, key: tuple[str, Any], send: Callable[[Event], Awaitable[None]], event: Event
    ) -> Awaitable[None]:
        # The place in line is taken now, synchronously, not when the coroutine first runs.
        before = self.tails.get(key)
        mine = asyncio.get_running_loop().create_future()
        self.tails[key] = mine

        async def run() -> None:
            try:
                if before is not None:
                    await before
                await send(event)
            finally:
                mine.set_result(None)
                if self.tails.get(key) is mine:
                    del self.tails[key]

        return run()

    def pending(self) -> int:
        return sum(1 for slot in self.windows.values() if slot.pending is not None)


class PendingUpdate:
    """A client update waiting for its window to end: merged data, and whom to answer."""

    __slots__ = ("data", "request_ids")

    def __init__(self, data: dict[str, Any], request_id: Any) -> None:
        self.data = data
        self.request_ids = [request_id]


class PendingUpdates:
    """One connection's client updates, merged per instance (see above).

    ``write(pk, pending)`` applies a merged update and answers its requests; it runs when the
    window ends, in a task of its own, or from :meth:`flush_all`. ``window()`` is the
    connection's ``coalesce_window`` (read at each use: it may change while connected).
    """

    def __init__(
        self,
        write: Callable[[Any, PendingUpdate], Awaitable[None]],
        window: Callable[[], float],
    ) -> None:
        self._write = write
        self._window = window
        self.waiting: dict[Any, PendingUpdate] = {}
        self._last: dict[Any, float] = {}  # pk -> when its last update was written
        self._flushes: set[asyncio.Task[None]] = set()

    def merge(self, pk: Any, data: dict[str, Any], request_id: Any) -> bool:
        """Fold into the update waiting for ``pk``, if one is; whether one was."""
        pending = self.waiting.get(pk)
        if pending is None:
            return False
        pending.data.update(data)
        pending.request_ids.append(request_id)
        return True

    def hold(self, pk: Any, data: dict[str, Any], request_id: Any) -> bool:
        """Hold the update until the window after the last one written for ``pk`` ends;
        False when it may be written now (it is then noted as written)."""
        window = self._window()
        loop = asyncio.get_running_loop()
        wait = self._last.get(pk, -window) + window - loop.time()
        if window <= 0 or wait <= 0:
            self._note(pk, loop.time())
            return False
        self.waiting[pk] = PendingUpdate(dict(data), request_id)
        loop.call_later(wait, self._flush_soon, pk)
        return True

    def drop(self, pk: Any) -> None:
        """Forget the update waiting for ``pk`` (the instance is being deleted)."""
        self.waiting.pop(pk, None)

    def _note(self, pk: Any, now: float) -> None:
        last = self._last
        last[pk] = now
        if len(last) > 1000:  # forget instances not updated within the window
            for key in [k for k, t in last.items() if now - t > self._window()]:
                del last[key]

    def _flush_soon(self, pk: Any) -> None:
        task = asyncio.ensure_future(self.flush(pk))
        self._flushes.add(task)
        task.add_done_callback(self._flushes.discard)

    async def flush(self, pk: Any) -> None:
        """Write the update waiting for ``pk`` now, if one is."""
        pending = self.waiting.pop(pk, None)
        if pending is None:
            return
        self._note(pk, asyncio.get_running_loop().time())
        await self._write(pk, pending)

    async def flush_all(self) -> None:
        """Write every waiting update and wait for those already being written."""
        for pk in list(self.waiting):
            await self.flush(pk)
        if self._flushes:
            await asyncio.gather(*self._flushes, return_exceptions=True)
