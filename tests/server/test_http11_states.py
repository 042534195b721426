"""The HTTP/1.1 connection's state table (``connections/http11_states``), and the protocol
moving along it.

The table first, as data: every state is reachable and leads to an end, the lifecycles of a
keep-alive connection, of the hand-overs and of a close are paths through it, and anything
else raises. Then a real ``HttpProtocol`` on a fake transport, whose ``conn_state`` follows the
same paths, and which lets an undefined transition through neither as a 400 nor in silence.
"""

from __future__ import annotations

import asyncio
from collections import deque
from typing import Any

import pytest

from switchboard.server.connections.http11 import HttpProtocol
from switchboard.server.connections.http11_states import (
    AFTER,
    OPEN,
    TRANSITIONS,
    ConnectionStateError,
    ConnEvent,
    ConnState,
    next_state,
)
from switchboard.server.runtime.config import Config
from switchboard.server.runtime.state import ServerState

S = ConnState
E = ConnEvent
STARTS = (S.PREFACE, S.IDLE)  # with HTTP/2 on, and off
ENDS = (S.CLOSED, S.RELEASED)


def walk(state: ConnState, *events: ConnEvent) -> list[ConnState]:
    """The states ``events`` lead through from ``state``, through the real table."""
    states = [state]
    for event in events:
        states.append(next_state(states[-1], event))
    return states


def reachable(starts: tuple[ConnState, ...]) -> set[ConnState]:
    seen = set(starts)
    todo = deque(starts)
    while todo:
        state = todo.popleft()
        for (before, _), after in TRANSITIONS.items():
            if before is state and after not in seen:
                seen.add(after)
                todo.append(after)
    return seen


# -- the table ------------------------------------------------------------------------------


def test_every_state_is_reachable_from_a_new_connection() -> None:
    assert reachable(STARTS) == set(ConnState)


def test_every_state_leads_to_an_end_and_the_ends_lead_nowhere() -> None:
    for state in ConnState:
        assert reachable((state,)) & set(ENDS), state
    assert not [key for key in TRANSITIONS if key[0] is S.RELEASED]
    assert [after for (before, _), after in TRANSITIONS.items() if before is S.CLOSED] == [S.CLOSED]


def test_every_open_state_can_close_and_be_lost() -> None:
    for state in OPEN:
        assert next_state(state, E.CLOSE) is S.CLOSING
        assert next_state(state, E.LOST) is S.CLOSED
    assert OPEN == set(ConnState) - {S.CLOSING, S.CLOSED, S.RELEASED}


def test_the_rows_by_event_are_the_table() -> None:
    for state in ConnState:
        for event in ConnEvent:
            expected = TRANSITIONS.get((state, event))
            if expected is None:
                with pytest.raises(ConnectionStateError):
                    AFTER[event][state]
            else:
                assert AFTER[event][state] is expected


def test_keep_alive_connection() -> None:
    assert walk(
        S.PREFACE,
        E.HTTP11,  # not the HTTP/2 preface
        E.REQUEST,  # the first request: its app runs
        E.REQUEST,  # a second one pipelined behind it: queued
        E.ANSWERED,  # both answered
        E.REQUEST,
        E.ANSWERED,
        E.CLOSE,  # idle too long
        E.LOST,
    ) == [
        S.PREFACE,
        S.IDLE,
        S.RESPONDING,
        S.RESPONDING,
        S.IDLE,
        S.RESPONDING,
        S.IDLE,
        S.CLOSING,
        S.CLOSED,
    ]


def test_websocket_upgrade_at_once_and_behind_a_response() -> None:
    assert walk(S.IDLE, E.UPGRADE, E.HAND_OVER) == [S.IDLE, S.UPGRADING, S.RELEASED]
    assert walk(S.IDLE, E.REQUEST, E.UPGRADE, E.HAND_OVER) == [
        S.IDLE,
        S.RESPONDING,
        S.UPGRADING,
        S.RELEASED,
    ]
    # The response before the handshake closes the connection instead (Connection: close).
    assert walk(S.RESPONDING, E.UPGRADE, E.CLOSE) == [S.RESPONDING, S.UPGRADING, S.CLOSING]


def test_http2_hand_over() -> None:
    # ALPN h2, or the h2c preface as the first bytes.
    assert walk(S.PREFACE, E.HAND_OVER) == [S.PREFACE, S.RELEASED]


def test_bad_input_behind_a_response_then_close() -> None:
    assert walk(S.IDLE, E.REQUEST, E.REFUSE, E.CLOSE, E.LOST) == [
        S.IDLE,
        S.RESPONDING,
        S.FAILING,
        S.CLOSING,
        S.CLOSED,
    ]


def test_close_twice_and_after_the_client_left() -> None:
    assert walk(S.RESPONDING, E.CLOSE, E.CLOSE, E.LOST, E.CLOSE) == [
        S.RESPONDING,
        S.CLOSING,
        S.CLOSING,
        S.CLOSED,
        S.CLOSED,
    ]


@pytest.mark.parametrize(
    ("state", "event"),
    [
        (S.IDLE, E.ANSWERED),  # nothing was in flight
        (S.PREFACE, E.REQUEST),  # parsed before the preface check
        (S.UPGRADING, E.REQUEST),  # nothing is parsed after a handshake
        (S.FAILING, E.UPGRADE),
        (S.IDLE, E.REFUSE),  # with nothing in flight the error goes out at once
        (S.IDLE, E.HAND_OVER),
        (S.CLOSING, E.REQUEST),
        (S.CLOSED, E.LOST),  # lost twice
        (S.RELEASED, E.CLOSE),  # the transport is another protocol's
        (S.RELEASED, E.LOST),
    ],
)
def test_undefined_transition_raises(state: ConnState, event: ConnEvent) -> None:
    assert (state, event) not in TRANSITIONS
    with pytest.raises(ConnectionStateError) as info:
        next_state(state, event)
    assert event.name in str(info.value) and state.name in str(info.value)


