"""Opt-in concurrent message handling for consumers (``max_concurrent_messages > 1``).

The default consumer handles one message at a time, in order. A consumer whose messages are
independent (say, each one a slow lookup) may instead let up to N of them run at once:

* lifecycle messages (connect, disconnect, ``http.request``) are barriers: they wait until
  every handler already running has finished and run alone, so ``connect`` completes before
  the first ``receive`` starts and ``disconnect`` sees no handler still running;
* messages for which ``consumer.concurrency_key(message)`` returns the same key (not None)
  are still handled one after the other, in arrival order;
* reading stops while N handlers run, so the server's and the layer's flow control hold.

Handlers run in tasks of their own (each with a copy of the consumer task's context). The
first handler that fails ends the consumer with that error, as it would in the default mode.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Hashable
from typing import Any

from switchboard.consumer import LayerSource, Receive, _dispatch_loop

__all__ = ["BARRIER_TYPES", "ConcurrentDispatcher", "concurrent_dispatch_loop"]

# Handled alone, after everything before them and before anything after them.
BARRIER_TYPES = frozenset(
    {"websocket.connect", "websocket.disconnect", "http.request", "http.disconnect"}
)

Dispatch = Callable[[dict[str, Any]], Awaitable[None]]
KeyOf = Callable[[dict[str, Any]], Hashable | None]


class ConcurrentDispatcher:
    """Starts handlers as tasks, at most ``limit`` at once, ordering those sharing a key."""

    def __init__(self, dispatch: Dispatch, limit: int, key_of: KeyOf) -> None:
        if limit < 1:
            raise ValueError("max_concurrent_messages must be at least 1")
        self._dispatch = dispatch
        self._key_of = key_of
        self._slots = asyncio.Semaphore(limit)
        self._running: set[asyncio.Task[None]] = set()
        # The last task started for each key still running: the next one with that key waits.
        self._tails: dict[Hashable, asyncio.Task[None]] = {}
        self.failed: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    async def dispatch(self, message: dict[str, Any]) -> None:
        if self.failed.done():
            return  # the consumer is ending with a handler's error
        if message.get("type") in BARRIER_TYPES:
            await self.drain()
            await self._dispatch(message)
            return
        key = self._key_of(message)
        await self._slots.acquire()
        after = self._tails.get(key) if key is not None else None
        task = asyncio.ensure_future(self._run(message, after))
        self._running.add(task)
        if key is not None:
            self._tails[key] = task
        task.add_done_callback(lambda t: self._finished(t, key))

    async def _run(self, message: dict[str, Any], after: asyncio.Task[None] | None) -> None:
        if after is not None:
            await asyncio.wait((after,))  # its outcome is reported by its own callback
        await self._dispatch(message)

    def _finished(self, task: asyncio.Task[None], key: Hashable | None) -> None:
        self._running.discard(task)
        self._slots.release()
        if key is not None and self._tails.get(key) is task:
            del self._tails[key]
        if task.cancelled():
            return
        error = task.exception()
        if error is not None and not self.failed.done():
            self.failed.set_exception(error)

    async def drain(self) -> None:
        """Wait until every running handler has finished."""
        while self._running:
            await asyncio.wait(tuple(self._running))
        if self.failed.done():
            self.failed.result()  # raises the handler's error here, in the consumer

    async def cancel(self) -> None:
        for task in self._running:
            task.cancel()
        await asyncio.gather(*self._running, return_exceptions=True)


async def concurrent_dispatch_loop(
    client_receive: Receive,
    next_layer_message: LayerSource | None,
    dispatch: Dispatch,
    limit: int,
    key_of: KeyOf,
) -> None:
    """``_dispatch_loop`` with handlers started by a :class:`ConcurrentDispatcher`."""
    runner = ConcurrentDispatcher(dispatch, limit, key_of)
    feeder = asyncio.ensure_future(
        _dispatch_loop(client_receive, next_layer_message, runner.dispatch)
    )
    try:
        await asyncio.wait((feeder, runner.failed), return_when=asyncio.FIRST_COMPLETED)
        if runner.failed.done():
            runner.failed.result()  # a handler failed: end the consumer with its error
        feeder.result()
    finally:
        feeder.cancel()
        await asyncio.gather(feeder, return_exceptions=True)
        await runner.cancel()
        if runner.failed.done() and not runner.failed.cancelled():
            runner.failed.exception()  # retrieved: no "exception never retrieved" warning
