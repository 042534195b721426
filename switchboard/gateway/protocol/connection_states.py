"""The gateway's side of one relayed WebSocket connection, as a state table.

The gateway holds the socket; a worker runs the consumer. This table says where the
connection is between the two: which worker (if any) serves it, whether events are relayed or
kept for the next worker, and when it closes. The socket's own handshake and closing handshake
stay the server's business (``server/asgi/ws_cycle.py``): the same event here is answered with
a 403 or 500 before the client was accepted and with a close frame after, and the server's
cycle knows which.

The ways through it::

    new          WAITING -ASSIGNED-> CONNECTING -ACCEPTED-> OPEN
    relaying     OPEN -CLIENT_MESSAGE or WORKER_MESSAGE-> OPEN
    refused      CONNECTING -REFUSED or FAILED-> CLOSING   (the handshake is denied)
    crash        OPEN -WORKER_LOST-> MOVING -ASSIGNED-> RESUMING -ACCEPTED-> OPEN
    deploy       OPEN -WORKER_RELEASED-> MOVING -ASSIGNED-> RESUMING -ACCEPTED-> OPEN
    not movable  OPEN -MOVE_REFUSED-> CLOSING            (closed with 1012)
    bad resume   RESUMING -FAILED-> CLOSING              (closed with 1011)
    not resumed  RESUMING -REFUSED-> CLOSING             (the consumer's own close code)
    no worker    WAITING, CONNECTING, MOVING or RESUMING -WAIT_TIMED_OUT-> CLOSING  (1013)
    the end      OPEN -WORKER_CLOSED-> CLOSING -CLIENT_DISCONNECTED-> CLOSED,
                 or -CLIENT_DISCONNECTED-> CLOSED from any state but CLOSED

In RESUMING the consumer's ``websocket.accept`` is answered by the gateway itself: the client
was accepted long ago and never sees a second accept. A worker lost before its consumer
accepted a new connection (CONNECTING) sends it back to WAITING, and the next worker gets a
first connect, not a resumed one. Client messages are kept, bounded, until a worker
acknowledges them (:class:`~switchboard.gateway.protocol.sequence.ResendBuffer`): in MOVING they are
only kept; in RESUMING they go on to the new worker at once, whose consumer reads them after
its connect.

Events come from workers over the layer, so a transition the table does not have means a
worker broke the protocol (or the gateway has a bug): :func:`next_state` raises
:class:`ConnectionStateError`, and the caller closes that one connection with 1011 and logs it.
"""

from __future__ import annotations

import enum

from switchboard.statetable import Row, by_event

__all__ = [
    "AFTER",
    "CLOSE_CODES",
    "TRANSITIONS",
    "WITH_WORKER",
    "ConnectionStateError",
    "RelayEvent",
    "RelayState",
    "next_state",
]


class RelayState(enum.Enum):
    """Where a relayed connection is (see the module docs for the ways between them)."""

    # Identity hash, in C: Enum's own __hash__ is a Python function, and each transition is a
    # dict lookup keyed by a state.
    __hash__ = object.__hash__

    # The handshake arrived; no worker has the connection yet (none running, all full).
    WAITING = "waiting for a worker"
    # gateway.connect went to a worker; its consumer has not accepted or refused yet.
    CONNECTING = "connecting"
    # A worker's consumer serves it: events are relayed both ways.
    OPEN = "open"
    # Its worker left (released it) or was lost: client messages are kept for the next one.
    MOVING = "moving"
    # The next worker got a resumed gateway.connect; its accept is answered by the gateway.
    RESUMING = "resuming"
    # The socket is being closed (or the handshake denied): news from the worker or the client
    # changes nothing here (the rest of a denial response still goes out: the server's cycle
    # decides what the socket still takes).
    CLOSING = "closing"
    # The socket is gone; the gateway forgets the connection.
    CLOSED = "closed"


class RelayEvent(enum.Enum):
    """What happens to a relayed connection; the gateway applies one at each turn."""

    __hash__ = object.__hash__

    ASSIGNED = "a worker was chosen and sent gateway.connect"
    ACCEPTED = "the consumer sent websocket.accept"
    REFUSED = "the consumer closed (or answered HTTP) before accepting"
    FAILED = "the consumer raised (worker.failed)"
    WORKER_LOST = "the worker missed its heartbeats"
    WORKER_RELEASED = "the worker handed the connection back (worker.release)"
    MOVE_REFUSED = "the worker went and the consumer may not move"
    CLIENT_MESSAGE = "the client sent a message"
    WORKER_MESSAGE = "the consumer sent a message"
    WORKER_CLOSED = "the consumer closed the socket"
    CLIENT_DISCONNECTED = "the socket is gone"
    WAIT_TIMED_OUT = "no worker answered in time"


WAITING = RelayState.WAITING
CONNECTING = RelayState.CONNECTING
OPEN = RelayState.OPEN
MOVING = RelayState.MOVING
RESUMING = RelayState.RESUMING
CLOSING = RelayState.CLOSING
CLOSED = RelayState.CLOSED

