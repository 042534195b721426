"""The life of one HTTP/1.1 connection as a state table: named states, and the allowed
transitions written down as data (h11's idea of tables rather than flags).

One state for the connection as a whole, not one per request: requests pipelined behind the
one being answered are read and queued while the connection stays ``RESPONDING``, and what a
single request is doing (its body arriving, its response under way) is the request's own
business (``http11_request.Http11Request`` and the ASGI cycle it extends).

The ways through it::

    keep-alive   PREFACE -HTTP11-> IDLE -REQUEST-> RESPONDING -ANSWERED-> IDLE -REQUEST-> ...
    HTTP/2       PREFACE -HAND_OVER-> RELEASED
    WebSocket    IDLE or RESPONDING -UPGRADE-> UPGRADING -HAND_OVER-> RELEASED
    bad input    RESPONDING -REFUSE-> FAILING -CLOSE-> CLOSING  (nothing in flight: CLOSE now)
    the end      any open state -CLOSE-> CLOSING -LOST-> CLOSED, or -LOST-> CLOSED at once

A transition the table does not have is a bug in the server, not something a client can
cause: :func:`next_state` raises :class:`ConnectionStateError` for it.
"""

from __future__ import annotations

import enum

from switchboard.statetable import Row, by_event

__all__ = [
    "AFTER",
    "OPEN",
    "TRANSITIONS",
    "ConnectionStateError",
    "ConnEvent",
    "ConnState",
    "next_state",
]


class ConnState(enum.Enum):
    """Where an HTTP/1.1 connection is (see the module docs for the way between them)."""

    # The members hash by identity, in C: Enum's own __hash__ is a Python function, and a
    # transition is a dict lookup keyed by a state.
    __hash__ = object.__hash__

    # HTTP/2 is on and nothing was parsed yet: the first bytes tell an HTTP/1.1 request from
    # the HTTP/2 connection preface (h2c with prior knowledge, RFC 9113 section 3.3).
    PREFACE = "preface"
    # No request in flight: waiting for the next request head, under the keep-alive timer
    # (which a head arriving piecemeal does not stop: hence no state of its own for it).
    IDLE = "idle"
    # An application answers a request; the requests pipelined behind it are read and queued.
    RESPONDING = "responding"
    # A WebSocket handshake was read: what follows is WebSocket's, and the transport goes to
    # the WebSocket protocol once the responses before the handshake are out (reading paused).
    UPGRADING = "upgrading"
    # The client's bytes were refused (malformed, too large): the error response waits for the
    # responses before it, then the connection closes (reading paused).
    FAILING = "failing"
    # Closed by the server: the write side first, then what the client still sends is read
    # and dropped (lingering close) until the transport goes.
    CLOSING = "closing"
    # The transport is gone (connection_lost).
    CLOSED = "closed"
    # Another protocol (WebSocket, HTTP/2) has the transport: nothing is left to do here.
    RELEASED = "released"


class ConnEvent(enum.Enum):
    """What happens to a connection: the protocol applies one to its state at each turn."""

    __hash__ = object.__hash__

    HTTP11 = "http11"  # the first bytes are not the HTTP/2 preface: HTTP/1.1 it is
    REQUEST = "request"  # a request head is complete: its request is answered (or queued)
    ANSWERED = "answered"  # the last request in flight is answered, the connection stays
    UPGRADE = "upgrade"  # a WebSocket handshake was read
    REFUSE = "refuse"  # bad input behind a request still being answered: the error waits
    HAND_OVER = "hand_over"  # the transport goes to another protocol
    CLOSE = "close"  # the server closes the connection
    LOST = "lost"  # the transport is gone


PREFACE = ConnState.PREFACE
IDLE = ConnState.IDLE
RESPONDING = ConnState.RESPONDING
UPGRADING = ConnState.UPGRADING
FAILING = ConnState.FAILING
CLOSING = ConnState.CLOSING
CLOSED = ConnState.CLOSED
RELEASED = ConnState.RELEASED

HTTP11 = ConnEvent.HTTP11
REQUEST = ConnEvent.REQUEST
ANSWERED = ConnEvent.ANSWERED
UPGRADE = ConnEvent.UPGRADE
REFUSE = ConnEvent.REFUSE
HAND_OVER = ConnEvent.HAND_OVER
CLOSE = ConnEvent.CLOSE
LOST = ConnEvent.LOST

# Every allowed (state, event) and the state it leads to; nothing else is allowed.
TRANSITIONS: dict[tuple[ConnState, ConnEvent], ConnState] = {
    (PREFACE, HTTP11): IDLE,
    (PREFACE, HAND_OVER): RELEASED,  # ALPN chose h2, or the h2c preface came
    (PREFACE, CLOSE): CLOSING,  # over the concurrency limit, idle too long, shutdown
    (PREFACE, LOST): CLOSED,
    (IDLE, REQUEST): RESPONDING,
    (IDLE, UPGRADE): UPGRADING,  # handed over at once: nothing is in flight
    (IDLE, CLOSE): CLOSING,
    (IDLE, LOST): CLOSED,
    (RESPONDING, REQUEST): RESPONDING,  # pipelined: queued behind the one answered
    (RESPONDING, ANSWERED): IDLE,
    (RESPONDING, UPGRADE): UPGRADING,
    (RESPONDING, REFUSE): FAILING,
    (RESPONDING, CLOSE): CLOSING,
    (RESPONDING, LOST): CLOSED,
    (UPGRADING, HAND_OVER): RELEASED,
    (UPGRADING, CLOSE): CLOSING,  # the response before it ended the connection
    (UPGRADING, LOST): CLOSED,
    (FAILING, CLOSE): CLOSING,  # after the error response (or instead of it)
    (FAILING, LOST): CLOSED,
    (CLOSING, CLOSE): CLOSING,
    (CLOSING, LOST): CLOSED,
    (CLOSED, CLOSE): CLOSED,  # a response that ends after the client left
}

# The states of a connection that is still open and still this protocol's.
OPEN = frozenset((PREFACE, IDLE, RESPONDING, UPGRADING, FAILING))


class ConnectionStateError(RuntimeError):
    """An event the table does not allow in the connection's state: a bug in the server."""


def _refuse(event: ConnEvent, state: ConnState) -> ConnectionStateError:
    return ConnectionStateError(
        f"HTTP/1.1 connection: {event.name} is not allowed in state {state.name}"
    )


# The table again, by event (what the protocol looks up: ``AFTER[event][state]``).
AFTER: dict[ConnEvent, Row[ConnState, ConnEvent]] = by_event(TRANSITIONS, ConnEvent, _refuse)


def next_state(state: ConnState, event: ConnEvent) -> ConnState:
    """The state ``event`` leads to from ``state``; raises :class:`ConnectionStateError` when
    the table has no such transition."""
    return AFTER[event][state]
