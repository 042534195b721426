"""WebSocket scopes packed for the layer and unpacked on a worker: real scopes round-trip
through the layer codec, what cannot travel is dropped and listed, and the resumed flag."""

from __future__ import annotations

import enum
from typing import Any

import pytest

from switchboard.gateway.protocol.scope import (
    PackedScope,
    ScopeNotPortable,
    is_resumed,
    pack_scope,
    unpack_scope,
)
from switchboard.layers.codec import MessageCodec


def server_scope(**overrides: Any) -> dict[str, Any]:
    """A WebSocket scope as the server builds one for an upgrade request."""
    scope: dict[str, Any] = {
        "type": "websocket",
        "asgi": {"version": "3.0", "spec_version": "2.4"},
        "http_version": "1.1",
        "server": ("10.0.0.5", 8000),
        "client": ("203.0.113.9", 51234),
        "scheme": "wss",
        "root_path": "/app",
        "path": "/app/ws/salon/café/",
        "raw_path": b"/app/ws/salon/caf%C3%A9/",
        "query_string": b"token=a%20b&room=%E2%9C%93",
        "headers": [
            (b"host", b"example.com"),
            (b"cookie", b"sessionid=abc123; csrftoken=xyz"),
            (b"sec-websocket-protocol", b"chat.v2, chat.v1"),
            (b"x-name", "Zoë".encode("latin-1")),  # a non-ASCII, non-UTF-8 byte
            (b"x-utf8", "日本".encode()),
            (b"x-repeat", b"1"),
            (b"x-repeat", b"2"),
        ],
        "subprotocols": ["chat.v2", "chat.v1"],
        "state": {"pool": object()},
        "extensions": {
            "websocket.http.response": {},
            "tls": {
                "server_cert": None,
                "client_cert_chain": [],
                "tls_version": 0x0304,
                "cipher_suite": 0x1301,
                "client_cert_name": None,
                "client_cert_error": None,
            },
        },
    }
    scope.update(overrides)
    return scope


def through_the_layer(packed: dict[str, Any]) -> dict[str, Any]:
    codec = MessageCodec()
    return codec.decode(codec.encode({"type": "gateway.connect", "scope": packed}))["scope"]


def test_a_real_scope_round_trips() -> None:
    scope = server_scope()
    packed, dropped = pack_scope(scope)
    assert dropped == ["state"]
    worker_scope = unpack_scope(through_the_layer(packed), resumed=False)
    expected = {k: v for k, v in scope.items() if k != "state"}
    expected["switchboard"] = {"resumed": False}
    assert worker_scope == expected
    # Equal is not enough where ASGI says tuples: the types come back too.
    assert type(worker_scope["client"]) is tuple
    assert type(worker_scope["server"]) is tuple
    assert all(type(pair) is tuple for pair in worker_scope["headers"])
    assert type(worker_scope["subprotocols"]) is list
    assert worker_scope["headers"][3] == (b"x-name", b"Zo\xeb")
    assert worker_scope["path"] == "/app/ws/salon/café/"


def test_packing_leaves_the_scope_alone() -> None:
    scope = server_scope()
    headers = scope["headers"]
    pack_scope(scope)
    assert scope["headers"] is headers and type(headers[0]) is tuple
    assert "state" in scope


def test_packed_scope_is_plain_lists() -> None:
    packed = pack_scope(server_scope()).scope
    assert packed["client"] == ["203.0.113.9", 51234]
    assert packed["headers"][0] == [b"host", b"example.com"]
    # What the layer gives back is what was packed: nothing changes in transit.
    assert through_the_layer(packed) == packed


def test_unix_socket_server_and_no_client() -> None:
    scope = server_scope(server=("/run/switchboard.sock", None), client=None)
    worker_scope = unpack_scope(through_the_layer(pack_scope(scope).scope), resumed=False)
    assert worker_scope["server"] == ("/run/switchboard.sock", None)
    assert worker_scope["client"] is None


class Color(enum.IntEnum):
    RED = 1


class SessionLike:
    pass


def test_what_cannot_travel_is_dropped_and_listed() -> None:
    scope = server_scope(
        session=SessionLike(),  # something a middleware put there
        user="anonymous",
        url_route={"args": (), "kwargs": {"room": "lobby", "when": SessionLike()}},
        color=Color.RED,  # an IntEnum would arrive as an int: dropped, not mangled
        big=2**64,
        mixed=[1, SessionLike()],
    )
    scope["extensions"]["custom.object"] = SessionLike()
    scope["extensions"]["custom.plain"] = {"limit": 5}
    packed, dropped = pack_scope(scope)
    assert sorted(dropped) == [
        "big",
        "color",
        "extensions.custom.object",
        "mixed",
        "session",
        "state",
        "url_route.kwargs.when",
    ]
    assert packed["user"] == "anonymous"
    assert packed["url_route"] == {"args": [], "kwargs": {"room": "lobby"}}
    assert packed["extensions"]["custom.plain"] == {"limit": 5}
    assert "custom.object" not in packed["extensions"]
    assert "tls" in packed["extensions"]
    through_the_layer(packed)  # the codec takes what is left


def test_non_str_keys_are_dropped() -> None:
    packed, dropped = pack_scope(server_scope(extra={1: "one", "two": 2}))
    assert packed["extra"] == {"two": 2}
    assert dropped == ["state", "extra.1"]


@pytest.mark.parametrize(
    ("overrides", "key", "why"),
    [
        ({"path": SessionLike()}, "path", "cannot travel"),
        ({"headers": [(b"host", SessionLike())]}, "headers", "cannot travel"),
        ({"type": "http"}, "type", "not 'websocket'"),
    ],
)
def test_a_scope_no_worker_could_serve_is_refused(
    overrides: dict[str, Any], key: str, why: str
) -> None:
    scope = server_scope(**overrides)
    with pytest.raises(ScopeNotPortable) as info:
        pack_scope(scope)
    assert info.value.key == key
    assert why in str(info.value)


def test_a_missing_required_key_is_refused() -> None:
    scope = server_scope()
    del scope["headers"]
    with pytest.raises(ScopeNotPortable, match="'headers' is missing"):
        pack_scope(scope)


def test_the_resumed_flag() -> None:
    packed = pack_scope(server_scope()).scope
    first = unpack_scope(packed, resumed=False)
    moved = unpack_scope(packed, resumed=True)
    assert first["switchboard"] == {"resumed": False} and not is_resumed(first)
    assert moved["switchboard"] == {"resumed": True} and is_resumed(moved)
    assert "switchboard" not in packed  # unpacking leaves the packed scope alone
    assert not is_resumed(server_scope())  # in-process: no key at all


def test_resumed_keeps_other_switchboard_entries() -> None:
    packed = pack_scope(server_scope(switchboard={"gateway": "g1", "resumed": True})).scope
    assert unpack_scope(packed, resumed=False)["switchboard"] == {
        "gateway": "g1",
        "resumed": False,
    }


def test_packed_scope_is_a_named_pair() -> None:
    result = pack_scope(server_scope())
    assert isinstance(result, PackedScope)
    scope, dropped = result
    assert scope is result.scope and dropped is result.dropped
