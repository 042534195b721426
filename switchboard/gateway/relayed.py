"""One WebSocket connection held by a gateway and served by a worker's consumer.

The server calls the gateway's application for the socket as it would call the consumer;
:class:`RelayedConnection` stands in for the consumer. It reads the client (``receive``),
numbers each message and keeps it until the worker's consumer has read it (a
:class:`~switchboard.gateway.protocol.sequence.ResendBuffer`), and plays the consumer's events
back to the socket (``send``) in their order (an
:class:`~switchboard.gateway.protocol.sequence.InOrderReceiver`). Where the connection is
between the two is a table (:mod:`~switchboard.gateway.protocol.connection_states`);
everything that changes it comes through one queue, the connection's inbox, and is acted on
in order in the connection's own task.

When the worker goes (it released the connection, or it was lost) the connection moves: the
next worker gets a resumed ``gateway.connect`` and the client messages its old consumer had
not read. The client sees nothing of it. When the buffer is full the connection stops reading
its socket (the client's sends wait in TCP) until the worker catches up: nothing is dropped.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

from switchboard.gateway.hub import GatewayHub
from switchboard.gateway.protocol.connection_states import (
    AFTER,
    CLOSE_CODES,
    WITH_WORKER,
    ConnectionStateError,
    RelayEvent,
    RelayState,
)
from switchboard.gateway.protocol.directory import KnownWorker
from switchboard.gateway.protocol.messages import (
    WORKER_ACK,
    WORKER_DONE,
    WORKER_EVENT,
    WORKER_FAILED,
    WORKER_RELEASE,
    Message,
    gateway_connect,
    gateway_event,
)
from switchboard.gateway.protocol.scope import ScopeNotPortable, pack_scope
from switchboard.gateway.protocol.sequence import (
    OVERFLOW,
    InOrderReceiver,
    ResendBuffer,
    SequenceError,
)

__all__ = ["RelayedConnection"]

logger = logging.getLogger("switchboard.gateway")

WAITING, CONNECTING, OPEN = RelayState.WAITING, RelayState.CONNECTING, RelayState.OPEN
MOVING, RESUMING = RelayState.MOVING, RelayState.RESUMING
CLOSING, CLOSED = RelayState.CLOSING, RelayState.CLOSED
E = RelayEvent

Send = Callable[[dict[str, Any]], Awaitable[None]]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Item = tuple[str, Any]

RESPONSE_EXTENSION = "websocket.http.response"
# The server's per-connection access-log note (server/runtime/access_log.py NOTE_EXTENSION).
ACCESS_LOG_EXTENSION = "switchboard.access_log"


def _size(event: dict[str, Any]) -> int:
    payload = event.get("bytes") or event.get("text") or ""
    return len(payload)


class RelayedConnection:
    """The gateway's side of one socket (see the module docs)."""

    def __init__(self, hub: GatewayHub, scope: dict[str, Any], receive: Receive, send: Send):
        settings = hub.settings
        self.hub = hub
        self.scope = scope
        self._receive = receive
        self._send = send
        self.id = hub.new_connection_id()
        self.state = WAITING
        self.epoch = 0
        self.worker: KnownWorker | None = None
        self.movable = True
        self.client_accepted = False
        self.finished = False
        self.deadline: float | None = None  # time.monotonic() after which the wait ends (1013)
        self.buffer: ResendBuffer[dict[str, Any]] = ResendBuffer(
            settings.buffer_messages, settings.buffer_bytes
        )
        self.sent_at: dict[int, float] = {}  # client message number -> arrival, for latency
        self.from_worker: InOrderReceiver[Message] = InOrderReceiver(settings.reorder_window)
        self.inbox: asyncio.Queue[Item] = asyncio.Queue()
        self.room = asyncio.Event()
        self.room.set()
        self.unbuffered = 0  # client messages read but not in the buffer yet
        self.progress_at = time.monotonic()  # when the worker last acknowledged something
        self.gap_since: float | None = None  # since when a worker event is missing
        self.packed: dict[str, Any] = {}

    def post(self, item: Item) -> None:
        self.inbox.put_nowait(item)

    # -- the application call ---------------------------------------------------------------

    async def run(self) -> None:
        first = await self._receive()
        if first["type"] != "websocket.connect":
            return  # the client left during the handshake
        try:
            packed = pack_scope(_without_log_note(self.scope))
        except ScopeNotPortable as exc:
            logger.error("Gateway: %s; the handshake is answered 500", exc)
            return  # the server answers an application that returns without accepting
        if packed.dropped:
            logger.debug("Connection scope keys not sent to workers: %s", packed.dropped)
        self.packed = packed.scope
        hub = self.hub
        hub.add(self)
        self._wait_for_worker(first=True)
        hub.request_worker(self)
        reader = asyncio.ensure_future(self._read_client())
        try:
            while self.state is not CLOSED and not self.finished:
                item = await self.inbox.get()
                try:
                    await self._handle(item)
                except ConnectionStateError as exc:
                    await self._broken(str(exc))
                except SequenceError as exc:
                    await self._broken(f"worker broke the protocol: {exc}")
        finally:
            reader.cancel()
            hub.remove(self)

    async def _read_client(self) -> None:
        limits = self.hub.settings
        while True:
            await self.room.wait()
            event = await self._receive()
            self.unbuffered += 1
            self.post(("client", event))
            if event["type"] == "websocket.disconnect":
                return
            if (
                len(self.buffer) + self.unbuffered >= limits.buffer_messages
                or self.buffer.pending_bytes >= limits.buffer_bytes
            ):
                self.hub.stats.buffer_full += 1
                self.room.clear()

    def _wait_for_worker(self, first: bool = False) -> None:
        settings = self.hub.settings
        wait = settings.wait_timeout
        if first and settings.first_wait_timeout is not None:
            wait = min(wait, settings.first_wait_timeout)
        self.deadline = time.monotonic() + wait

    # -- what happens -----------------------------------------------------------------------

    def _to(self, event: RelayEvent) -> RelayState:
        before = self.state
        self.state = AFTER[event][before]
        return before

    async def _handle(self, item: Item) -> None:
        kind, value = item
        if kind == "message":
            await self._from_worker(value)
        elif kind == "client":
            await self._from_client(value)
        elif kind == "assigned":
            await self._assigned(value)
        elif kind == "lost":
            if value is self.worker:
                await self._worker_gone(E.WORKER_LOST)
        elif kind == "timeout":
            await self._timed_out()
        elif kind == "resend":
            await self._resend_oldest()
        elif kind == "gap":
            if self.from_worker.waiting_for is not None and self.state is not CLOSING:
                await self._broken("an event from its worker was lost in the channel layer")

    async def _from_client(self, event: dict[str, Any]) -> None:
        self.unbuffered -= 1
        if event["type"] == "websocket.disconnect":
            worker = self.worker
            self._to(E.CLIENT_DISCONNECTED)
            if worker is not None and not worker.gone:
                # The consumer runs its disconnect, as in-process; not waited for.
                seq = self.buffer.push(event, 0)
                if seq is not OVERFLOW:
                    message = gateway_event(self.id, self.epoch, seq, event)
                    asyncio.ensure_future(
                        self.hub.send(worker.channel, message, lambda: worker.gone)
                    ).add_done_callback(_quiet)
            return
        self._to(E.CLIENT_MESSAGE)
        if self.state is CLOSING:
            return
        seq = self.buffer.push(event, _size(event))
        if seq is OVERFLOW:  # not reached: the reader stops at the bound
            await self._close(1013)
            return
        self.sent_at[seq] = time.monotonic()
        self.hub.stats.client_to_worker += 1
        if self.state is OPEN or self.state is RESUMING:
            await self._to_worker(gateway_event(self.id, self.epoch, seq, event))

    async def _to_worker(self, message: Message) -> None:
        worker, epoch = self.worker, self.epoch
        assert worker is not None
        await self.hub.send(worker.channel, message, lambda: worker.gone or self.epoch != epoch)

    async def _assigned(self, worker: KnownWorker) -> None:
        if self.state is not WAITING and self.state is not MOVING:
            worker.connections.discard(self.id)  # closed meanwhile
            return
        before = self._to(E.ASSIGNED)
        resumed = before is MOVING
        self.worker = worker
        self.epoch += 1
        self.from_worker.restart(1)
        self.gap_since = None
        self.progress_at = time.monotonic()
        self._note_worker(worker)
        self._wait_for_worker(first=not resumed)
        await self._send_connect()
        if resumed:
            for seq, event in self.buffer.unacked():
                await self._to_worker(gateway_event(self.id, self.epoch, seq, event))

    async def _send_connect(self) -> None:
        await self._to_worker(
            gateway_connect(
                self.id,
                self.epoch,
                self.hub.channel,
                self.packed,
                resumed=self.state is RESUMING,
                next_seq=self.buffer.first_unacked,
            )
        )

    async def _resend_oldest(self) -> None:
        # Nothing heard for a while: what was lost on its way goes again (a copy the worker
        # has is dropped): the connect itself, while the consumer has not answered it, and
        # the oldest client message, which the worker would be holding the later ones for.
        if self.state is CONNECTING or self.state is RESUMING:
            await self._send_connect()
        if (self.state is OPEN or self.state is RESUMING) and self.buffer.pending:
            seq, event, _size = self.buffer.pending[0]
            await self._to_worker(gateway_event(self.id, self.epoch, seq, event))

    def _note_worker(self, worker: KnownWorker) -> None:
        # The server's access log names the workers that served the connection.
        note = self.scope.get("extensions", {}).get(ACCESS_LOG_EXTENSION)
        if note is not None:
            served = note.get("note")
            if served is None:
                note["note"] = f"worker {worker.name}"
            elif not served.endswith(worker.name):
                note["note"] = f"{served}, {worker.name}"

    async def _from_worker(self, message: Message) -> None:
        kind = message["type"]
        if kind == WORKER_ACK:
            self._acked(message["seq"])
        elif kind == WORKER_RELEASE:
            await self._released(message)
        else:
            self.progress_at = time.monotonic()
            received = self.from_worker.receive(message["seq"], message)
            if received.status is OVERFLOW:
                await self._broken("too many worker events missing")
                return
            if self.from_worker.waiting_for is None:
                self.gap_since = None
            elif self.gap_since is None:
                self.gap_since = time.monotonic()
            for ready in received.ready:
                await self._apply(ready)
                if self.finished:
                    return

    def _acked(self, seq: int) -> None:
        seq = min(seq, self.buffer.next_seq - 1)
        if seq <= self.buffer.acked:
            return
        now = time.monotonic()
        latencies = self.hub.stats.ack_latencies
        for number in range(self.buffer.acked + 1, seq + 1):
            arrived = self.sent_at.pop(number, None)
            if arrived is not None and len(latencies) < 10_000:
                latencies.append(now - arrived)
        self.buffer.ack(seq)
        self.progress_at = now
        limits = self.hub.settings
        if (
            len(self.buffer) + self.unbuffered < limits.buffer_messages
            and self.buffer.pending_bytes < limits.buffer_bytes
        ):
            self.room.set()

    async def _apply(self, message: Message) -> None:
        kind = message["type"]
        if kind == WORKER_DONE:
            self.finished = True  # the server treats the return as the consumer's own
            return
        if kind == WORKER_FAILED:
            await self._failed(message["error"])
            return
        assert kind == WORKER_EVENT
        event = message["event"]
        what = event["type"]
        if what == "websocket.accept":
            if "movable" in message:
                self.movable = message["movable"]
            before = self._to(E.ACCEPTED)
            self.deadline = None
            if before is CONNECTING:
                await self._client(event)
                self.client_accepted = True
            elif before is RESUMING:
                self.hub.stats.resumed += 1  # the client was accepted long ago
        elif what == "websocket.send":
            self._to(E.WORKER_MESSAGE)
            if self.state is OPEN:
                self.hub.stats.worker_to_client += 1
                await self._client(event)
        elif what == "websocket.close":
            before = self.state
            if before is CONNECTING or before is RESUMING:
                self._to(E.REFUSED)
            else:
                self._to(E.WORKER_CLOSED)
            if before is not CLOSING:
                await self._client(event)
        else:  # the denial response, before an accept
            before = self._to(E.REFUSED)
            if before is CONNECTING or before is CLOSING:
                await self._client(event)

    async def _released(self, message: Message) -> None:
        if self.state not in WITH_WORKER:
            return
        acked = min(message["acked"], self.buffer.next_seq - 1)
        if acked > 0:
            self._acked(acked)
        missing = message["sent"] - self.from_worker.delivered_through
        if missing > 0:
            logger.warning(
                "Connection %s: %d event(s) from its worker never arrived", self.id, missing
            )
        if not message["movable"]:
            self.movable = False
        await self._worker_gone(E.WORKER_RELEASED)

    async def _worker_gone(self, how: RelayEvent) -> None:
        if self.state not in WITH_WORKER:
            return
        self.hub.give_back(self)
        self.worker = None
        self.epoch += 1  # what the old worker still sends is stale from now on
        if self.state is OPEN and not self.movable:
            self._to(E.MOVE_REFUSED)
            self.hub.stats.closed_unmovable += 1
            await self._close(CLOSE_CODES[E.MOVE_REFUSED])
            return
        before = self._to(how)
        if before is not CONNECTING:
            self.hub.stats.moves += 1
        self._wait_for_worker(first=before is CONNECTING)
        self.hub.request_worker(self)

    async def _timed_out(self) -> None:
        if self.state not in (WAITING, CONNECTING, MOVING, RESUMING):
            return
        self.hub.waiting.pop(self.id, None)
        self._to(E.WAIT_TIMED_OUT)
        self.hub.stats.closed_waiting += 1
        logger.warning(
            "Connection %s: no worker took it within %.1fs; closed with 1013",
            self.id,
            self.hub.settings.wait_timeout,
        )
        await self._close(CLOSE_CODES[E.WAIT_TIMED_OUT])

    async def _failed(self, error: str) -> None:
        before = self._to(E.FAILED)
        if before is CLOSING:
            return
        self.hub.stats.consumer_failures += 1
        worker = self.worker.name if self.worker is not None else "?"
        logger.warning(
            "Connection %s: its consumer raised on worker %s (%s); closed with 1011 "
            "(the traceback is in that worker's log)",
            self.id,
            worker,
            error,
        )
        await self._close(CLOSE_CODES[E.FAILED])

    async def _broken(self, why: str) -> None:
        logger.error("Connection %s: %s; closed with 1011", self.id, why)
        self.state = CLOSING if self.state is not CLOSED else CLOSED
        await self._close(1011)

    async def _close(self, code: int) -> None:
        """Close the socket the gateway's way: a client never accepted gets the 500 an
        in-process failure gets (1011), or an accept and the close code (1013, 1012)."""
        if not self.client_accepted:
            if code == 1011:
                await self._deny()
                return
            await self._client({"type": "websocket.accept"})
            self.client_accepted = True
        await self._client({"type": "websocket.close", "code": code})

    async def _deny(self) -> None:
        if RESPONSE_EXTENSION in self.scope.get("extensions", {}):
            body = b"Internal Server Error\n"
            await self._client(
                {
                    "type": "websocket.http.response.start",
                    "status": 500,
                    "headers": [(b"content-type", b"text/plain; charset=utf-8")],
                }
            )
            await self._client({"type": "websocket.http.response.body", "body": body})
        else:
            await self._client({"type": "websocket.close"})

    async def _client(self, event: dict[str, Any]) -> None:
        try:
            await self._send(event)
        except Exception as exc:  # the client left; its disconnect is on its way
            logger.debug("Connection %s: send to the client failed: %s", self.id, exc)


def _without_log_note(scope: dict[str, Any]) -> dict[str, Any]:
    # The note is the gateway's to write: a worker's copy of it would go nowhere.
    extensions = scope.get("extensions")
    if not extensions or ACCESS_LOG_EXTENSION not in extensions:
        return scope
    trimmed = {k: v for k, v in extensions.items() if k != ACCESS_LOG_EXTENSION}
    return {**scope, "extensions": trimmed}


def _quiet(task: asyncio.Future[Any]) -> None:
    if not task.cancelled() and task.exception() is not None:
        logger.debug("Gateway: a disconnect notice was not sent: %s", task.exception())