ASSIGNED = RelayEvent.ASSIGNED
ACCEPTED = RelayEvent.ACCEPTED
REFUSED = RelayEvent.REFUSED
FAILED = RelayEvent.FAILED
WORKER_LOST = RelayEvent.WORKER_LOST
WORKER_RELEASED = RelayEvent.WORKER_RELEASED
MOVE_REFUSED = RelayEvent.MOVE_REFUSED
CLIENT_MESSAGE = RelayEvent.CLIENT_MESSAGE
WORKER_MESSAGE = RelayEvent.WORKER_MESSAGE
WORKER_CLOSED = RelayEvent.WORKER_CLOSED
CLIENT_DISCONNECTED = RelayEvent.CLIENT_DISCONNECTED
WAIT_TIMED_OUT = RelayEvent.WAIT_TIMED_OUT

# Every allowed (state, event) and the state it leads to; nothing else is allowed.
TRANSITIONS: dict[tuple[RelayState, RelayEvent], RelayState] = {
    (WAITING, ASSIGNED): CONNECTING,
    (WAITING, WAIT_TIMED_OUT): CLOSING,
    (WAITING, CLIENT_DISCONNECTED): CLOSED,
    (CONNECTING, ACCEPTED): OPEN,  # the accept goes on to the client
    (CONNECTING, REFUSED): CLOSING,  # the consumer's close (403) or response goes to the client
    (CONNECTING, FAILED): CLOSING,  # answered 500, as in-process
    (CONNECTING, WORKER_LOST): WAITING,  # never accepted: the next worker gets a first connect
    (CONNECTING, WORKER_RELEASED): WAITING,
    (CONNECTING, WAIT_TIMED_OUT): CLOSING,  # the worker never answered
    (CONNECTING, CLIENT_DISCONNECTED): CLOSED,
    (OPEN, CLIENT_MESSAGE): OPEN,
    (OPEN, WORKER_MESSAGE): OPEN,
    (OPEN, WORKER_CLOSED): CLOSING,
    (OPEN, FAILED): CLOSING,  # 1011, as in-process
    (OPEN, WORKER_LOST): MOVING,
    (OPEN, WORKER_RELEASED): MOVING,
    (OPEN, MOVE_REFUSED): CLOSING,  # 1012
    (OPEN, CLIENT_DISCONNECTED): CLOSED,
    (MOVING, ASSIGNED): RESUMING,
    (MOVING, CLIENT_MESSAGE): MOVING,  # kept for the next worker
    (MOVING, WAIT_TIMED_OUT): CLOSING,  # 1013
    (MOVING, CLIENT_DISCONNECTED): CLOSED,
    (RESUMING, ACCEPTED): OPEN,  # answered by the gateway: the client never sees it
    (RESUMING, REFUSED): CLOSING,  # the consumer no longer takes it: its close code goes out
    (RESUMING, FAILED): CLOSING,  # 1011, logged once
    (RESUMING, WORKER_LOST): MOVING,
    (RESUMING, WORKER_RELEASED): MOVING,
    (RESUMING, CLIENT_MESSAGE): RESUMING,  # read by the consumer after its connect
    (RESUMING, WAIT_TIMED_OUT): CLOSING,  # 1013
    (RESUMING, CLIENT_DISCONNECTED): CLOSED,
    # Closing: what still arrives from the worker or the client changes nothing.
    (CLOSING, ACCEPTED): CLOSING,
    (CLOSING, REFUSED): CLOSING,
    (CLOSING, FAILED): CLOSING,
    (CLOSING, WORKER_LOST): CLOSING,
    (CLOSING, WORKER_RELEASED): CLOSING,
    (CLOSING, CLIENT_MESSAGE): CLOSING,
    (CLOSING, WORKER_MESSAGE): CLOSING,
    (CLOSING, WORKER_CLOSED): CLOSING,
    (CLOSING, CLIENT_DISCONNECTED): CLOSED,
}

# The close code an event closes the socket with, where the gateway chooses it (elsewhere the
# consumer's own code goes out). Before the client is accepted, the server answers the
# handshake instead (500 for FAILED).
CLOSE_CODES: dict[RelayEvent, int] = {
    WAIT_TIMED_OUT: 1013,  # try again later
    MOVE_REFUSED: 1012,  # service restart
    FAILED: 1011,  # internal error
}

# The states in which a worker holds the connection: its loss or release moves it.
WITH_WORKER = frozenset((CONNECTING, OPEN, RESUMING))


class ConnectionStateError(RuntimeError):
    """An event the table does not allow in the connection's state (see the module docs)."""


def _refuse(event: RelayEvent, state: RelayState) -> ConnectionStateError:
    return ConnectionStateError(
        f"Relayed WebSocket connection: {event.name} ({event.value}) is not allowed in "
        f"state {state.name} ({state.value})"
    )


# The table again, by event (what the gateway looks up: ``AFTER[event][state]``).
AFTER: dict[RelayEvent, Row[RelayState, RelayEvent]] = by_event(TRANSITIONS, RelayEvent, _refuse)


def next_state(state: RelayState, event: RelayEvent) -> RelayState:
    """The state ``event`` leads to from ``state``; raises :class:`ConnectionStateError` when
    the table has no such transition."""
    return AFTER[event][state]
