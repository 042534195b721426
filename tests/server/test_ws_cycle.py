"""The ASGI WebSocket cycle (``ws_cycle``) without sockets: states, what the application may
send in each, and its ``receive`` (ASGI spec, WebSocket: connect, receive, disconnect, accept,
send, close, and the websocket.http.response extension)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import pytest

from switchboard.server.asgi.errors import ClientDisconnected
from switchboard.server.asgi.ws_cycle import (
    ABNORMAL,
    Action,
    IllegalTransition,
    WebSocketCycle,
    WSState,
)
from switchboard.server.connections.flow_control import FlowControl


class Reading:
    """The reading side of a transport, as far as FlowControl drives it: the calls it got."""

    def __init__(self) -> None:
        self.calls: list[str] = []

    def pause_reading(self) -> None:
        self.calls.append("pause")

    def resume_reading(self) -> None:
        self.calls.append("resume")


def make(max_queue: int = 0) -> tuple[WebSocketCycle, Reading]:
    reading = Reading()
    flow = FlowControl(asyncio.get_running_loop(), reading)
    return WebSocketCycle(asyncio.get_running_loop(), flow, max_queue), reading


def receive(text: str) -> dict:
    return {"type": "websocket.receive", "text": text}


# How to reach each state from a new cycle, by the transitions the protocol makes.
ROUTES: dict[WSState, Callable[[WebSocketCycle], None]] = {
    WSState.CONNECTING: lambda c: None,
    WSState.HANDSHAKE: lambda c: c.start(),
    WSState.RESPONSE: lambda c: (c.start(), c.respond()),
    WSState.OPEN: lambda c: (c.start(), c.accept()),
    WSState.CLOSING: lambda c: (c.start(), c.accept(), c.finish(1000, "")),
    WSState.DENIED: lambda c: (c.start(), c.finish(ABNORMAL, "")),
    WSState.CLOSED: lambda c: (c.start(), c.accept(), c.lost(ABNORMAL, "")),
}


async def in_state(state: WSState) -> WebSocketCycle:
    cycle, _ = make()
    ROUTES[state](cycle)
    assert cycle.state is state
    return cycle


async def opened() -> WebSocketCycle:
    """An accepted connection whose application has read websocket.connect."""
    cycle, _ = make()
    cycle.start()
    assert await cycle.receive() == {"type": "websocket.connect"}
    cycle.accept()
    return cycle


async def test_the_application_reads_websocket_connect_first():
    cycle, _ = make()
    assert cycle.state is WSState.CONNECTING
    cycle.start()
    assert cycle.state is WSState.HANDSHAKE
    assert await cycle.receive() == {"type": "websocket.connect"}


SENDS = [
    "websocket.send",
    "websocket.accept",
    "websocket.close",
    "websocket.http.response.start",
    "websocket.http.response.body",
]
CLOSED_ERROR = ClientDisconnected
# What each application message does in each state; an exception type where it is refused.
TABLE: dict[WSState, dict[str, Action | type[BaseException]]] = {
    WSState.HANDSHAKE: {
        "websocket.send": RuntimeError,  # before websocket.accept
        "websocket.accept": Action.ACCEPT,
        # "If this is sent before the socket is accepted, the server must close the
        # connection with a HTTP 403 error code" (ASGI spec, Close - send event).
        "websocket.close": Action.REJECT,
        "websocket.http.response.start": Action.START_RESPONSE,
        "websocket.http.response.body": RuntimeError,
    },
    WSState.RESPONSE: {
        "websocket.send": RuntimeError,
        "websocket.accept": RuntimeError,
        "websocket.close": RuntimeError,
        "websocket.http.response.start": RuntimeError,
        "websocket.http.response.body": Action.RESPONSE_BODY,
    },
    WSState.OPEN: {
        "websocket.send": Action.SEND,
        "websocket.accept": RuntimeError,
        "websocket.close": Action.CLOSE,
        "websocket.http.response.start": RuntimeError,
        "websocket.http.response.body": RuntimeError,
    },
    WSState.CLOSING: {
        "websocket.send": CLOSED_ERROR,
        "websocket.accept": CLOSED_ERROR,
        "websocket.close": Action.IGNORE,  # closing twice while the handshake runs: harmless
        "websocket.http.response.start": CLOSED_ERROR,
        "websocket.http.response.body": CLOSED_ERROR,
    },
    WSState.DENIED: {
        "websocket.send": CLOSED_ERROR,
        "websocket.accept": CLOSED_ERROR,
        "websocket.close": Action.IGNORE,
        "websocket.http.response.start": CLOSED_ERROR,
        "websocket.http.response.body": CLOSED_ERROR,
    },
    WSState.CLOSED: {
        "websocket.send": CLOSED_ERROR,
        "websocket.accept": CLOSED_ERROR,
        "websocket.close": CLOSED_ERROR,
        "websocket.http.response.start": CLOSED_ERROR,
        "websocket.http.response.body": CLOSED_ERROR,
    },
}


@pytest.mark.parametrize(
    ("state", "kind"), [(state, kind) for state in TABLE for kind in SENDS], ids=str
)
async def test_what_each_application_message_does_in_each_state(state, kind):
    cycle = await in_state(state)
    expected = TABLE[state][kind]
    if isinstance(expected, Action):
        assert cycle.app_sends(kind) is expected
    else:
        with pytest.raises(expected):
            cycle.app_sends(kind)
        if expected is RuntimeError:  # a misuse, not the client leaving
            with pytest.raises(RuntimeError) as info:
                cycle.app_sends(kind)
            assert not isinstance(info.value, ClientDisconnected)
    assert cycle.state is state  # app_sends decides; the protocol makes the transition


async def test_a_send_before_accept_says_so():
    cycle = await in_state(WSState.HANDSHAKE)
    with pytest.raises(RuntimeError, match="before websocket.accept"):
        cycle.app_sends("websocket.send")


@pytest.mark.parametrize("state", list(TABLE), ids=str)
async def test_an_unknown_message_type_is_refused_in_every_state(state):
    cycle = await in_state(state)
    with pytest.raises(RuntimeError, match="unexpected ASGI message type"):
        cycle.app_sends("websocket.publish")


@pytest.mark.parametrize(
    ("state", "move"),
    [
        (WSState.CONNECTING, "accept"),
        (WSState.HANDSHAKE, "start"),
        (WSState.HANDSHAKE, "refuse"),
        (WSState.OPEN, "accept"),
        (WSState.OPEN, "respond"),
        (WSState.RESPONSE, "accept"),
        (WSState.CLOSING, "accept"),
        (WSState.DENIED, "respond"),
        (WSState.CLOSED, "start"),
    ],
    ids=str,
)
async def test_transitions_the_machine_does_not_have_are_refused(state, move):
    cycle = await in_state(state)
    with pytest.raises(IllegalTransition):
        getattr(cycle, move)()
    assert cycle.state is state


async def test_a_malformed_handshake_is_denied_without_the_application():
    cycle, _ = make()
    cycle.refuse()
    assert cycle.state is WSState.DENIED
    assert await cycle.receive() == {"type": "websocket.disconnect", "code": 1006, "reason": ""}


@pytest.mark.parametrize(
    ("state", "after"),
    [
        (WSState.HANDSHAKE, WSState.DENIED),
        (WSState.RESPONSE, WSState.DENIED),
        (WSState.OPEN, WSState.CLOSING),
    ],
    ids=str,
)
async def test_finish_ends_the_application_side(state, after):
    cycle = await in_state(state)
    cycle.finish(4000, "bye")
    assert cycle.state is after
    cycle.lost(ABNORMAL, "")
    assert cycle.state is WSState.CLOSED


async def test_messages_queued_before_the_close_are_read_before_the_disconnect():
    cycle = await opened()
    cycle.deliver(receive("a"))
    cycle.deliver(receive("b"))
    cycle.finish(1000, "done")
    assert await cycle.receive() == receive("a")
    assert await cycle.receive() == receive("b")
    assert await cycle.receive() == {"type": "websocket.disconnect", "code": 1000, "reason": "done"}


async def test_the_first_close_code_is_the_one_the_application_reads():
    # Our close frame went first (the app closed 4001); the client's answer, then the
    # transport's end, change nothing.
    cycle = await opened()
    cycle.finish(4001, "app")
    cycle.finish(1000, "client")
    cycle.lost(ABNORMAL, "")
    assert await cycle.receive() == {"type": "websocket.disconnect", "code": 4001, "reason": "app"}


async def test_websocket_disconnect_is_given_once_then_receive_waits():
    # websocket.disconnect ends the connection's events (ASGI spec): a second one would make
    # an app that loops on receive() spin.
    cycle = await opened()
    cycle.lost(1001, "")
    assert (await cycle.receive())["type"] == "websocket.disconnect"
    with pytest.raises(asyncio.TimeoutError):
        await asyncio.wait_for(cycle.receive(), 0.05)


async def test_a_waiting_receive_gets_the_message_then_the_disconnect():
    cycle = await opened()
    waiting = asyncio.ensure_future(cycle.receive())
    await asyncio.sleep(0)
    cycle.deliver(receive("hi"))
    assert await waiting == receive("hi")
    waiting = asyncio.ensure_future(cycle.receive())
    await asyncio.sleep(0)
    cycle.lost(ABNORMAL, "")
    assert await waiting == {"type": "websocket.disconnect", "code": ABNORMAL, "reason": ""}
    assert cycle.received == 1


async def test_receive_is_not_called_twice_at_once():
    cycle = await opened()
    first = asyncio.ensure_future(cycle.receive())
    await asyncio.sleep(0)
    with pytest.raises(RuntimeError, match="concurrently"):
        await cycle.receive()
    first.cancel()


async def test_reading_pauses_at_max_queue_and_resumes_as_the_app_catches_up():
    cycle, reading = make(max_queue=2)
    cycle.start()
    cycle.accept()
    assert await cycle.receive() == {"type": "websocket.connect"}
    cycle.deliver(receive("1"))
    assert reading.calls == []
    cycle.deliver(receive("2"))
    assert reading.calls == ["pause"]
    assert await cycle.receive() == receive("1")
    assert reading.calls == ["pause", "resume"]


async def test_reading_held_for_the_handshake_is_not_resumed_by_receive():
    # Before the 101 the protocol holds reading (the client's early frames wait); reading
    # websocket.connect must not let them in.
    cycle, reading = make()
    cycle.flow.pause_reading()
    cycle.start()
    assert await cycle.receive() == {"type": "websocket.connect"}
    assert reading.calls == ["pause"]
