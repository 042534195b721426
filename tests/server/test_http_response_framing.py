"""What an application sends is checked before it reaches the wire (issue 8, items 2 and 3).

Every case asks twice on one connection (pipelined): the second request proves the first
response was framed exactly, or the connection must be closed. Responses are parsed by h11.
"""

from __future__ import annotations

import logging

import pytest

from tests.server import http_apps
from tests.server.http_apps import Replay, body, start
from tests.server.wire import Responses, ask

GET = b"GET /app HTTP/1.1\r\nHost: x\r\n\r\n"
HEAD = b"HEAD /app HTTP/1.1\r\nHost: x\r\n\r\n"
NEXT = b"GET /ok HTTP/1.1\r\nHost: x\r\n\r\n"


async def twice(running_server, app, first: bytes = GET) -> Responses:
    method = first.split(b" ", 1)[0]
    async with running_server(http_apps.ByPath({"/app": app})) as addr:
        return await ask(addr, first + NEXT, [method, b"GET"])


def assert_second_answered(parsed: Responses) -> None:
    assert len(parsed.answers) == 2 and parsed.answers[1].complete, parsed.answers
    assert (parsed.answers[1].status, parsed.answers[1].body) == (200, b"ok")
    assert not parsed.extra


def assert_500_then_closed(parsed: Responses) -> None:
    assert [a.status for a in parsed.answers] == [500], parsed.answers
    assert parsed.answers[0].complete and parsed.closed and not parsed.extra


# -- item 2: response splitting (RFC 9110 section 5.5: CR, LF, NUL are never in a field) ----


@pytest.mark.parametrize(
    "name, value",
    [
        (b"x-a", b"1\r\ncontent-length: 0\r\n\r\nHTTP/1.1 200 OK"),
        (b"x-a", b"1\nx-b: 2"),
        (b"x-a", b"1\rx"),
        (b"x-a", b"nul\x00byte"),
        (b"x-a", b"bell\x07"),
        (b"x-a\r\nx-b", b"1"),
        (b"x a", b"1"),
        (b"x-a:", b"1"),
        (b"", b"1"),
        (b"x(a)", b"1"),
        ("x-str", b"1"),
        (b"x-a", "text"),
    ],
)
async def test_invalid_header_fields_give_500_and_never_reach_the_wire(
    running_server, name, value, caplog
) -> None:
    app = Replay(start(200, [(b"x-fine", b"1"), (name, value)]), body(b"hello"))
    parsed = await twice(running_server, app)
    assert_500_then_closed(parsed)
    assert app.errors and "header" in str(app.errors[0]).lower()
    assert any("Exception in ASGI application" in r.getMessage() for r in caplog.records)


async def test_header_values_may_hold_tabs_spaces_and_obs_text(running_server) -> None:
    value = b"a\tb  c \xe9"
    parsed = await twice(running_server, Replay(start(200, [(b"x-ok", value)]), body(b"hi")))
    assert parsed.answers[0].header(b"x-ok") == [b"a\tb  c \xe9"]
    assert_second_answered(parsed)


async def test_invalid_trailer_fields_cut_the_response(running_server) -> None:
    app = Replay(
        start(200, trailers=True),
        body(b"abc"),
        {"type": "http.response.trailers", "headers": [(b"x-sum", b"1\r\n\r\nHTTP/1.1 200")]},
    )
    async with running_server(http_apps.ByPath({"/app": app})) as addr:
        request = b"GET /app HTTP/1.1\r\nHost: x\r\nTE: trailers\r\n\r\n"
        parsed = await ask(addr, request + NEXT, [b"GET", b"GET"])
    # The head and body were out already: the chunked body never ends, the connection closes.
    assert len(parsed.answers) == 1 and not parsed.answers[0].complete and parsed.closed


# -- item 3: bodies where none may be; content-length kept honest ------------------------


@pytest.mark.parametrize("status", [204, 304])
async def test_no_content_statuses_send_no_body(running_server, status) -> None:
    app = Replay(start(status, [(b"content-length", b"5")]), body(b"hello"))
    parsed = await twice(running_server, app)
    first = parsed.answers[0]
    assert (first.status, first.body) == (status, b"")
    # RFC 9110 section 8.6: never a content-length on a 204; on a 304 it describes the GET.
    assert first.header(b"content-length") == ([] if status == 204 else [b"5"])
    assert_second_answered(parsed)


@pytest.mark.parametrize("parts", [[b"hello"], [b"hel", b"lo"]])
async def test_head_sends_no_body_even_when_the_app_does(running_server, parts) -> None:
    messages = [body(p, more=n < len(parts) - 1) for n, p in enumerate(parts)]
    app = Replay(start(200, [(b"content-length", b"5")]), *messages)
    parsed = await twice(running_server, app, HEAD)
    assert parsed.answers[0].header(b"content-length") == [b"5"]
    assert_second_answered(parsed)


async def test_head_without_length_sends_no_body(running_server) -> None:
    app = Replay(start(200), body(b"he", more=True), body(b"llo"))
    parsed = await twice(running_server, app, HEAD)
    assert parsed.answers[0].status == 200
    assert_second_answered(parsed)


