"""The gateway/worker messages: each constructor builds what check() accepts, each travels
through the layer codec unchanged, and a malformed message is refused naming its fault."""

from __future__ import annotations

from typing import Any

import pytest

from switchboard.gateway.protocol import messages as m
from switchboard.gateway.protocol.messages import MalformedMessage, check
from switchboard.layers.codec import MessageCodec

GATEWAY = "switchboard.gateway.inmemory!abc1"
WORKER = "switchboard.worker.inmemory!def2"
SCOPE = {"type": "websocket", "path": "/ws/chat/", "headers": [[b"host", b"example.com"]]}


def one_of_each() -> list[dict[str, Any]]:
    return [
        m.gateway_connect("c1", 1, GATEWAY, SCOPE, resumed=False),
        m.gateway_connect("c1", 2, GATEWAY, SCOPE, resumed=True, next_seq=7),
        m.gateway_event("c1", 1, 1, {"type": "websocket.receive", "text": "hi"}),
        m.gateway_event("c1", 1, 2, {"type": "websocket.disconnect", "code": 1000}),
        m.gateway_heartbeat(GATEWAY, 12),
        m.worker_hello(WORKER, "host-a:123", capacity=1000),
        m.worker_heartbeat(WORKER, "host-a:123", 1000, 42),
        m.worker_leaving(WORKER),
        m.worker_event("c1", 1, 1, {"type": "websocket.accept"}, movable=False),
        m.worker_event("c1", 1, 2, {"type": "websocket.send", "bytes": b"\x00\xff"}),
        m.worker_ack("c1", 1, 2),
        m.worker_failed("c1", 2, 1, "ValueError: no room"),
        m.worker_done("c1", 2, 3),
        m.worker_release("c1", 1, sent=2, acked=5, movable=True),
    ]


def test_every_type_has_a_constructor_and_a_side() -> None:
    built = {message["type"] for message in one_of_each()}
    assert built == set(m.SPECS)
    assert m.TO_WORKER | m.TO_GATEWAY == set(m.SPECS)
    assert not m.TO_WORKER & m.TO_GATEWAY
    # The prefix names the sender: a worker receives what gateways send, and the other way.
    assert all(kind.startswith("gateway.") for kind in m.TO_WORKER)
    assert all(kind.startswith("worker.") for kind in m.TO_GATEWAY)


@pytest.mark.parametrize("message", one_of_each(), ids=lambda message: message["type"])
def test_messages_cross_the_layer_codec_unchanged(message: dict[str, Any]) -> None:
    codec = MessageCodec()
    decoded = codec.decode(codec.encode(message))
    assert check(decoded) == message
    side = m.TO_WORKER if message["type"].startswith("gateway.") else m.TO_GATEWAY
    assert check(decoded, accept=side) is decoded


def test_hello_and_heartbeat_carry_the_protocol_version() -> None:
    assert m.worker_hello(WORKER, "a")["protocol"] == m.PROTOCOL_VERSION
    assert m.worker_heartbeat(WORKER, "a", 0, 0)["protocol"] == m.PROTOCOL_VERSION


def test_unknown_fields_are_carried_for_rolling_deploys() -> None:
    message = {**m.worker_ack("c1", 1, 1), "from_a_newer_release": [1, 2]}
    assert check(message) is message


def test_optional_movable_is_left_out_unless_given() -> None:
    assert "movable" not in m.worker_event("c", 1, 1, {"type": "websocket.accept"})


def refused(message: Any, accept: Any = None) -> MalformedMessage:
    with pytest.raises(MalformedMessage) as info:
        check(message, accept=accept)
    return info.value


def test_not_a_dict() -> None:
    error = refused([("type", "worker.ack")])
    assert "must be a dict, not list" in str(error)


