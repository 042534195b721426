"""How a consumer's messages reach its handlers: the two dispatch loops.

Both read from the client (the server's ``receive``) and, when a channel layer is configured,
from the consumer's own layer channel.

By default (:func:`dispatch_loop`) a consumer handles one message at a time, in arrival order.

Opt-in, a consumer whose messages are independent (say, each one a slow lookup) may instead let
up to N of them run at once (``max_concurrent_messages > 1``, :func:`concurrent_dispatch_loop`):

* lifecycle messages (connect, disconnect, ``http.request``) are barriers: they wait until
  every handler already running has finished and run alone, so ``connect`` completes before
  the first ``receive`` starts and ``disconnect`` sees no handler still running;
* messages for which ``consumer.concurrency_key(message)`` returns the same key (not None)
  are still handled one after the other, in arrival order;
* reading stops while N handlers run, so the server's and the layer's flow control hold.

Handlers then run in tasks of their own (each with a copy of the consumer task's context). The
first handler that fails ends the consumer with that error, as it would in the default mode.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Awaitable, Callable, Hashable
from typing import Any

__all__ = [
    "BARRIER_TYPES",
    "ConcurrentDispatcher",
    "LayerSource",
    "Receive",
    "Send",
    "concurrent_dispatch_loop",
    "dispatch_loop",
    "layer_source",
]

Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]
Dispatch = Callable[[dict[str, Any]], Awaitable[None]]

LayerSource = Callable[[], "asyncio.Future[dict[str, Any]]"]


def layer_source(layer: Any, channel: str) -> LayerSource:
    """A function returning a future for the next message on ``channel``.

    Layers listing ``receive_future`` in ``extensions`` (Switchboard's own) wait
    without a task; any other layer's ``receive`` coroutine is wrapped in one.
    """
    if "receive_future" in getattr(layer, "extensions", ()):
        return functools.partial(layer.receive_future, channel)
    receive = layer.receive
    return lambda: asyncio.ensure_future(receive(channel))


class _Inbox:
    """Messages from the client and the layer for one consumer, in arrival order.

    A client message comes with a future its reader waits on until the message has been
    handled; a layer message is the layer's (done) future itself. Slots rather than closures:
    this lives as long as the connection, so its size is per-connection memory.
    """

    __slots__ = ("layer_future", "next_layer_message", "ready", "waiter")

    def __init__(self, next_layer_message: LayerSource) -> None:
        self.ready: list[tuple[Any, asyncio.Future[None] | None]] = []
        self.waiter: asyncio.Future[None] | None = None
        self.next_layer_message = next_layer_message
        self.layer_future: asyncio.Future[dict[str, Any]] | None = None

    def wake(self, _: Any = None) -> None:
        waiter = self.waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def ask_layer(self) -> None:
        future = self.layer_future = self.next_layer_message()
        future.add_done_callback(self.layer_done)

    def layer_done(self, future: asyncio.Future[dict[str, Any]]) -> None:
        if not future.cancelled():
            self.ready.append((future, None))
            self.wake()

    async def read_client(self, client_receive: Receive) -> None:
        loop = asyncio.get_running_loop()
        while True:
            message = await client_receive()
            handled = loop.create_future()
            self.ready.append((message, handled))
            self.wake()
            await handled

    def close(self) -> asyncio.Future[dict[str, Any]] | None:
        """Withdraw the wait on the layer; returns it, for the caller to let it finish."""
        self.waiter = None
        future = self.layer_future
        if future is not None:
            future.remove_done_callback(self.layer_done)
            future.cancel()
        return future


async def dispatch_loop(
    client_receive: Receive,
    next_layer_message: LayerSource | None,
    dispatch: Dispatch,
) -> None:
    """Feed messages from the client and the layer to ``dispatch``, one at a time, in order.

    Without a layer the client is read directly. With one, a long-lived reader task hands
    each client message over and waits until it has been handled before reading the next,
    and the layer is asked for its next message only after the previous one was handled:
    nothing is read ahead, so the server's and the layer's flow control stay in force.
    Handlers always run in this task, in its context.
    """
    if next_layer_message is None:
        while True:
            await dispatch(await client_receive())
    loop = asyncio.get_running_loop()
    inbox = _Inbox(next_layer_message)
    ready = inbox.ready
    reader = loop.create_task(inbox.read_client(client_receive))
    reader.add_done_callback(inbox.wake)  # a failing client source must not leave us waiting
    inbox.ask_layer()
    try:
        while True:
            while not ready:
                if reader.done():
                    reader.result()  # raises what the client source raised
                inbox.waiter = loop.create_future()
                await inbox.waiter
            item, handled = ready.pop(0)
            if handled is None:  # the layer's future: its result (or error) is the message
                await dispatch(item.result())
                inbox.ask_layer()
                continue
            try:
                await dispatch(item)
            finally:
                if not handled.done():
                    handled.set_result(None)
    finally:
        # A third-party layer's receive runs in a task: its cancellation (and the layer's own
        # clean-up of the channel) completes only when awaited, so the consumer ends after it.
        layer_wait = inbox.close()
        reader.cancel()
        await asyncio.gather(reader, *([layer_wait] if layer_wait else []), return_exceptions=True)


# Handled alone, after everything before them and before anything after them.
BARRIER_TYPES = frozenset(
    {"websocket.connect", "websocket.disconnect", "http.request", "http.disconnect"}
)

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

    def busy(self) -> bool:
        """Whether a handler is running (the loop may be waiting for more meanwhile)."""
        return bool(self._running)

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
    report_busy: Callable[[Callable[[], bool]], None] | None = None,
) -> None:
    """:func:`dispatch_loop` with handlers started by a :class:`ConcurrentDispatcher`;
    ``report_busy`` is given its ``busy`` (gateway mode's worker waits on it before moving a
    connection: this loop asks for the next message while handlers still run)."""
    runner = ConcurrentDispatcher(dispatch, limit, key_of)
    if report_busy is not None:
        report_busy(runner.busy)
    feeder = asyncio.ensure_future(
        dispatch_loop(client_receive, next_layer_message, runner.dispatch)
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
