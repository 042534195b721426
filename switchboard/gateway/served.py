"""One relayed connection as its worker serves it: a consumer instance and its event streams.

The worker calls the project's application with the connection's scope (unpacked from
``gateway.connect``), a ``receive`` fed with the client's events in order, and a ``send``
that numbers the consumer's events and sends them to the gateway. The consumer cannot tell
this from a socket of its own: ``send`` refuses what the server would refuse in-process
(a message before ``websocket.accept``, anything after the close), and the client's
messages arrive once each, in order, after ``websocket.connect``.

Acknowledgements: what the consumer has *handled* is acknowledged to the gateway
(``worker.ack``) after :data:`ACK_DELAY` or every :data:`ACK_EVERY` messages, whichever comes
first, so the gateway can forget it. A consumer has handled everything it read when it asks
for the next message with no handler of its own still running (a consumer handling messages
concurrently says so through ``scope["switchboard"]["busy"]``, see
:func:`~switchboard.gateway.protocol.scope.report_busy`). So a crash gives what was being
handled to the next worker again: at least once, never lost.

When the worker stops, the connection is *parked*: ``receive`` gives nothing more, and once
the consumer is idle (it finished what it was doing) the connection is released to the gateway
with the number of the last message handled. A consumer still busy at the deadline is released
all the same, and what it had not finished goes to the next worker again.
"""

from __future__ import annotations

import asyncio
import collections
import logging
from typing import TYPE_CHECKING, Any

from switchboard.gateway.protocol.messages import (
    CONSUMER_EVENTS,
    MOVABLE_KEY,
    Message,
    worker_ack,
    worker_done,
    worker_event,
    worker_failed,
    worker_release,
)
from switchboard.gateway.protocol.scope import BUSY, CONNECTION, SWITCHBOARD_KEY, unpack_scope
from switchboard.gateway.protocol.sequence import OVERFLOW, InOrderReceiver
from switchboard.server.asgi.errors import ClientDisconnected

if TYPE_CHECKING:
    from switchboard.gateway.worker import GatewayWorker

__all__ = ["ACK_DELAY", "ACK_EVERY", "ServedConnection"]

logger = logging.getLogger("switchboard.gateway.worker")

ACK_DELAY = 0.05
ACK_EVERY = 32

CONNECT = {"type": "websocket.connect"}


