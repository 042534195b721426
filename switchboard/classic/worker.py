"""The Channels 1 worker: receives from every routed channel, runs each message's consumer.

``python manage.py runworker`` in a Channels 1 project runs a :class:`ClassicWorker` over the
routing of its layer (the ``ROUTING`` of the ``CHANNEL_LAYERS`` entry). Consumers are sync
callables run in a pool of ``threads``; what a consumer sends is held until it returns, then
sent in order (a consumer that raises still sends what it sent before, as Channels 1.1 did;
one that asks to be consumed later sends nothing). Around the consumer, as Channels 1 did:

- a ``websocket.connect`` consumer that returns without accepting, sending or closing accepts
  the socket (as the talks' examples expect); one that raises rejects it;
- ``ConsumeLater`` puts the message back at the end of its channel after a pause that doubles
  (20 ms up to 1 s), or as soon as another message of its connection was handled here (the
  one it waits for, as a rule), up to :data:`MAX_RETRIES` times;
- a message no route matches is dropped, said once per channel in the log (a
  ``websocket.connect`` is also refused, rather than left to time out);
- ``http.request`` no route takes goes to Django's views
  (:mod:`~switchboard.classic.http`);
- Django's database connections are tidied after each consumer, as after a request.
"""

from __future__ import annotations

import asyncio
import contextlib
import fnmatch
import logging
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from asgiref.sync import sync_to_async

from switchboard.classic.message import HeldSends, Message, held_sends
from switchboard.classic.routing import Router
from switchboard.exceptions import ConsumeLater
from switchboard.gateway.delivery import LayerHealth, receive_until_received, send_until_sent
from switchboard.layers.base import BaseChannelLayer

__all__ = ["MAX_RETRIES", "RETRIES_KEY", "ClassicWorker", "select_channels"]

logger = logging.getLogger("switchboard.worker")

MAX_RETRIES = 10
# ConsumeLater: the pause before a message goes back on its channel, doubling per retry.
RETRY_PAUSE = 0.02
MAX_RETRY_PAUSE = 1.0
# Carried in a message put back by ConsumeLater; taken out before a consumer sees it.
RETRIES_KEY = "__switchboard_retries__"
HTTP_REQUEST = "http.request"
CONNECT = "websocket.connect"
# What answers a reply channel: a WebSocket reply, or an HTTP response's first message.
ANSWERS = ("accept", "text", "bytes", "close", "status")


def select_channels(
    routed: Iterable[str], only: Iterable[str] = (), exclude: Iterable[str] = ()
) -> list[str]:
    """The routed channels a worker listens on: ``only`` and ``exclude`` are glob patterns,
    as ``runworker --only-channels/--exclude-channels`` take them."""
    only, exclude = list(only), list(exclude)
    chosen = []
    for name in sorted(set(routed)):
        if only and not any(fnmatch.fnmatchcase(name, p) for p in only):
            continue
        if any(fnmatch.fnmatchcase(name, p) for p in exclude):
            continue
        chosen.append(name)
    return chosen


