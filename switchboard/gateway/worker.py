"""A worker process in gateway mode: runs the consumers of connections that gateways hold.

``python manage.py runworker --gateway`` runs a :class:`GatewayWorker` over the project's
``ASGI_APPLICATION``. It listens on a channel of its own and tells the gateways it is there
(``worker.hello``, then a heartbeat every ``beat``); each ``gateway.connect`` starts a consumer
instance (:class:`~switchboard.gateway.served.ServedConnection`), each ``gateway.event`` feeds
one. Stopping (:meth:`GatewayWorker.stop`, SIGTERM): the worker says it is leaving, lets each
consumer finish what it is doing (up to ``shutdown_timeout``), hands each connection back to
its gateway, and exits; the gateways move the connections to the other workers. A gateway not
heard from for ``gateway_lost_after`` seconds took its sockets with it: its consumers get
``websocket.disconnect`` (1006), as they would in-process.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from switchboard.gateway.delivery import (
    LayerHealth,
    receive_until_received,
    reserve_capacity,
    send_until_sent,
)
from switchboard.gateway.protocol.messages import (
    GATEWAY_CONNECT,
    GATEWAY_EVENT,
    GATEWAY_HEARTBEAT,
    GATEWAYS_GROUP,
    TO_WORKER,
    WORKER_CHANNEL_PREFIX,
    WORKERS_GROUP,
    MalformedMessage,
    Message,
    check,
    worker_heartbeat,
    worker_hello,
    worker_leaving,
    worker_release,
)
from switchboard.gateway.served import ServedConnection
from switchboard.layers.base import BaseChannelLayer

__all__ = ["GatewayWorker", "WorkerSettings", "WorkerStats"]

logger = logging.getLogger("switchboard.gateway.worker")

ASGIApp = Callable[..., Awaitable[None]]

# Code of the disconnect a consumer gets when its gateway (and so its socket) is gone.
GATEWAY_LOST_CODE = 1006


@dataclass
class WorkerSettings:
    beat: float = 1.0
    # What gateways wait for a heartbeat before they move a worker's connections
    # (GatewaySettings.lost_after): a worker that did not run that long ends its consumers.
    lost_after: float = 3.5
    # Longer than the gateways' patience with workers: ending consumers whose gateway lives
    # would cost more than keeping those of a dead one a little longer.
    gateway_lost_after: float = 10.0
    capacity: int = 0  # connections this worker takes at most; 0: no limit
    shutdown_timeout: float = 10.0
    reorder_window: int = 1000


@dataclass
class WorkerStats:
    connections_started: int = 0
    resumed: int = 0
    released: int = 0
    failures: int = 0
    events_in: int = 0
    stale_messages: int = 0
    malformed_messages: int = 0


def default_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


class GatewayWorker:
    """Serves relayed connections with ``application`` (see the module docs)."""

    def __init__(
        self,
        application: ASGIApp,
        channel_layer: BaseChannelLayer,
        settings: WorkerSettings | None = None,
        name: str | None = None,
    ) -> None:
        self.application = application
        self.layer = channel_layer
        self.settings = settings or WorkerSettings()
        self.name = name or default_name()
        self.channel = ""
        self.served: dict[str, ServedConnection] = {}
        self.gateways: dict[str, float] = {}  # channel -> last heard (monotonic)
        self.health = LayerHealth()
        self.stats = WorkerStats()
        self.leaving = False
        self._stopping: asyncio.Event | None = None
        self._posts: set[asyncio.Future[Any]] = set()

    # -- running ----------------------------------------------------------------------------

    async def run(self) -> None:
        """Serve until :meth:`stop`; then hand every connection back and return."""
        self._stopping = stopping = asyncio.Event()
        layer = self.layer
        reserve_capacity(layer)
        self.channel = await layer.new_channel(WORKER_CHANNEL_PREFIX)
        await layer.group_add(WORKERS_GROUP, self.channel)
        await self._announce(worker_hello(self.channel, self.name, self.settings.capacity))
        logger.info("Gateway worker %s (%s) serving", self.name, self.channel)
        tasks = [
            asyncio.ensure_future(self._receive_loop()),
            asyncio.ensure_future(self._beat_loop()),
        ]
        stop_waiter = asyncio.ensure_future(stopping.wait())
        try:
            done, _ = await asyncio.wait([*tasks, stop_waiter], return_when="FIRST_COMPLETED")
            for task in done:
                if task is not stop_waiter and not task.cancelled() and task.exception():
                    raise task.exception()  # type: ignore[misc]
        finally:
            stop_waiter.cancel()
            await self._leave(tasks)

    def stop(self) -> None:
        """Ask a running worker to leave (safe from a signal handler via the loop)."""
        if self._stopping is not None:
            self._stopping.set()

    async def _leave(self, tasks: list[asyncio.Task[None]]) -> None:
        self.leaving = True
        served = list(self.served.values())
        for connection in served:
            connection.parked = True  # from now on its consumer reads nothing new
        with contextlib.suppress(Exception):
            await self._announce(worker_leaving(self.channel))
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.settings.shutdown_timeout
        if served:
            logger.info("Handing %d connection(s) back to their gateways", len(served))
        # Messages still arriving for them go nowhere: the gateway sends them to the next one.
        await asyncio.gather(*(s.release(deadline) for s in served), return_exceptions=True)
        self.stats.released += len(served)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        pending = [s.task for s in served if s.task is not None and not s.task.done()]
        if pending:
            await asyncio.wait(pending, timeout=1.0)
        # The releases must reach the gateways before the process ends.
        if self._posts:
            await asyncio.wait(list(self._posts), timeout=max(deadline - loop.time(), 2.0))
        with contextlib.suppress(Exception):
            await self.layer.group_discard(WORKERS_GROUP, self.channel)

    async def _announce(self, message: Message) -> None:
        await self.layer.group_send(GATEWAYS_GROUP, message)

    def _hello(self) -> Message:
        return worker_heartbeat(self.channel, self.name, self.settings.capacity, len(self.served))

    async def _beat_loop(self) -> None:
        layer, settings = self.layer, self.settings
        last = time.monotonic()
        while True:
            await asyncio.sleep(settings.beat)
            now = time.monotonic()
            if now - last > settings.lost_after:
                self._woke_up(now - last)
            last = now
            try:
                await layer.group_add(WORKERS_GROUP, self.channel)
                await self._announce(self._hello())
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                self.health.failed(exc)
            else:
                self.health.ok()
            self._check_gateways(time.monotonic())

    def _woke_up(self, silent: float) -> None:
        # This process did not run for longer than gateways wait for a heartbeat (it was
        # stopped, or its loop blocked): they have moved its connections to other workers, so
        # its consumers are stale. Ended without a word: the gateways dropped them already.
        served = list(self.served.values())
        logger.warning(
            "Worker %s did not run for %.1fs: the gateways have moved its connections; "
            "ending its %d consumer(s)",
            self.name,
            silent,
            len(served),
        )
        for connection in served:
            connection.end()
            self.forget(connection)

    def _check_gateways(self, now: float) -> None:
        if not self.health.healthy:
            return
        since = self.health.healthy_since
        limit = self.settings.gateway_lost_after
        gone = {g for g, seen in self.gateways.items() if now - max(seen, since) > limit}
        if not gone:
            return
        for gateway in gone:
            del self.gateways[gateway]
        for served in list(self.served.values()):
            if served.gateway in gone:
                served.client_lost(GATEWAY_LOST_CODE)
        logger.warning("Gateway(s) %s not heard from for %.0fs", ", ".join(gone), limit)

    async def _receive_loop(self) -> None:
        layer, channel = self.layer, self.channel
        while True:
            message = await receive_until_received(layer, channel, self.health)
            try:
                self._dispatch(check(message, TO_WORKER))
            except MalformedMessage as exc:
                self.stats.malformed_messages += 1
                logger.warning("Worker %s: dropped a malformed message: %s", self.name, exc)

    def _dispatch(self, message: Message) -> None:
        kind = message["type"]
        if kind == GATEWAY_EVENT:
            served = self.served.get(message["connection"])
            if served is None or served.epoch != message["epoch"] or served.ended:
                self.stats.stale_messages += 1
                if served is None:
                    self._unknown(message)
                return
            self.stats.events_in += 1
            served.deliver(message["seq"], message["event"])
        elif kind == GATEWAY_CONNECT:
            self._connect(message)
        elif kind == GATEWAY_HEARTBEAT:
            gateway = message["gateway"]
            if gateway not in self.gateways and not self.leaving:
                # A gateway new to this worker hears of it now, not at the next beat.
                self.post(gateway, self._hello())
            self.gateways[gateway] = time.monotonic()

    def _connect(self, message: Message) -> None:
        cid = message["connection"]
        self.gateways[message["gateway"]] = time.monotonic()
        current = self.served.get(cid)
        if current is not None and current.epoch == message["epoch"]:
            return  # sent again: the gateway heard nothing yet from this consumer
        old = self.served.pop(cid, None)
        if old is not None:
            old.end()
        if self.leaving:
            self.post(
                message["gateway"],
                worker_release(
                    cid, message["epoch"], sent=0, acked=message["next_seq"] - 1, movable=True
                ),
            )
            return
        served = self.served[cid] = ServedConnection(self, message)
        self.stats.connections_started += 1
        if served.resumed:
            self.stats.resumed += 1
        served.start()

    def _unknown(self, message: Message) -> None:
        # An event for a connection this worker does not serve (it ended it when its gateway
        # went quiet): hand it back, so its gateway moves it rather than waits forever. The
        # connection id starts with its gateway's channel (hub.new_connection_id).
        gateway = message["connection"].rpartition("#")[0]
        if gateway and gateway in self.gateways:
            self.post(
                gateway,
                worker_release(
                    message["connection"], message["epoch"], sent=0, acked=0, movable=True
                ),
            )

    def forget(self, served: ServedConnection) -> None:
        if self.served.get(served.id) is served:
            del self.served[served.id]

    # -- sending ----------------------------------------------------------------------------

    async def send(self, gateway: str, message: Message, served: ServedConnection) -> None:
        """A consumer's event, sent before its ``send()`` returns."""
        await send_until_sent(self.layer, gateway, message, self.health, lambda: served.ended)

    def post(self, gateway: str, message: Message) -> None:
        """Send without waiting (acks, releases, the end of a consumer)."""
        task = asyncio.ensure_future(
            send_until_sent(self.layer, gateway, message, self.health, self._gateway_gone(gateway))
        )
        self._posts.add(task)
        task.add_done_callback(self._posted)

    def _gateway_gone(self, gateway: str) -> Callable[[], bool]:
        return lambda: gateway not in self.gateways

    def _posted(self, task: asyncio.Future[Any]) -> None:
        self._posts.discard(task)
        if not task.cancelled() and task.exception() is not None:
            logger.error("Worker %s: a message was not sent: %s", self.name, task.exception())