# -- the protocol on the table --------------------------------------------------------------


class FakeTransport(asyncio.Transport):
    def __init__(self) -> None:
        super().__init__()
        self.written = bytearray()
        self.closed = False
        self.protocol: Any = None

    def write(self, data: Any) -> None:
        self.written += data

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        extra = {"peername": ("127.0.0.1", 40000), "sockname": ("127.0.0.1", 8000)}
        return extra.get(name, default)

    def pause_reading(self) -> None:
        pass

    def resume_reading(self) -> None:
        pass

    def is_reading(self) -> bool:
        return True

    def is_closing(self) -> bool:
        return self.closed

    def can_write_eof(self) -> bool:
        return False

    def close(self) -> None:
        self.closed = True

    def abort(self) -> None:
        self.closed = True

    def get_write_buffer_size(self) -> int:
        return 0

    def set_protocol(self, protocol: Any) -> None:
        self.protocol = protocol


async def hello(scope: dict[str, Any], receive: Any, send: Any) -> None:
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"hi"})


def connect(http2: bool = True, **options: Any) -> tuple[HttpProtocol, FakeTransport]:
    config = Config(app=hello, access_log=False, http2=http2, **options)
    proto = HttpProtocol(config, ServerState(), {}, asyncio.get_running_loop())
    transport = FakeTransport()
    proto.connection_made(transport)
    return proto, transport


def at(proto: HttpProtocol) -> ConnState:
    # A call, so that the type checker does not pin the state between two assertions.
    return proto.conn_state


async def answered(transport: FakeTransport, count: int) -> None:
    for _ in range(100):
        if transport.written.count(b"HTTP/1.1 ") >= count:
            return
        await asyncio.sleep(0)
    raise AssertionError(bytes(transport.written))


GET = b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"


async def test_protocol_keep_alive_lifecycle() -> None:
    proto, transport = connect()
    assert at(proto) is S.PREFACE
    assert proto.keep_alive_handle is not None
    post = b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n"
    proto.data_received(post[:1])  # "P": could still be the HTTP/2 preface ("PRI * ...")
    assert at(proto) is S.PREFACE
    proto.data_received(post[1:])
    assert at(proto) is S.RESPONDING
    assert proto.keep_alive_handle is None
    await answered(transport, 1)
    assert at(proto) is S.IDLE
    assert proto.keep_alive_handle is not None
    proto.data_received(GET + GET)  # pipelined
    assert at(proto) is S.RESPONDING and len(proto.queue) == 1
    await answered(transport, 3)
    assert at(proto) is S.IDLE
    proto._keep_alive_expired()
    assert at(proto) is S.CLOSING and transport.closed
    proto.connection_lost(None)
    assert at(proto) is S.CLOSED


async def test_protocol_without_http2_starts_idle() -> None:
    proto, _ = connect(http2=False)
    assert at(proto) is S.IDLE
    proto.shutdown()
    assert at(proto) is S.CLOSING


async def test_protocol_connection_close_request() -> None:
    proto, transport = connect()
    proto.data_received(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    await answered(transport, 1)
    assert at(proto) is S.CLOSING and transport.closed


async def test_protocol_h2c_preface_hands_over() -> None:
    proto, transport = connect()
    proto.data_received(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n")
    assert at(proto) is S.RELEASED
    assert transport.protocol is not None and transport.protocol is not proto
    with pytest.raises(ConnectionStateError):
        proto.close()  # the transport is the HTTP/2 protocol's now


async def test_protocol_websocket_upgrade_behind_a_response() -> None:
    proto, transport = connect(http2=False)
    handshake = (
        b"GET /ws HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n"
        b"Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n"
    )
    proto.data_received(GET + handshake)
    assert at(proto) is S.UPGRADING
    proto.data_received(GET)  # WebSocket's bytes now: not parsed as a request
    assert at(proto) is S.UPGRADING and not proto.queue
    await answered(transport, 1)
    assert at(proto) is S.RELEASED
    assert type(transport.protocol).__name__ == "WebSocketProtocol"


async def test_protocol_bad_input_behind_a_response() -> None:
    proto, transport = connect(http2=False)
    proto.data_received(GET + b"NOT HTTP AT ALL\r\n\r\n")
    assert at(proto) is S.FAILING
    await answered(transport, 2)
    assert b"400 Bad Request" in transport.written
    assert at(proto) is S.CLOSING and transport.closed


async def test_protocol_bad_input_with_nothing_in_flight_closes_at_once() -> None:
    proto, transport = connect(http2=False)
    proto.data_received(b"NOT HTTP AT ALL\r\n\r\n")
    assert at(proto) is S.CLOSING
    assert transport.written.startswith(b"HTTP/1.1 400 ")


class _Broken(HttpProtocol):
    """A protocol with a bug: it says a request was answered before any was."""

    __slots__ = ()

    def on_headers_complete(self) -> None:
        self._event(E.ANSWERED)


async def test_undefined_transition_in_a_parser_callback_is_no_bad_request() -> None:
    config = Config(app=hello, access_log=False, http2=False)
    proto = _Broken(config, ServerState(), {}, asyncio.get_running_loop())
    transport = FakeTransport()
    proto.connection_made(transport)
    with pytest.raises(ConnectionStateError, match="ANSWERED is not allowed in state IDLE"):
        proto.data_received(GET)
    assert not transport.written  # no 400: the client did nothing wrong
    assert at(proto) is S.IDLE