class ClassicWorker:
    """Runs ``router``'s consumers for messages on ``channels`` (see the module docs)."""

    def __init__(
        self,
        router: Router,
        channel_layer: BaseChannelLayer,
        channels: Iterable[str],
        threads: int = 4,
    ) -> None:
        self.router = router
        self.layer = channel_layer
        self.channels = list(channels)
        if not self.channels:
            raise ValueError("A worker needs at least one channel to listen on")
        if threads < 1:
            raise ValueError("A worker needs at least one thread")
        self.threads = threads
        self.health = LayerHealth()
        self.handled = 0
        self.failed = 0
        self._unrouted: set[str] = set()
        self._stopping: asyncio.Event | None = None
        self._executor: ThreadPoolExecutor | None = None
        self._views: Any = None
        # ConsumeLater messages in their pause: each task and the event that ends it early.
        self._requeues: dict[asyncio.Task[None], asyncio.Event] = {}
        self._waiting: dict[str, set[asyncio.Event]] = {}  # by reply channel

    def stop(self) -> None:
        if self._stopping is not None:
            self._stopping.set()

    async def run(self) -> None:
        self._stopping = stopping = asyncio.Event()
        self._executor = ThreadPoolExecutor(self.threads, thread_name_prefix="switchboard-worker")
        slots = asyncio.Semaphore(self.threads)
        running: set[asyncio.Task[None]] = set()

        async def listen(channel: str) -> None:
            while True:
                content = await receive_until_received(self.layer, channel, self.health)
                # Each channel holds at most the one message waiting for a thread; the rest
                # stay in the layer, for other workers to take.
                try:
                    await slots.acquire()
                except asyncio.CancelledError:  # stopping: back on its channel, not lost
                    await asyncio.shield(self._send(channel, content))
                    raise
                task = asyncio.ensure_future(self.handle(channel, content))
                running.add(task)
                task.add_done_callback(done)

        def done(task: asyncio.Task[None]) -> None:
            running.discard(task)
            slots.release()

        listeners = [asyncio.ensure_future(listen(channel)) for channel in self.channels]
        try:
            await stopping.wait()
        finally:
            for listener in listeners:
                listener.cancel()
            await asyncio.gather(*listeners, return_exceptions=True)
            if running:  # the messages already taken are finished, not dropped
                await asyncio.wait(running)
            for wake in self._requeues.values():
                wake.set()  # each puts its message back at once
            if self._requeues:
                await asyncio.wait(list(self._requeues))
            self._executor.shutdown(wait=False)

    async def handle(self, channel: str, content: dict[str, Any]) -> None:
        """Run the consumer of one message and send what it sent."""
        retries = content.pop(RETRIES_KEY, 0)
        message = Message(content, channel, self.layer)
        found = self.router.match(message)
        if found is None and channel == HTTP_REQUEST:
            found = (self._django_views(), {})
        if found is None:
            await self._unmatched(message)
            return
        consumer, kwargs = found
        call = sync_to_async(_call, thread_sensitive=False, executor=self._executor)
        sends = HeldSends()
        try:
            await call(consumer, message, kwargs, sends)
        except ConsumeLater:
            await self._later(channel, content, retries, message.reply_channel)
            return
        except Exception:
            self.failed += 1
            logger.exception("Error in consumer %s for a message on %r", _name(consumer), channel)
            # What it sent before it raised still goes, as Channels 1.1 did (its worker sent
            # the held messages in a finally); then a socket it left unanswered is refused.
            await self._flush(sends)
            reply = message.reply_channel
            if reply is not None and not _answered(sends, reply.name):
                await self._after_failure(message)  # a 403, or a 500 for an HTTP request
            return
        self.handled += 1
        await self._flush(sends)
        if message.reply_channel is not None:
            # Messages of this connection put back to wait for this one go back now.
            for wake in self._waiting.pop(message.reply_channel.name, ()):
                wake.set()
        if channel == CONNECT and message.reply_channel is not None:
            if not _answered(sends, message.reply_channel.name):
                await self._send(message.reply_channel.name, {"accept": True})

    async def _flush(self, sends: HeldSends) -> None:
        for held in sends.held[sends.flushed :]:  # enforce_ordering may have sent the first
            if held.group:
                await held.layer.group_send(held.target, held.content)
            else:
                await send_until_sent(held.layer, held.target, held.content, self.health)

    async def _send(self, channel: str, content: dict[str, Any]) -> None:
        await send_until_sent(self.layer, channel, content, self.health)

    async def _later(
        self, channel: str, content: dict[str, Any], retries: int, reply: Any = None
    ) -> None:
        if retries >= MAX_RETRIES:
            logger.warning(
                "Dropped a message on %r: its consumer asked to consume it later %d times",
                channel,
                MAX_RETRIES,
            )
            return
        # Back on its channel after a pause that doubles: put back at once, a message that
        # waits for another (enforce_ordering) would spend its retries before that one ran.
        pause = min(RETRY_PAUSE * 2**retries, MAX_RETRY_PAUSE)
        # Ended early by an event, not by cancelling the task: a task cancelled before its
        # first step never runs its body, and the message it holds would be lost.
        wake = asyncio.Event()
        task = asyncio.ensure_future(self._requeue(wake, pause, channel, content, retries))
        self._requeues[task] = wake
        task.add_done_callback(lambda done: self._requeues.pop(done, None))
        if reply is not None:
            # A message of the same connection handled here ends the pause early (the one it
            # waits for, as likely as not); handled by another worker, the pause runs out.
            self._waiting.setdefault(reply.name, set()).add(wake)
            task.add_done_callback(lambda done: self._forget_waiting(reply.name, wake))

    def _forget_waiting(self, reply: str, wake: asyncio.Event) -> None:
        waiting = self._waiting.get(reply)
        if waiting is not None:
            waiting.discard(wake)
            if not waiting:
                del self._waiting[reply]

    async def _requeue(
        self, wake: asyncio.Event, pause: float, channel: str, content: dict[str, Any], retries: int
    ) -> None:
        # Only a pause that ran out counts as a retry: woken early (the message it waited for
        # was handled), or by a stopping worker (which puts it back rather than lose it), not.
        try:
            async with asyncio.timeout(pause):
                await wake.wait()
        except TimeoutError:
            retries += 1
        await self._send(channel, {**content, RETRIES_KEY: retries})

    async def _unmatched(self, message: Message) -> None:
        channel = message.channel.name
        if channel not in self._unrouted:
            self._unrouted.add(channel)
            logger.warning(
                "No route matches a message on %r (%s); dropped (said once per channel)",
                channel,
                ", ".join(f"{k}={v!r:.40}" for k, v in message.content.items() if k != "headers"),
            )
        if channel == CONNECT and message.reply_channel is not None:
            await self._send(message.reply_channel.name, {"close": True})

    async def _after_failure(self, message: Message) -> None:
        reply = message.reply_channel
        if reply is None:
            return
        channel = message.channel.name
        if channel == CONNECT:
            await self._send(reply.name, {"close": True})
        elif channel == HTTP_REQUEST:
            await self._send(
                reply.name,
                {
                    "status": 500,
                    "headers": [[b"content-type", b"text/plain; charset=utf-8"]],
                    "content": b"Internal Server Error\n",
                },
            )

    def _django_views(self) -> Any:
        if self._views is None:
            from switchboard.classic.http import DjangoViews

            self._views = DjangoViews()
        return self._views


def _call(consumer: Any, message: Message, kwargs: dict[str, Any], sends: HeldSends) -> None:
    from django.db import close_old_connections

    close_old_connections()
    try:
        with held_sends(sends):
            consumer(message, **kwargs)
    finally:
        with contextlib.suppress(Exception):
            close_old_connections()


def _answered(sends: HeldSends, reply: str) -> bool:
    pairs = [(h.target, h.content) for h in sends.held if not h.group] + sends.sent_to
    return any(
        target == reply and any(key in content for key in ANSWERS) for target, content in pairs
    )


def _name(consumer: Any) -> str:
    return getattr(consumer, "__qualname__", None) or repr(consumer)
