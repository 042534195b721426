"""One gateway process's side of the layer: its channel, the workers it knows, its connections.

The hub receives everything sent to the gateway (``worker.*`` messages, see
:mod:`~switchboard.gateway.protocol.messages`) on one channel of its own, and hands each
connection's messages to that connection (:mod:`~switchboard.gateway.relayed`), which acts on
them in its own task: a slow socket holds up nobody else. Every ``beat`` it says it is alive to the
workers, notices workers gone silent (their connections move), closes connections that waited
too long for a worker (1013), and, while no worker can take a connection, warns every
``warn_every`` seconds.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import time
import weakref
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from switchboard.gateway.delivery import (
    LayerHealth,
    receive_until_received,
    reserve_capacity,
    send_until_sent,
)
from switchboard.gateway.protocol.connection_states import RelayState
from switchboard.gateway.protocol.directory import KnownWorker, WorkerDirectory
from switchboard.gateway.protocol.messages import (
    GATEWAY_CHANNEL_PREFIX,
    GATEWAYS_GROUP,
    TO_GATEWAY,
    WORKER_HEARTBEAT,
    WORKER_HELLO,
    WORKER_LEAVING,
    WORKERS_GROUP,
    MalformedMessage,
    Message,
    check,
    gateway_heartbeat,
)
from switchboard.layers.base import BaseChannelLayer

if TYPE_CHECKING:
    from switchboard.gateway.relayed import RelayedConnection

__all__ = ["GatewayHub", "GatewaySettings", "GatewayStats", "LayerNotShared", "running_hubs"]

logger = logging.getLogger("switchboard.gateway")


# The hubs started in this process (one per gateway application), for the metrics.
_running: weakref.WeakSet[GatewayHub] = weakref.WeakSet()


def running_hubs() -> list[GatewayHub]:
    return list(_running)


# A worker owes the connection an answer to its gateway.connect (sent again if none comes).
ANSWER_AWAITED = frozenset((RelayState.CONNECTING, RelayState.RESUMING))


class LayerNotShared(RuntimeError):
    """Gateway mode was asked for over a layer whose messages never leave the process."""


@dataclass
class GatewaySettings:
    """How a gateway relays (``switchboard serve --gateway`` sets these from its options)."""

    layer_alias: str = "default"
    # A connection without a worker (none running, or its worker gone) this long is closed
    # with 1013, try again later.
    wait_timeout: float = 30.0
    # A new connection's wait, capped below the server's --ws-handshake-timeout (which would
    # answer it 500 first); None: wait_timeout.
    first_wait_timeout: float | None = None
    beat: float = 1.0  # seconds between heartbeats, both ways
    lost_after: float = 3.5  # a worker silent this long is lost
    warn_every: float = 5.0
    # Client messages kept per connection until a worker's consumer read them; when full the
    # gateway stops reading that socket until the worker catches up.
    buffer_messages: int = 1000
    buffer_bytes: int = 8 << 20
    reorder_window: int = 1000  # worker events held ahead of a missing one
    # A layer can lose a message in flight (a Redis that dies between taking a PUBLISH and
    # handing it on). A connect not answered and the oldest client message not acknowledged
    # are sent again after this long without progress (the worker drops a copy it has).
    # Worker events are not kept by the worker, so one missing for gap_timeout cannot come
    # back: the socket is closed (1011).
    resend_after: float = 2.0
    gap_timeout: float = 5.0

    def __post_init__(self) -> None:
        for name in ("wait_timeout", "beat", "lost_after", "warn_every"):
            if not getattr(self, name) > 0:
                raise ValueError(f"gateway {name} must be a positive number of seconds")
        if self.lost_after <= self.beat:
            raise ValueError("gateway lost_after must be longer than its beat")


@dataclass
class GatewayStats:
    """Counters for the metrics (switchboard.metrics reads them)."""

    connections_relayed: int = 0
    moves: int = 0  # connections handed to another worker
    resumed: int = 0  # ... whose new consumer accepted
    closed_unmovable: int = 0  # 1012
    closed_waiting: int = 0  # 1013
    consumer_failures: int = 0  # 1011 / 500
    buffer_full: int = 0  # times a connection's buffer filled and its socket stopped reading
    stale_messages: int = 0  # from a worker the connection had left
    malformed_messages: int = 0
    workers_lost: int = 0
    client_to_worker: int = 0
    worker_to_client: int = 0
    # Seconds between a client message reaching the gateway and its worker acknowledging
    # it: read by the metrics histogram, emptied by it.
    ack_latencies: list[float] = field(default_factory=list)


class GatewayHub:
    """The layer side of one gateway process (see the module docs)."""

    def __init__(
        self, settings: GatewaySettings, get_layer: Callable[[str], BaseChannelLayer | None]
    ) -> None:
        self.settings = settings
        self._get_layer = get_layer
        self.layer: BaseChannelLayer | None = None
        self.channel = ""
        self.directory = WorkerDirectory(settings.lost_after)
        self.connections: dict[str, RelayedConnection] = {}
        self.waiting: dict[str, RelayedConnection] = {}  # FIFO: oldest first
        self.health = LayerHealth()
        self.stats = GatewayStats()
        self._ids = itertools.count(1)
        self._tasks: list[asyncio.Task[None]] = []
        self._started: asyncio.Future[None] | None = None
        self._last_warning = 0.0

    # -- start and stop ---------------------------------------------------------------------

    def require_shared_layer(self) -> BaseChannelLayer:
        """The layer, refused (:class:`LayerNotShared`) when it cannot reach workers."""
        alias = self.settings.layer_alias
        try:
            layer = self._get_layer(alias)
        except Exception as exc:
            raise LayerNotShared(f"--gateway: channel layer {alias!r} is unusable: {exc}") from exc
        if layer is None:
            raise LayerNotShared(
                f"--gateway needs a channel layer that spans processes, and no layer "
                f"{alias!r} is configured: set CHANNEL_LAYERS[{alias!r}] to the IPC layer "
                "(switchboard.layers.ipc.IPCChannelLayer, one machine) or the Redis layer "
                "(switchboard.layers.redis.RedisChannelLayer, many machines)"
            )
        if not layer.spans_processes:
            raise LayerNotShared(
                f"--gateway needs a channel layer that spans processes, but CHANNEL_LAYERS"
                f"[{alias!r}] is {type(layer).__name__}, whose messages never leave the "
                "process, so no worker could reach the gateway's sockets: use the IPC layer "
                "(switchboard.layers.ipc.IPCChannelLayer, one machine) or the Redis layer "
                "(switchboard.layers.redis.RedisChannelLayer, many machines)"
            )
        return layer

    async def start(self) -> None:
        """Join the layer and start listening (once; later calls wait for the first)."""
        if self._started is not None:
            return await asyncio.shield(self._started)
        self._started = asyncio.get_running_loop().create_future()
        try:
            layer = self.layer = self.require_shared_layer()
            reserve_capacity(layer)
            self.channel = await layer.new_channel(GATEWAY_CHANNEL_PREFIX)
            await layer.group_add(GATEWAYS_GROUP, self.channel)
            self._tasks = [
                asyncio.ensure_future(self._receive_loop()),
                asyncio.ensure_future(self._beat_loop()),
            ]
            _running.add(self)
            logger.info("Gateway %s relays WebSockets to workers", self.channel)
        except BaseException as exc:
            self._started.set_exception(exc)
            self._started.exception()  # retrieved: raised here, not logged as unretrieved
            raise
        self._started.set_result(None)

    async def stop(self) -> None:
        _running.discard(self)
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks = []
        if self.layer is not None and self.channel:
            with contextlib.suppress(Exception):
                await self.layer.group_discard(GATEWAYS_GROUP, self.channel)

    # -- connections ------------------------------------------------------------------------

    def new_connection_id(self) -> str:
        # The gateway's channel is unique across gateways; the counter within it.
        return f"{self.channel}#{next(self._ids)}"

    def add(self, connection: RelayedConnection) -> None:
        self.connections[connection.id] = connection
        self.stats.connections_relayed += 1

    def remove(self, connection: RelayedConnection) -> None:
        self.connections.pop(connection.id, None)
        self.waiting.pop(connection.id, None)
        self.give_back(connection)

    def request_worker(self, connection: RelayedConnection) -> None:
        """Find ``connection`` a worker now, or queue it for the next one that can take it."""
        worker = self.directory.choose()
        if worker is None or self.waiting:
            self.waiting[connection.id] = connection
            self._assign_waiting()
            return
        self._assign(connection, worker)

    def give_back(self, connection: RelayedConnection) -> None:
        """``connection`` no longer counts against its worker."""
        worker = connection.worker
        if worker is not None:
            worker.connections.discard(connection.id)

    def _assign(self, connection: RelayedConnection, worker: KnownWorker) -> None:
        worker.connections.add(connection.id)
        connection.post(("assigned", worker))

    def _assign_waiting(self) -> None:
        while self.waiting:
            worker = self.directory.choose()
            if worker is None:
                return
            cid = next(iter(self.waiting))
            self._assign(self.waiting.pop(cid), worker)

    async def send(
        self, channel: str, message: Message, abandon: Callable[[], bool] | None = None
    ) -> bool:
        assert self.layer is not None
        return await send_until_sent(self.layer, channel, message, self.health, abandon)

    # -- the layer --------------------------------------------------------------------------

    async def _receive_loop(self) -> None:
        assert self.layer is not None
        layer, channel = self.layer, self.channel
        while True:
            message = await receive_until_received(layer, channel, self.health)
            try:
                self._dispatch(check(message, TO_GATEWAY))
            except MalformedMessage as exc:
                self.stats.malformed_messages += 1
                logger.warning("Gateway %s: dropped a malformed message: %s", channel, exc)

    def _dispatch(self, message: Message) -> None:
        kind = message["type"]
        if kind == WORKER_HELLO or kind == WORKER_HEARTBEAT:
            new = self.directory.heard(message, time.monotonic())
            if new is not None:
                logger.info("Worker %s (%s) joined", new.name, new.channel)
                self._assign_waiting()
            return
        if kind == WORKER_LEAVING:
            known = self.directory.leaving(message["worker"])
            if known is not None:
                logger.info("Worker %s (%s) is leaving", known.name, known.channel)
            return
        connection = self.connections.get(message["connection"])
        if connection is None or connection.epoch != message["epoch"]:
            self.stats.stale_messages += 1
            return
        connection.post(("message", message))

    async def _beat_loop(self) -> None:
        assert self.layer is not None
        layer, settings = self.layer, self.settings
        while True:
            try:
                # Joined again each beat: a Redis that restarted without its data forgot it.
                await layer.group_add(GATEWAYS_GROUP, self.channel)
                await layer.group_send(
                    WORKERS_GROUP, gateway_heartbeat(self.channel, len(self.connections))
                )
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                self.health.failed(exc)
            else:
                self.health.ok()
            self.tick(time.monotonic())
            await asyncio.sleep(settings.beat)

    def tick(self, now: float) -> None:
        """Lost workers, waits that timed out, and the no-worker warning, as of ``now``."""
        if self.health.healthy:
            for worker in self.directory.lost(now, self.health.healthy_since):
                if worker.leaving and not worker.connections:
                    logger.info("Worker %s (%s) left", worker.name, worker.channel)
                    continue
                self._lost(worker)
        settings = self.settings
        for connection in list(self.connections.values()):
            deadline = connection.deadline
            if deadline is not None and now > deadline:
                connection.deadline = None
                self.waiting.pop(connection.id, None)
                connection.post(("timeout", None))
            unanswered = connection.buffer or connection.state in ANSWER_AWAITED
            if unanswered and now - connection.progress_at > settings.resend_after:
                connection.progress_at = now
                connection.post(("resend", None))
            gap_since = connection.gap_since
            if gap_since is not None and now - gap_since > settings.gap_timeout:
                connection.gap_since = None
                connection.post(("gap", None))
        if not self.directory.can_take() and now - self._last_warning >= self.settings.warn_every:
            self._last_warning = now
            logger.warning(
                "Gateway %s: no worker is taking connections (%d waiting); start workers with "
                "`python manage.py runworker --gateway` on the same channel layer",
                self.channel,
                len(self.waiting),
            )

    def _lost(self, worker: KnownWorker) -> None:
        self.stats.workers_lost += 1
        worker.gone = True
        logger.warning(
            "Worker %s (%s) lost: not heard from for %.1fs; moving its %d connection(s)",
            worker.name,
            worker.channel,
            self.settings.lost_after,
            len(worker.connections),
        )
        for cid in list(worker.connections):
            connection = self.connections.get(cid)
            if connection is not None:
                connection.post(("lost", worker))
        worker.connections.clear()

    def snapshot(self) -> dict[str, Any]:
        """Connections per worker, for the metrics."""
        return {w.name: len(w.connections) for w in self.directory.workers.values()}
