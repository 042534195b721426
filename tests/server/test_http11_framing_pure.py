"""``http11_framing`` without sockets: response heads, framing fields, chunks and trailers
(RFC 9112 sections 4, 6 and 7), read back by h11 where a whole message is built."""

from __future__ import annotations

from http import HTTPStatus

import h11
import pytest

from switchboard.server.wire.http11_framing import (
    LAST_CHUNK,
    LAST_CHUNK_BEFORE_TRAILERS,
    InvalidResponse,
    chunk,
    complete_head,
    response_head,
    trailer_section,
)

DEFAULTS = b"server: switchboard\r\n"  # ServerState.default_head


def read_back(data: bytes, method: bytes = b"GET") -> tuple[h11.Response, bytes, list]:
    """Parse a whole response as a strict client would: (response, body, trailers)."""
    conn = h11.Connection(h11.CLIENT)
    conn.send(h11.Request(method=method, target="/", headers=[("host", "x")]))
    conn.send(h11.EndOfMessage())
    conn.receive_data(data)
    conn.receive_data(b"")  # EOF: ends a close-delimited body
    response, body, trailers = None, b"", []
    while True:
        event = conn.next_event()
        if isinstance(event, h11.Response):
            response = event
        elif isinstance(event, h11.Data):
            body += event.data
        elif isinstance(event, h11.EndOfMessage):
            trailers = list(event.headers)
            break
        else:
            raise AssertionError(f"unexpected {event!r}")
    assert response is not None
    return response, body, trailers


def test_head_keeps_fields_and_defaults_in_order() -> None:
    head, length, keep_alive = response_head(
        200, [(b"content-type", b"text/plain"), (b"x-a", b"1")], DEFAULTS, True
    )
    assert head == (
        b"HTTP/1.1 200 OK\r\nserver: switchboard\r\ncontent-type: text/plain\r\nx-a: 1\r\n"
    )
    assert (length, keep_alive) == (None, True)


def test_head_framing_fields_are_the_servers() -> None:
    head, length, _ = response_head(
        200, [(b"Content-Length", b"5"), (b"transfer-encoding", b"chunked")], b"", True
    )
    assert length == 5
    assert b"transfer-encoding" not in head.lower()
    # Equal repeats of content-length are one value (RFC 9110 section 8.6).
    assert response_head(200, [(b"content-length", b"3, 3")], b"", True)[1] == 3
    with pytest.raises(InvalidResponse):
        response_head(200, [(b"content-length", b"3"), (b"content-length", b"4")], b"", True)
    # ... and a 204 never carries one (RFC 9110 section 8.6).
    head, length, _ = response_head(204, [(b"content-length", b"0")], b"", True)
    assert b"content-length" not in head and length == 0


def test_connection_close_ends_keep_alive() -> None:
    assert response_head(200, [(b"connection", b"Keep-Alive, Close")], b"", True)[2] is False


@pytest.mark.parametrize("status", [100, 101, 199, 600, "200", 200.0, True])
def test_not_a_final_status(status: object) -> None:
    # 1xx is interim (RFC 9110 section 15.2): the client would wait for the real response.
    with pytest.raises(InvalidResponse):
        response_head(status, [], b"", True)


def test_int_subclass_status_is_fine() -> None:
    assert response_head(HTTPStatus.NOT_FOUND, [], b"", True)[0] == b"HTTP/1.1 404 Not Found\r\n"


@pytest.mark.parametrize(
    "field",
    [
        (b"x-bad", b"a\r\nInjected: yes"),  # CR LF would split the response
        (b"x-bad", b"nul\x00"),
        (b"bad name", b"v"),  # not a token (RFC 9110 section 5.6.2)
        ("x-str", b"v"),  # ASGI fields are bytes
        (b"x-str", "v"),
    ],
)
def test_bad_fields_are_refused(field: tuple) -> None:
    with pytest.raises(InvalidResponse):
        response_head(200, [field], b"", True)


def test_single_body_gets_a_content_length() -> None:
    head, chunked, keep_alive = complete_head(
        b"HTTP/1.1 200 OK\r\n", 5, False, framed=False, trailers=False, http11=True, keep_alive=True
    )
    assert not chunked and keep_alive
    response, body, _ = read_back(head + b"hello")
    assert response.status_code == 200 and body == b"hello"
    assert (b"content-length", b"5") in response.headers


