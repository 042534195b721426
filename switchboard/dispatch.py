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
    "Inbox",
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


def _receive_into_owner(client_receive: Receive) -> Any:
    """The object whose ``receive_into`` stands for ``client_receive``, if there is one.

    That is when ``client_receive`` is the ``receive`` method of an object offering
    ``receive_into`` (the server's WebSocket cycle), which completes a future of ours with the
    next message: one future then waits on the client and the layer at once, in this task.
    Anything else (a middleware's wrapper, a test's queue) is read by a task."""
    owner = getattr(client_receive, "__self__", None)
    if getattr(owner, "receive_into", None) is None:
        return None
    return owner if client_receive == getattr(owner, "receive", None) else None


class Inbox:
    """Messages from the client and the layer for one consumer, in arrival order.

    The layer is waited on from :meth:`listen` on: a consumer starts listening when its
    channel name is first read (nobody can send to a name nobody was told), so an idle
    connection that never uses its channel costs the layer nothing.

    Two ways to read the client. A source with ``receive_into`` (the server's WebSocket
    cycle; ``direct`` is then true) completes the future the layer's arrival would complete,
    so the consumer's task waits on both with no other task (:meth:`next`). Any other
    ``receive`` is read by a reader task (:meth:`run`), which hands each message over with a
    future it waits on until the message has been handled. A layer message is the layer's
    (done) future itself. Slots rather than closures: this lives as long as the connection,
    so its size is per-connection memory.
    """

    __slots__ = (
        "client",
        "closed",
        "direct",
        "layer_future",
        "layer_taken",
        "loop",
        "next_layer_message",
        "ready",
        "waiter",
    )

    def __init__(self, client_receive: Receive) -> None:
        self.loop = asyncio.get_running_loop()
        owner = _receive_into_owner(client_receive)
        # Whether the client is read without a task: next(), not run().
        self.direct = owner is not None
        # The object offering receive_into, or else the receive callable.
        self.client: Any = owner if owner is not None else client_receive
        # (message, handled) from the reader task; (layer future, None) from the layer. Made
        # when one of them starts.
        self.ready: list[tuple[Any, asyncio.Future[None] | None]] | None = None
        self.waiter: asyncio.Future[Any] | None = None
        self.next_layer_message: LayerSource | None = None
        self.layer_future: asyncio.Future[dict[str, Any]] | None = None
        self.layer_taken = False  # next() handed out a layer message: ask for the next one
        self.closed = False

    @property
    def listening(self) -> bool:
        return self.next_layer_message is not None

    def listen(self, next_layer_message: LayerSource) -> None:
        """Wait on the layer too, from now on; from any thread, any number of times."""
        if self.next_layer_message is not None or self.closed:
            return
        try:
            here = asyncio.get_running_loop() is self.loop
        except RuntimeError:
            here = False
        if here:
            self._start_listening(next_layer_message)
            return
        try:  # a sync handler's thread: the loop starts it
            self.loop.call_soon_threadsafe(self._start_listening, next_layer_message)
        except RuntimeError:
            pass  # the loop is closed: the consumer is long gone

    def _start_listening(self, next_layer_message: LayerSource) -> None:
        if self.next_layer_message is None and not self.closed:
            self.next_layer_message = next_layer_message
            if self.ready is None:
                self.ready = []
            self.ask_layer()

    def wake(self, _: Any = None) -> None:
        waiter = self.waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def ask_layer(self) -> None:
        assert self.next_layer_message is not None
        future = self.layer_future = self.next_layer_message()
        future.add_done_callback(self.layer_done)

    def layer_done(self, future: asyncio.Future[dict[str, Any]]) -> None:
        if not future.cancelled():
            self.ready.append((future, None))  # type: ignore[union-attr]
            self.wake()

    def next(self) -> asyncio.Future[Any]:
        """(``direct`` only) A future for the next message, done if one is here already.

        Its result is a client message, a layer message (the layer's own future: its result
        or error is the message), or None when a layer message arrived meanwhile (it is
        next). The caller handles each message before asking for another: the layer is asked
        for its next message only then, and the client is read only in this call."""
        if self.layer_taken:
            self.layer_taken = False
            self.ask_layer()
        ready = self.ready
        if ready:
            self.layer_taken = True
            return ready.pop(0)[0]
        loop = self.loop
        waiter = self.waiter = loop.create_future()
        self.client.receive_into(waiter)  # done at once when a client message is queued
        if not waiter.done():
            return waiter
        # A message was waiting: handed over on the next loop turn, as the reader task's
        # hand-over did, so that what handling the previous one woke (other tasks, the
        # demultiplexer's streams...) runs first. Out of wake()'s reach meanwhile.
        self.waiter = None
        handover = loop.create_future()
        loop.call_soon(_hand_over, handover, waiter.result())
        return handover

    async def run(self, dispatch: Dispatch) -> None:
        """Feed the client's and the layer's messages to ``dispatch`` until it raises."""
        if self.direct:
            try:
                while True:
                    message = await self.next()
                    if message is not None:
                        await dispatch(message)
            finally:
                await self.finish()
        if self.ready is None:
            self.ready = []
        ready, loop = self.ready, self.loop
        reader = loop.create_task(self._read_client(self.client))
        reader.add_done_callback(self.wake)  # a failing client source must not leave us waiting
        try:
            while True:
                while not ready:
                    if reader.done():
                        reader.result()  # raises what the client source raised
                    waiter = self.waiter = loop.create_future()
                    await waiter
                item, handled = ready.pop(0)
                if handled is None:  # the layer's future: its result (or error) is the message
                    await dispatch(item.result())
                    self.ask_layer()
                    continue
                try:
                    await dispatch(item)
                finally:
                    if not handled.done():
                        handled.set_result(None)
        finally:
            await self.finish(reader)

    async def _read_client(self, client_receive: Receive) -> None:
        loop = self.loop
        while True:
            message = await client_receive()
            handled = loop.create_future()
            self.ready.append((message, handled))  # type: ignore[union-attr]
            self.wake()
            await handled

    async def finish(self, reader: asyncio.Task[None] | None = None) -> None:
        """Stop listening and reading; returns once the waits withdrawn have ended.

        A third-party layer's receive runs in a task: its cancellation (and the layer's own
        clean-up of the channel) completes only when awaited, so the consumer ends after it.
        """
        self.closed = True
        self.waiter = None
        waits: list[asyncio.Future[Any]] = []
        if reader is not None:
            waits.append(reader)
        future = self.layer_future
        if future is not None:
            future.remove_done_callback(self.layer_done)
            future.cancel()
            waits.append(future)
        if reader is not None:
            reader.cancel()
        if waits:
            await asyncio.gather(*waits, return_exceptions=True)


def _hand_over(future: asyncio.Future[Any], message: dict[str, Any]) -> None:
    if not future.done():  # else the consumer was cancelled meanwhile
        future.set_result(message)


async def dispatch_loop(
    client_receive: Receive,
    next_layer_message: LayerSource | None,
    dispatch: Dispatch,
) -> None:
    """Feed messages from the client and the layer to ``dispatch``, one at a time, in order.

    Without a layer the client is read directly. With one, each client message is handled
    before the next is read, and the layer is asked for its next message only after the
    previous one was handled: nothing is read ahead, so the server's and the layer's flow
    control stay in force. Handlers always run in this task, in its context.
    """
    if next_layer_message is None:
        while True:
            await dispatch(await client_receive())
    inbox = Inbox(client_receive)
    inbox.listen(next_layer_message)
    await inbox.run(dispatch)


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