@pytest.mark.parametrize("kind", [None, "gateway.bogus", 3, "websocket.receive"])
def test_unknown_type(kind: Any) -> None:
    message = {"connection": "c", "epoch": 1, "seq": 1}
    if kind is not None:
        message["type"] = kind
    error = refused(message)
    assert error.field == "type"
    assert "Unknown gateway message type" in str(error)
    assert "gateway.connect" in str(error)  # lists what it knows


def test_sent_to_the_wrong_side() -> None:
    error = refused(m.worker_ack("c1", 1, 1), accept=m.TO_WORKER)
    assert error.message_type == "worker.ack"
    assert "not sent to this side" in str(error)


def test_missing_field() -> None:
    message = m.gateway_event("c1", 1, 1, {"type": "websocket.receive", "text": "x"})
    del message["seq"]
    error = refused(message)
    assert (error.message_type, error.field) == ("gateway.event", "seq")
    assert str(error) == "gateway.event: missing 'seq'"


@pytest.mark.parametrize(
    ("field", "value", "wants"),
    [
        ("connection", "", "a non-empty str"),
        ("connection", "x" * 201, "at most 200 characters"),
        ("connection", 7, "a non-empty str"),
        ("epoch", 0, "an int of at least 1"),
        ("epoch", True, "an int of at least 1"),  # a bool is not a number here
        ("seq", -3, "an int of at least 1"),
        ("seq", 1.0, "an int of at least 1"),
        ("seq", 2**63, "an int of at least 1"),
        ("event", {"type": "websocket.send", "text": "x"}, "websocket.receive"),
        ("event", "websocket.receive", "an ASGI event dict"),
        ("event", {"text": "x"}, "an ASGI event dict"),
    ],
)
def test_bad_field_of_a_client_event(field: str, value: Any, wants: str) -> None:
    message = m.gateway_event("c1", 1, 1, {"type": "websocket.receive", "text": "x"})
    message[field] = value
    error = refused(message)
    assert (error.message_type, error.field) == ("gateway.event", field)
    assert str(error).startswith(f"gateway.event: {field!r} must be ")
    assert wants in str(error)


def test_bad_values_elsewhere() -> None:
    connect = m.gateway_connect("c1", 1, GATEWAY, SCOPE, resumed=False)
    assert refused({**connect, "gateway": "not a channel!!"}).field == "gateway"
    assert refused({**connect, "scope": {"type": "http"}}).field == "scope"
    assert refused({**connect, "resumed": 1}).field == "resumed"
    assert refused({**connect, "next_seq": 0}).field == "next_seq"
    release = m.worker_release("c1", 1, sent=0, acked=0)
    assert refused({**release, "acked": -1}).field == "acked"
    hello = m.worker_hello(WORKER, "a")
    assert refused({**hello, "capacity": None}).field == "capacity"
    assert refused({**hello, "worker": 5}).field == "worker"
    # The consumer's events only from a worker, the client's only from the gateway.
    event = m.worker_event("c1", 1, 1, {"type": "websocket.send", "text": "x"})
    assert refused({**event, "event": {"type": "websocket.receive"}}).field == "event"


def test_long_values_are_shortened_in_the_error() -> None:
    message = {**m.worker_ack("c1", 1, 1), "connection": ["x" * 500]}
    assert len(str(refused(message))) < 200


def test_movable_goes_with_accept_only() -> None:
    message = m.worker_event("c1", 1, 1, {"type": "websocket.send", "text": "x"})
    message["movable"] = False
    error = refused(message)
    assert (error.field, str(error)) == (
        "movable",
        "worker.event: 'movable' goes with websocket.accept only",
    )


def test_constructors_refuse_what_they_would_send_wrong() -> None:
    with pytest.raises(MalformedMessage, match="'epoch' must be an int of at least 1"):
        m.worker_ack("c1", 0, 1)
    with pytest.raises(MalformedMessage, match="'event' must be an ASGI event dict"):
        m.gateway_event("c1", 1, 1, {"type": "websocket.connect"})  # gateway.connect says it


def test_malformed_message_is_a_value_error() -> None:
    assert issubclass(MalformedMessage, ValueError)