@pytest.mark.parametrize("status", [100, 101, 103, 199])
async def test_informational_status_as_the_response_gives_500(running_server, status) -> None:
    # A 1xx is interim (RFC 9110 section 15.2): the client would take the next response for
    # the final answer to this request.
    parsed = await twice(running_server, Replay(start(status), body(b"x")))
    assert_500_then_closed(parsed)


@pytest.mark.parametrize("status", [99, 600, 1000, -1, "200", 200.0, None, True])
async def test_status_outside_100_to_599_gives_500(running_server, status) -> None:
    parsed = await twice(running_server, Replay(start(status), body(b"x")))
    assert_500_then_closed(parsed)


async def test_status_from_an_int_enum_is_fine(running_server) -> None:
    from http import HTTPStatus

    parsed = await twice(running_server, Replay(start(HTTPStatus.CREATED), body(b"x")))
    assert parsed.answers[0].status == 201 and parsed.answers[0].body == b"x"
    assert_second_answered(parsed)


@pytest.mark.parametrize(
    "messages",
    [
        [body(b"hello world")],  # one message, too long
        [body(b"hel")],  # one message, too short
        [body(b"", more=True), body(b"hello world")],
    ],
    ids=["long", "short", "empty-first"],
)
async def test_content_length_mismatch_before_anything_was_sent_gives_500(
    running_server, messages
) -> None:
    app = Replay(start(200, [(b"content-length", b"5")]), *messages)
    parsed = await twice(running_server, app)
    if messages[0]["more_body"]:
        # The head went out with the empty first message: cut, closed.
        assert len(parsed.answers) == 1 and not parsed.answers[0].complete and parsed.closed
    else:
        assert_500_then_closed(parsed)
    assert "content-length" in str(app.errors[0])


@pytest.mark.parametrize(
    "parts",
    [[b"hel", b"lo world"], [b"hel", b"l"], [b"he", b"l", b""]],
    ids=["long", "short", "short-end"],
)
async def test_content_length_mismatch_mid_body_closes_the_connection(running_server, parts):
    messages = [body(p, more=n < len(parts) - 1) for n, p in enumerate(parts)]
    parsed = await twice(running_server, Replay(start(200, [(b"content-length", b"5")]), *messages))
    # Part of the body is out: the client sees a cut response and a closed connection, never
    # the extra bytes (which would start the "next response") nor a hang.
    assert len(parsed.answers) == 1 and not parsed.answers[0].complete and parsed.closed
    assert not parsed.extra


@pytest.mark.parametrize("value", [b"abc", b"-1", b"5, 6", b"", b"0x5"])
async def test_invalid_content_length_gives_500(running_server, value) -> None:
    parsed = await twice(
        running_server, Replay(start(200, [(b"content-length", value)]), body(b"hello"))
    )
    assert_500_then_closed(parsed)


async def test_equal_content_lengths_are_one(running_server) -> None:
    headers = [(b"content-length", b"5"), (b"Content-Length", b"5, 5")]
    parsed = await twice(running_server, Replay(start(200, headers), body(b"hello")))
    assert parsed.answers[0].body == b"hello" and parsed.answers[0].header(b"content-length") == [
        b"5"
    ]
    assert_second_answered(parsed)


async def test_second_response_start_before_any_body_gives_500(running_server) -> None:
    parsed = await twice(running_server, Replay(start(200), start(404), body(b"x")))
    assert_500_then_closed(parsed)


async def test_second_response_start_mid_body_closes(running_server) -> None:
    parsed = await twice(running_server, Replay(start(200), body(b"x", more=True), start(404)))
    assert len(parsed.answers) == 1 and not parsed.answers[0].complete and parsed.closed


@pytest.mark.parametrize(
    "message",
    [{"type": "http.response.bogus"}, {"body": b"x"}, body("text")],  # type: ignore[arg-type]
    ids=["unknown-type", "no-type", "str-body"],
)
async def test_malformed_message_after_start_gives_500(running_server, message) -> None:
    parsed = await twice(running_server, Replay(start(200), message))
    assert_500_then_closed(parsed)


async def test_500_to_head_has_no_body(running_server) -> None:
    # RFC 9110 section 9.3.2: whatever the status, a HEAD response has no content.
    parsed = await twice(running_server, Replay(start(200), start(200)), HEAD)
    assert_500_then_closed(parsed)


async def test_app_returning_after_start_without_a_body_gives_500(running_server, caplog) -> None:
    caplog.set_level(logging.ERROR)
    parsed = await twice(running_server, Replay(start(200)))
    assert_500_then_closed(parsed)
    assert any("without sending its response" in r.getMessage() for r in caplog.records)


async def test_messages_after_the_response_are_refused_and_the_next_request_served(
    running_server,
) -> None:
    app = Replay(start(200), body(b"x"), body(b"more"))
    parsed = await twice(running_server, app)
    assert parsed.answers[0].body == b"x"
    assert_second_answered(parsed)
    assert "complete" in str(app.errors[0])


async def test_app_connection_close_token_closes_after_the_response(running_server) -> None:
    app = Replay(start(200, [(b"Connection", b"Keep-Alive, CLOSE")]), body(b"x"))
    parsed = await twice(running_server, app)
    assert [a.body for a in parsed.answers] == [b"x"] and parsed.closed and not parsed.extra