def test_streamed_body_is_chunked_on_http11() -> None:
    head, chunked, _ = complete_head(
        b"HTTP/1.1 200 OK\r\n",
        None,
        True,
        framed=False,
        trailers=False,
        http11=True,
        keep_alive=True,
    )
    assert chunked
    data = head + chunk(b"hel") + chunk(b"") + chunk(bytearray(b"lo")) + LAST_CHUNK
    assert read_back(data)[1] == b"hello"


def test_streamed_body_on_http10_is_close_delimited() -> None:
    # No chunked encoding in HTTP/1.0: the end of the connection ends the body (RFC 9112
    # section 6.3, rule 8).
    head, chunked, keep_alive = complete_head(
        b"HTTP/1.1 200 OK\r\n",
        None,
        True,
        framed=False,
        trailers=False,
        http11=False,
        keep_alive=True,
    )
    assert not chunked and not keep_alive
    assert head.endswith(b"connection: close\r\n\r\n")


def test_app_framing_is_left_alone() -> None:
    head, chunked, _ = complete_head(
        b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n",
        None,
        True,
        framed=True,
        trailers=True,
        http11=True,
        keep_alive=False,
    )
    assert head == b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\nconnection: close\r\n\r\n"
    assert not chunked


def test_trailers_force_chunked_framing() -> None:
    head, chunked, _ = complete_head(
        b"HTTP/1.1 200 OK\r\n", 4, False, framed=False, trailers=True, http11=True, keep_alive=True
    )
    assert chunked
    data = (
        head
        + chunk(b"body")
        + LAST_CHUNK_BEFORE_TRAILERS
        + trailer_section([(b"x-checksum", b"abc")], last=False)
        + trailer_section([(b"Content-Length", b"9"), (b"x-more", b"1")], last=True)
    )
    response, body, trailers = read_back(data)
    assert body == b"body"
    # Framing fields can't be trailers (RFC 9110 section 6.5.1): dropped.
    assert trailers == [(b"x-checksum", b"abc"), (b"x-more", b"1")]


def test_trailer_section_ends_the_message_only_when_last() -> None:
    assert trailer_section([], last=True) == b"\r\n"
    assert trailer_section([(b"host", b"x")], last=False) == b""


def test_cached_heads_answer_like_fresh_ones() -> None:
    # The second call of each is served from response_head's cache of checked heads.
    fields = [(b"content-type", b"text/plain"), (b"content-length", b"13")]
    for _ in range(2):
        head, length, keep_alive = response_head(200, fields, b"server: x\r\n", True)
        assert head == (
            b"HTTP/1.1 200 OK\r\nserver: x\r\ncontent-type: text/plain\r\ncontent-length: 13\r\n"
        )
        assert (length, keep_alive) == (13, True)
    # The default head (its date changes) is not part of what is cached.
    assert response_head(200, fields, b"date: y\r\n", True)[0].startswith(
        b"HTTP/1.1 200 OK\r\ndate: y\r\n"
    )
    close = [(b"connection", b"close")]
    for keep_alive in (True, True, False):
        assert response_head(200, close, b"", keep_alive)[2] is False
    assert response_head(200, [(b"x", b"1")], b"", False)[2] is False
    assert response_head(200, [(b"x", b"1")], b"", True)[2] is True


@pytest.mark.parametrize("status", [200.0, True])
def test_cached_head_no_shortcut_for_status_lookalikes(status: object) -> None:
    response_head(200, [], b"", True)  # cached for the int 200 (200.0 == 200 as a key)
    with pytest.raises(InvalidResponse):
        response_head(status, [], b"", True)


def test_cached_head_keeps_refusing_bad_fields() -> None:
    fields = [(b"x-ok", b"1")]
    response_head(200, fields, b"", True)
    with pytest.raises(InvalidResponse):
        response_head(200, [(b"x-ok", b"1\r\n")], b"", True)
    with pytest.raises(InvalidResponse):
        response_head(200, [[b"x-ok", b"1\r\n"]], b"", True)  # unhashable
