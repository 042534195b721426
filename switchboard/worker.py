"""Background worker: runs an ASGI application for messages arriving on named channels.

Each listened-to channel gets one long-lived application instance with the scope
``{"type": "channel", "channel": <name>}``; its messages reach that instance in order through
``receive()``. Usually the application is a ``ChannelNameRouter`` mapping channel names to
consumers, as with Django Channels' worker.

This module knows nothing of Django; the ``runworker`` management command wires it up.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

from switchboard.layers.base import BaseChannelLayer

__all__ = ["Worker"]

logger = logging.getLogger("switchboard.worker")

ASGIApp = Callable[..., Awaitable[None]]


class _Instance:
    """One running application instance and the messages waiting for it."""

    __slots__ = ("channel", "queue", "task", "consumed", "waiting")

    def __init__(self, channel: str, queue_size: int) -> None:
        self.channel = channel
        # Bounded so a slow consumer leaves messages in the layer, where capacity applies.
        self.queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue(queue_size)
        self.task: asyncio.Task[None] | None = None
        self.consumed = 0
        self.waiting = False  # True while it waits in receive(): done with earlier messages.

    async def receive(self) -> dict[str, Any]:
        self.waiting = True
        try:
            message = await self.queue.get()
        finally:
            self.waiting = False
        self.consumed += 1
        return message

    @property
    def busy(self) -> bool:
        if self.task is None or self.task.done():
            return False
        return not (self.waiting and self.queue.empty())


class Worker:
    """Receives from ``channels`` on ``channel_layer`` and feeds each channel's application.

    ``await worker.run()`` runs until cancelled (or :meth:`stop` is called); on the way out it
    stops taking new messages, gives instances ``shutdown_timeout`` seconds to finish the ones
    they already hold, then cancels them.
    """

    def __init__(
        self,
        application: ASGIApp,
        channels: Iterable[str],
        channel_layer: BaseChannelLayer,
        *,
        queue_size: int = 16,
        shutdown_timeout: float = 5.0,
    ) -> None:
        self.channels = list(dict.fromkeys(channels))
        if not self.channels:
            raise ValueError("A worker needs at least one channel to listen on")
        if channel_layer is None:
            raise ValueError("A worker needs a channel layer")
        channel_layer.valid_channel_names(self.channels, receive=True)
        self.application = application
        self.channel_layer = channel_layer
        self.queue_size = queue_size
        self.shutdown_timeout = shutdown_timeout
        self.instances: dict[str, _Instance] = {}
        self._stopping: asyncio.Event | None = None

    async def run(self) -> None:
        self._stopping = asyncio.Event()
        listeners = [asyncio.ensure_future(self._listen(channel)) for channel in self.channels]
        try:
            stop_waiter = asyncio.ensure_future(self._stopping.wait())
            done, _ = await asyncio.wait(
                [*listeners, stop_waiter], return_when=asyncio.FIRST_COMPLETED
            )
            stop_waiter.cancel()
            for task in done:
                if task is not stop_waiter and not task.cancelled() and task.exception():
                    raise task.exception()  # type: ignore[misc]  # A layer failure: surface it.
        finally:
            self._stopping.set()
            for task in listeners:
                task.cancel()
            await asyncio.gather(*listeners, return_exceptions=True)
            await self._shut_down_instances()

    def stop(self) -> None:
        """Ask a running worker to finish (safe to call from a signal handler)."""
        if self._stopping is not None:
            self._stopping.set()

    async def _listen(self, channel: str) -> None:
        while True:
            message = await self.channel_layer.receive(channel)
            instance = self._ensure_instance(channel)
            await instance.queue.put(message)

    def _ensure_instance(self, channel: str) -> _Instance:
        instance = self.instances.get(channel)
        if instance is None:
            instance = self.instances[channel] = _Instance(channel, self.queue_size)
        if instance.task is None or instance.task.done():
            self._start(instance)
        return instance

    def _start(self, instance: _Instance) -> None:
        instance.consumed = 0
        scope = {"type": "channel", "channel": instance.channel}
        instance.task = asyncio.ensure_future(
            self.application(scope, instance.receive, self._send_unsupported)
        )
        instance.task.add_done_callback(lambda task: self._instance_done(instance, task))

    def _instance_done(self, instance: _Instance, task: asyncio.Task[None]) -> None:
        if not task.cancelled() and task.exception() is not None:
            logger.error(
                "Application for channel %r raised",
                instance.channel,
                exc_info=task.exception(),
            )
        if self._stopping is not None and self._stopping.is_set():
            return
        if instance.queue.empty():
            return
        if instance.consumed:
            # Messages it had not reached yet go to a fresh instance, in order.
            self._start(instance)
        else:
            # It died before reading anything: restarting would only repeat that.
            dropped = instance.queue.qsize()
            while not instance.queue.empty():
                instance.queue.get_nowait()
            logger.error(
                "Dropped %d message(s) for channel %r: its application exited without "
                "receiving any",
                dropped,
                instance.channel,
            )

    @staticmethod
    async def _send_unsupported(message: dict[str, Any]) -> None:
        raise RuntimeError(
            "A worker's application instance has no client to send to; "
            "use the channel layer to send messages instead"
        )

    async def _shut_down_instances(self) -> None:
        tasks = [i.task for i in self.instances.values() if i.task is not None]
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.shutdown_timeout
        # Let instances finish what they were already handed.
        while loop.time() < deadline and any(i.busy for i in self.instances.values()):
            await asyncio.sleep(0.01)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self.instances.clear()
