"""The ASGI WebSocket cycle as a small state machine, apart from any transport or HTTP version.

One :class:`WebSocketCycle` per connection, whether an HTTP/1.1 upgrade or an RFC 8441 stream
carries it. It knows which ASGI message the application may send in which state (and what
each one asks the connection to do), keeps the messages the application has not read yet, and
hands it ``websocket.disconnect`` exactly once. The protocol that owns the transport feeds it
(:meth:`~WebSocketCycle.deliver`, :meth:`~WebSocketCycle.finish`, :meth:`~WebSocketCycle.lost`)
and does the I/O.

States::

    CONNECTING --start--> HANDSHAKE --accept--> OPEN --finish--> CLOSING --lost--> CLOSED
        |                   |  |                                                      ^
        |                   |  +--respond--> RESPONSE --finish--+                      |
        +--refuse-----------+--finish---------------------------+--> DENIED --lost----+

``lost`` (the transport is gone) leads to CLOSED from every state. Per message, callers compare
``state`` to :data:`OPEN` once; everything else happens a few times per connection.
"""

from __future__ import annotations

import asyncio
import collections
import enum
from typing import Protocol

from switchboard.server.asgi.errors import ClientDisconnected
from switchboard.server.asgi.types import Message

__all__ = ["ABNORMAL", "Action", "IllegalTransition", "WSState", "WebSocketCycle"]

# RFC 6455 section 7.4.1: the connection closed without a close frame.
ABNORMAL = 1006


class WSState(enum.Enum):
    CONNECTING = "connecting"  # the upgrade request is being checked; the app has not started
    HANDSHAKE = "handshake pending"  # the app runs and has not accepted, closed or answered yet
    RESPONSE = "denial response"  # the app is sending a websocket.http.response
    OPEN = "open"  # accepted (101): messages go both ways
    CLOSING = "closing"  # the app is done with an open connection; the transport is ending
    DENIED = "denied"  # the handshake got another answer than 101; the transport is ending
    CLOSED = "closed"  # the transport is gone


CONNECTING, HANDSHAKE, RESPONSE = WSState.CONNECTING, WSState.HANDSHAKE, WSState.RESPONSE
OPEN, CLOSING, DENIED, CLOSED = WSState.OPEN, WSState.CLOSING, WSState.DENIED, WSState.CLOSED

# Before the handshake is answered: the client may not send frames yet.
UNANSWERED = frozenset((CONNECTING, HANDSHAKE, RESPONSE))

_NEXT: dict[WSState, frozenset[WSState]] = {
    CONNECTING: frozenset((HANDSHAKE, DENIED, CLOSED)),
    HANDSHAKE: frozenset((OPEN, RESPONSE, DENIED, CLOSED)),
    RESPONSE: frozenset((DENIED, CLOSED)),
    OPEN: frozenset((CLOSING, CLOSED)),
    CLOSING: frozenset((CLOSED,)),
    DENIED: frozenset((CLOSED,)),
    CLOSED: frozenset(),
}


class Action(enum.Enum):
    """What the connection does for a message the application sent."""

    SEND = "send a data frame"
    ACCEPT = "answer the handshake 101"
    REJECT = "answer the handshake 403"
    CLOSE = "start the closing handshake"
    IGNORE = "nothing: the closing handshake is under way already"
    START_RESPONSE = "start the denial response"
    RESPONSE_BODY = "send a piece of the denial response's body"


class IllegalTransition(RuntimeError):
    """A transition the state machine does not have: a bug in the protocol driving it."""


class _Readable(Protocol):
    reading_paused: bool

    def pause_reading(self) -> None: ...
    def resume_reading(self) -> None: ...


