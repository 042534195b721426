"""The pure parts: SSE framing, the websocket scope built from a request, the POST body."""

from __future__ import annotations

import pytest

from switchboard.transports import sse
from switchboard.transports.post_endpoint import Malformed, parse_frames
from switchboard.transports.scope import params, websocket_scope


def test_sse_events():
    assert sse.event("a\r\nb\rc\nd") == b"data: a\ndata: b\ndata: c\ndata: d\n\n"
    assert sse.event("") == b"data: \n\n"
    # id and event are one line each: a line break cannot start a field of its own.
    injected = sse.event("x", name="news\ndata: evil", id="1\r\nevent: y")
    assert injected == b"id: 1 event: y\nevent: news data: evil\ndata: x\n\n"
    assert sse.comment() == b": hb\n\n"
    assert sse.binary_event(b"\x00\xff") == b"event: sb.binary\ndata: AP8=\n\n"
    assert sse.close_event(1013, "full") == (
        b'event: sb.close\ndata: {"code": 1013, "reason": "full"}\n\n'
    )
    plain = {"type": "sb.sse.event", "id": None, "event": None, "data": "<p>"}
    assert sse.frame_event(plain) == b"data: <p>\n\n"


def _http(query: bytes, headers: list[tuple[bytes, bytes]], scheme: str = "http") -> dict:
    return {
        "type": "http",
        "method": "GET",
        "scheme": scheme,
        "http_version": "1.1",
        "path": "/ws/chat/",
        "raw_path": b"/ws/chat/",
        "root_path": "",
        "query_string": query,
        "headers": headers,
        "client": ("127.0.0.1", 5000),
        "server": ("127.0.0.1", 8000),
        "state": {"k": 1},
    }


def test_websocket_scope_from_a_request():
    query = b"room=a%20b&sb_transport=sse&x=%E2%82%AC&sb_ack=3"
    scope = websocket_scope(_http(query, [(b"host", b"example.com")], "https"), "sse")
    assert scope["type"] == "websocket" and scope["transport"] == "sse"
    assert scope["query_string"] == b"room=a%20b&x=%E2%82%AC"  # the rest byte for byte
    assert scope["scheme"] == "wss" and scope["path"] == "/ws/chat/"
    assert scope["subprotocols"] == [] and scope["state"] == {"k": 1}
    assert (b"origin", b"https://example.com") in scope["headers"]
    found = params(query)
    assert (found.transport, found.session, found.ack) == ("sse", None, 3)
    assert params(b"sb_ack=x").ack is None


@pytest.mark.parametrize(
    ("headers", "origin"),
    [
        ([(b"host", b"h")], b"http://h"),
        ([(b"host", b"h"), (b"sec-fetch-site", b"same-origin")], b"http://h"),
        ([(b"host", b"h"), (b"sec-fetch-site", b"cross-site")], None),
        ([(b"host", b"h"), (b"sec-fetch-site", b"same-site")], None),
        ([(b"host", b"h"), (b"origin", b"http://other")], b"http://other"),
    ],
)
def test_origin_rule(headers, origin):
    scope = websocket_scope(_http(b"", headers), "poll")
    assert dict(scope["headers"]).get(b"origin") == origin


def test_post_bodies():
    assert parse_frames(b'{"frames": ["a", {"b": "AAE="}]}') == (["a", b"\x00\x01"], False)
    assert parse_frames(b'{"close": true}') == ([], True)
    for bad in (b"[]", b"{", b'{"frames": "a"}', b'{"frames": [{"b": "!!"}]}', b"\xff"):
        with pytest.raises(Malformed):
            parse_frames(bad)