class ServedConnection:
    """The worker's side of one relayed connection (see the module docs)."""

    def __init__(self, worker: GatewayWorker, message: Message) -> None:
        self.worker = worker
        self.id: str = message["connection"]
        self.epoch: int = message["epoch"]
        self.gateway: str = message["gateway"]
        self.resumed: bool = message["resumed"]
        self.scope = unpack_scope(message["scope"], resumed=self.resumed)
        # The same on every worker the connection moves to: a key for state kept elsewhere.
        self.scope[SWITCHBOARD_KEY][CONNECTION] = self.id
        start = message["next_seq"]
        self.incoming: InOrderReceiver[dict[str, Any]] = InOrderReceiver(
            worker.settings.reorder_window, start
        )
        self.queue: collections.deque[tuple[int, dict[str, Any]]] = collections.deque()
        self.queue.append((0, CONNECT))
        self.read_through = start - 1  # the last client message the consumer read
        self.handled_through = start - 1  # ... and the last it is known to have handled
        self.ack_sent = start - 1
        self.out_seq = 0
        self.phase = "handshake"  # "open", "response", "closed"
        self.client_gone = False
        self.movable = True
        self.parked = False
        self.ended = False  # released or replaced: its sends go nowhere
        self.idle = False
        self._waiter: asyncio.Future[None] | None = None
        self._ack_timer: asyncio.TimerHandle | None = None
        self.task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self.task = asyncio.ensure_future(
            self.worker.application(self.scope, self.receive, self.send)
        )
        self.task.add_done_callback(self._finished)

    # -- from the client --------------------------------------------------------------------

    def deliver(self, seq: int, event: dict[str, Any]) -> None:
        first = self.incoming.expected
        received = self.incoming.receive(seq, event)
        if received.status is OVERFLOW:
            logger.error("Connection %s: too many client messages missing; ending it", self.id)
            self.end()
            return
        for offset, item in enumerate(received.ready):
            self.queue.append((first + offset, item))
        if received.ready:
            self._wake()

    def client_lost(self, code: int) -> None:
        """The socket's gateway is gone: the consumer gets its disconnect."""
        self.queue.append((0, {"type": "websocket.disconnect", "code": code}))
        self._wake()

    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    async def receive(self) -> dict[str, Any]:
        # Asking for the next message, with no handler of its own still running, says that
        # everything read so far was handled.
        if not self._busy():
            self._settle()
        while not self.queue or self.parked:
            self.idle = True
            self._waiter = asyncio.get_running_loop().create_future()
            try:
                await self._waiter
            finally:
                self._waiter = None
                self.idle = False
        seq, event = self.queue.popleft()
        if seq:
            self.read_through = seq
        if event["type"] == "websocket.disconnect":
            self.client_gone = True
        return event

    def _settle(self) -> None:
        if self.read_through <= self.handled_through:
            return
        self.handled_through = self.read_through
        if self.handled_through - self.ack_sent >= ACK_EVERY:
            self._send_ack()
        elif self._ack_timer is None:
            self._ack_timer = asyncio.get_running_loop().call_later(ACK_DELAY, self._on_timer)

    def _on_timer(self) -> None:
        self._ack_timer = None
        if self.idle and not self._busy():  # a concurrent consumer's handlers ended since
            self.handled_through = max(self.handled_through, self.read_through)
        self._send_ack()
        if self.read_through > self.ack_sent and not self.ended:
            self._ack_timer = asyncio.get_running_loop().call_later(ACK_DELAY, self._on_timer)

    def _send_ack(self) -> None:
        """Acknowledge what was handled: the gateway forgets it. What was read but is still
        being handled is not acknowledged, so a crash gives it to the next worker again."""
        if self._ack_timer is not None:
            self._ack_timer.cancel()
            self._ack_timer = None
        if self.ended or self.handled_through <= self.ack_sent:
            return
        self.ack_sent = self.handled_through
        self.worker.post(self.gateway, worker_ack(self.id, self.epoch, self.ack_sent))

    # -- from the consumer ------------------------------------------------------------------

    async def send(self, event: dict[str, Any]) -> None:
        kind = event.get("type")
        if kind not in CONSUMER_EVENTS:
            raise RuntimeError(f"unexpected ASGI message type for a WebSocket: {kind!r}")
        if self.client_gone or self.phase == "closed":
            if kind == "websocket.close" and not self.client_gone:
                return  # closing twice is harmless, as in-process
            raise ClientDisconnected(f"cannot send {kind}: the WebSocket connection is closed")
        self._check_phase(kind, event)
        extra: dict[str, Any] = {}
        if kind == "websocket.accept":
            movable = event.get(MOVABLE_KEY, True)
            self.movable = movable is not False
            extra["movable"] = self.movable
            event = {k: v for k, v in event.items() if k != MOVABLE_KEY}
        if self.ended:
            return
        self.out_seq += 1
        message = worker_event(self.id, self.epoch, self.out_seq, event, **extra)
        await self.worker.send(self.gateway, message, self)

    def _check_phase(self, kind: str, event: dict[str, Any]) -> None:
        phase = self.phase
        if kind == "websocket.accept":
            if phase != "handshake":
                raise RuntimeError(f"cannot send {kind} twice or after a response started")
            self.phase = "open"
        elif kind == "websocket.send":
            if phase != "open":
                raise RuntimeError(f"cannot send {kind} before websocket.accept")
        elif kind == "websocket.close":
            if phase == "response":
                raise RuntimeError("websocket.close after websocket.http.response.start")
            self.phase = "closed"
        elif kind == "websocket.http.response.start":
            if phase != "handshake":
                raise RuntimeError(f"cannot send {kind} after websocket.accept")
            self.phase = "response"
        else:  # the response body
            if phase != "response":
                raise RuntimeError(f"cannot send {kind} before websocket.http.response.start")
            if not event.get("more_body", False):
                self.phase = "closed"

    def _finished(self, task: asyncio.Task[None]) -> None:
        self.worker.forget(self)
        if not self.ended and not task.cancelled():
            self.handled_through = self.read_through  # it returned: it handled all it read
        if self._ack_timer is not None:
            self._send_ack()
        if self.ended:
            return
        self.ended = True
        self.out_seq += 1
        if task.cancelled():
            return
        error = task.exception()
        if error is None or isinstance(error, ClientDisconnected):
            self.worker.post(self.gateway, worker_done(self.id, self.epoch, self.out_seq))
            return
        self.worker.stats.failures += 1
        logger.error("Exception in the consumer of connection %s", self.id, exc_info=error)
        line = f"{type(error).__name__}: {error}"[:500]
        self.worker.post(self.gateway, worker_failed(self.id, self.epoch, self.out_seq, line))

    # -- leaving ----------------------------------------------------------------------------

    def end(self) -> None:
        """Stop the consumer without a word to the gateway (it was replaced, or ends)."""
        self.ended = True
        if self.task is not None:
            self.task.cancel()

    async def release(self, deadline: float) -> None:
        """Hand the connection back to its gateway once the consumer is idle (or at
        ``deadline``, loop time), then stop the consumer."""
        loop = asyncio.get_running_loop()
        task = self.task
        if not self.movable:
            await self._close_unmovable(deadline)
            return
        self.parked = True
        while task is not None and not task.done() and not (self.idle and not self._busy()):
            if loop.time() >= deadline:
                break
            await asyncio.sleep(0.01)
        if task is None or task.done() or self.ended:
            return
        # Still busy at the deadline: what it read since it was last known done is given
        # to the next worker again.
        acked = self.read_through if self.idle and not self._busy() else self.handled_through
        self._drop_pending_ack()
        self.ended = True
        self.worker.post(
            self.gateway,
            worker_release(
                self.id, self.epoch, sent=self.out_seq, acked=acked, movable=self.movable
            ),
        )
        task.cancel()

    async def _close_unmovable(self, deadline: float) -> None:
        # Its socket is closed (1012), so it ends as it would in-process when the socket
        # closes: disconnect runs. Messages it has not read go with the socket.
        task = self.task
        if task is None or task.done() or self.ended:
            return
        self.ended = True  # its end is said by the release, not worker.done
        self.queue.clear()
        self.parked = False  # it reads its disconnect, and nothing else
        self.client_lost(1012)
        await asyncio.wait([task], timeout=max(deadline - asyncio.get_running_loop().time(), 0))
        self.worker.post(
            self.gateway,
            worker_release(
                self.id, self.epoch, sent=self.out_seq, acked=self.read_through, movable=False
            ),
        )
        task.cancel()

    def _busy(self) -> bool:
        # A consumer running handlers concurrently says whether one still runs (dispatch.py).
        busy = self.scope[SWITCHBOARD_KEY].get(BUSY)
        return bool(busy is not None and busy())

    def _drop_pending_ack(self) -> None:
        # The release says what was read: a separate ack would only repeat it.
        if self._ack_timer is not None:
            self._ack_timer.cancel()
            self._ack_timer = None