class WebSocketCycle:
    """The ASGI side of one WebSocket connection: its state, and the app's ``receive``.

    ``flow`` is paused when ``max_queue`` messages wait unread, and resumed as the application
    catches up (once the handshake is answered: before that, the protocol holds reading).
    """

    __slots__ = (
        "state",
        "loop",
        "flow",
        "max_queue",
        "queue",
        "waiter",
        "disconnect",
        "disconnect_sent",
        "received",
        "sent",
    )

    def __init__(
        self, loop: asyncio.AbstractEventLoop, flow: _Readable, max_queue: int = 0
    ) -> None:
        self.state = CONNECTING
        self.loop = loop
        self.flow = flow
        self.max_queue = max_queue or 1 << 30
        # Unread messages; made when one has to wait and dropped once read, since an empty
        # deque keeps a 64-slot block (~600 bytes) for the life of an idle connection.
        self.queue: collections.deque[Message] | None = None
        self.waiter: asyncio.Future[Message] | None = None
        self.disconnect: Message | None = None
        self.disconnect_sent = False  # websocket.disconnect went to the app (it goes once)
        self.received = 0  # websocket.receive messages delivered
        self.sent = 0  # websocket.send messages, counted by the protocol that frames them

    def _to(self, state: WSState) -> None:
        if state not in _NEXT[self.state]:
            raise IllegalTransition(f"WebSocket cycle: {self.state.name} -> {state.name}")
        self.state = state

    # -- transitions the protocol drives ---------------------------------------------------

    def start(self) -> None:
        """The upgrade request is valid: the application starts, and reads websocket.connect."""
        self._to(HANDSHAKE)
        self.queue = collections.deque(({"type": "websocket.connect"},))

    def refuse(self) -> None:
        """The upgrade request is malformed: answered without the application."""
        if self.state is not CONNECTING:
            raise IllegalTransition(f"WebSocket cycle: refuse() in {self.state.name}")
        self._to(DENIED)
        self.disconnect = {"type": "websocket.disconnect", "code": ABNORMAL, "reason": ""}

    def accept(self) -> None:
        self._to(OPEN)

    def respond(self) -> None:
        """The application started a denial response (websocket.http.response.start)."""
        self._to(RESPONSE)

    def finish(self, code: int, reason: str) -> None:
        """The application's side is over: it reads websocket.disconnect after what is queued.

        From OPEN the connection goes CLOSING, before an answer it is DENIED; later calls (the
        client's close frame after ours...) only keep the first code."""
        state = self.state
        if state is OPEN:
            self._to(CLOSING)
        elif state in UNANSWERED:
            self._to(DENIED)
        if self.disconnect is None:
            self.disconnect = {"type": "websocket.disconnect", "code": code, "reason": reason}
        waiter = self.waiter
        if waiter is not None and not self.queue:
            self.waiter = None
            if not waiter.done():
                self.disconnect_sent = True
                waiter.set_result(self.disconnect)

    def lost(self, code: int, reason: str) -> None:
        """The transport is gone; ``code``/``reason`` unless the app side was over already."""
        if self.state is not CLOSED:
            self.finish(code, reason)
            self._to(CLOSED)

    # -- the application's side ------------------------------------------------------------

    def deliver(self, message: Message) -> None:
        """A message for the application: to its waiting ``receive``, else queued."""
        self.received += 1
        waiter = self.waiter
        if waiter is not None:
            self.waiter = None
            if not waiter.done():
                waiter.set_result(message)
                return
        queue = self.queue
        if queue is None:
            queue = self.queue = collections.deque()
        queue.append(message)
        if len(queue) >= self.max_queue:
            self.flow.pause_reading()

    def _next_queued(self, queue: collections.deque[Message]) -> Message:
        message = queue.popleft()
        if not queue:
            self.queue = None
        if (
            self.flow.reading_paused
            and len(queue) < self.max_queue
            and self.state not in UNANSWERED
        ):
            self.flow.resume_reading()
        return message

    async def receive(self) -> Message:
        """The ASGI ``receive`` callable."""
        queue = self.queue
        if queue:
            return self._next_queued(queue)
        if self.disconnect is not None:
            if self.disconnect_sent:
                # websocket.disconnect is one event (ASGI spec); after it nothing more will
                # come, so wait until the task is cancelled. Returning it again would let an
                # app looping on receive() spin without ever yielding to the event loop.
                return await self.loop.create_future()
            self.disconnect_sent = True
            return self.disconnect
        current = self.waiter
        if current is not None and not current.done():
            raise RuntimeError("receive() called concurrently on one WebSocket connection")
        self.waiter = waiter = self.loop.create_future()
        try:
            return await waiter
        finally:
            if self.waiter is waiter:
                self.waiter = None

    def receive_into(self, waiter: asyncio.Future[Message]) -> None:
        """``receive`` for a caller that waits on more than this connection with one future
        (switchboard's consumers: the client and their channel layer, without a task).

        ``waiter`` gets the message ``receive`` would return, at once if one is queued. After
        ``websocket.disconnect`` it is left pending (nothing more will come), as ``receive``
        would be. A waiter cancelled or completed by someone else is simply dropped: the next
        message waits in the queue."""
        queue = self.queue
        if queue:
            waiter.set_result(self._next_queued(queue))
            return
        if self.disconnect is not None:
            if not self.disconnect_sent:
                self.disconnect_sent = True
                waiter.set_result(self.disconnect)
            return
        current = self.waiter
        if current is not None and not current.done():
            raise RuntimeError("receive() called concurrently on one WebSocket connection")
        self.waiter = waiter

    def app_sends(self, kind: str) -> Action:
        """What to do for a message of type ``kind`` from the application, in this state.

        Raises ``ClientDisconnected`` once the connection is over, ``RuntimeError`` for a
        message the ASGI spec does not allow here. Changes no state: the protocol does the
        I/O and then the transition."""
        state = self.state
        if kind == "websocket.send":
            if state is OPEN:
                return Action.SEND
        elif kind == "websocket.accept":
            if state is HANDSHAKE:
                return Action.ACCEPT
        elif kind == "websocket.close":
            if state is HANDSHAKE:
                return Action.REJECT
            if state is OPEN:
                return Action.CLOSE
            if state is RESPONSE:
                raise RuntimeError("websocket.close after websocket.http.response.start")
            if state is CLOSED:
                raise ClientDisconnected("WebSocket connection is closed")
            return Action.IGNORE  # closing twice is harmless
        elif kind == "websocket.http.response.start":
            if state is HANDSHAKE:
                return Action.START_RESPONSE
        elif kind == "websocket.http.response.body":
            if state is RESPONSE:
                return Action.RESPONSE_BODY
        else:
            raise RuntimeError(f"unexpected ASGI message type for a WebSocket: {kind!r}")
        self.not_allowed(kind)
        raise AssertionError("unreachable")  # pragma: no cover

    def not_allowed(self, kind: str) -> None:
        """Raise the error for an application message that this state does not take."""
        state = self.state
        if state is CLOSED or state is CLOSING or state is DENIED or self.disconnect is not None:
            raise ClientDisconnected(f"cannot send {kind}: the WebSocket connection is closed")
        if state is HANDSHAKE:
            raise RuntimeError(f"cannot send {kind} before websocket.accept")
        raise RuntimeError(f"unexpected {kind} in this state of the WebSocket connection")
