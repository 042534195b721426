"""Upgrade requests that are not WebSocket handshakes are plain requests (issue 8, item 4).

RFC 9110 section 7.8: a server may ignore Upgrade and answer on HTTP/1.1; tokens compare
case-insensitively. Only GET + ``Connection: upgrade`` + ``Upgrade: websocket`` (RFC 6455
section 4.2.1) goes to the WebSocket side.
"""

from __future__ import annotations

import asyncio

import pytest

from tests.server import http_apps
from tests.server.wire import ask

NEXT = b"GET /next HTTP/1.1\r\nHost: x\r\n\r\n"


@pytest.mark.parametrize(
    "fields",
    [
        b"Upgrade: websocket\r\n",  # no Connection: upgrade
        b"Connection: keep-alive\r\nUpgrade: websocket\r\n",
        b"Connection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\nHTTP2-Settings: AAMAAABk\r\n",
        b"Connection: upgrade\r\nUpgrade: foo/2, bar\r\n",
    ],
    ids=["ws-no-connection", "ws-keep-alive", "h2c", "unknown"],
)
async def test_upgrade_that_is_not_a_websocket_handshake_is_a_plain_request(
    running_server, fields
) -> None:
    async with running_server(http_apps.echo_body) as addr:
        first = b"GET /up HTTP/1.1\r\nHost: x\r\n" + fields + b"\r\n"
        parsed = await ask(addr, first + NEXT, [b"GET", b"GET"])
    paths = [a.header(b"x-path") for a in parsed.answers]
    assert paths == [[b"/up"], [b"/next"]]
    assert all(a.status == 200 and a.complete for a in parsed.answers)


async def test_refused_upgrade_request_keeps_its_body(running_server) -> None:
    async with running_server(http_apps.echo_body) as addr:
        first = (
            b"POST /up HTTP/1.1\r\nHost: x\r\nConnection: upgrade\r\nUpgrade: h2c\r\n"
            b"Content-Length: 5\r\n\r\nhello"
        )
        chunked = (
            b"POST /up2 HTTP/1.1\r\nHost: x\r\nConnection: upgrade\r\nUpgrade: h2c\r\n"
            b"Transfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n"
        )
        parsed = await ask(addr, first + chunked + NEXT, [b"POST", b"POST", b"GET"])
    assert [(a.header(b"x-path"), a.body) for a in parsed.answers] == [
        ([b"/up"], b"hello"),
        ([b"/up2"], b"abcde"),
        ([b"/next"], b""),
    ]


async def test_websocket_upgrade_with_another_method_is_a_plain_request(running_server) -> None:
    async with running_server(http_apps.echo_body) as addr:
        first = (
            b"POST /up HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n"
            b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n"
            b"Content-Length: 2\r\n\r\nhi"
        )
        parsed = await ask(addr, first + NEXT, [b"POST", b"GET"])
    assert [a.body for a in parsed.answers] == [b"hi", b""]


@pytest.mark.parametrize("status, expected", [(405, 405), (200, 500)])
async def test_connect_is_answered_and_the_connection_closed(
    running_server, status, expected
) -> None:
    seen = []

    async def app(scope, receive, send):
        seen.append((scope["method"], scope["path"]))
        await send(http_apps.start(status, [(b"content-length", b"2")]))
        await send(http_apps.body(b"no"))

    async with running_server(app) as addr:
        # What follows CONNECT may be tunnel bytes: never read as a request.
        first = b"CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n"
        parsed = await ask(addr, first + NEXT, [b"CONNECT", b"GET"])
    # A 2xx would tell the client a tunnel is open (RFC 9112 section 6.3): there is none.
    assert [a.status for a in parsed.answers] == [expected]
    assert parsed.answers[0].complete and parsed.closed and not parsed.extra
    assert seen == [("CONNECT", "example.com:443")]


@pytest.mark.parametrize(
    "fields, expected",
    [
        (b"Connection: keep-alive, Upgrade\r\nUpgrade: WebSocket\r\n", b"101"),
        (b"Connection: UPGRADE\r\nUpgrade: websocket\r\n", b"101"),
        # Goes to the WebSocket side, whose handshake wants websocket alone: an answer, where
        # this used to raise AttributeError and drop the connection.
        (b"Connection: upgrade\r\nUpgrade: foo, websocket\r\n", b"426"),
    ],
)
async def test_websocket_handshake_tokens_compare_case_insensitively(
    running_server, fields, expected
) -> None:
    from tests.server import ws_apps

    async with running_server(ws_apps.app) as addr:
        reader, writer = await asyncio.open_connection(*addr)
        writer.write(
            b"GET /echo HTTP/1.1\r\nHost: x\r\n" + fields + b"Sec-WebSocket-Key: "
            b"dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
        )
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 3)
        writer.close()
    assert head.startswith(b"HTTP/1.1 " + expected)


async def test_websocket_handshake_pipelined_behind_a_request_waits_for_its_response(
    running_server,
) -> None:
    from tests.server import ws_apps

    slow = http_apps.Slow(delay=0.3)

    async def app(scope, receive, send):
        await (slow if scope["type"] == "http" else ws_apps.app)(scope, receive, send)

    async with running_server(app) as addr:
        reader, writer = await asyncio.open_connection(*addr)
        writer.write(
            b"GET /slow HTTP/1.1\r\nHost: x\r\n\r\n"
            b"GET /echo HTTP/1.1\r\nHost: x\r\nConnection: upgrade\r\nUpgrade: websocket\r\n"
            b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
        )
        first = await asyncio.wait_for(reader.readuntil(b"done"), 3)
        second = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 3)
        writer.close()
    assert first.startswith(b"HTTP/1.1 200") and second.startswith(b"HTTP/1.1 101")


async def test_upgrade_requests_cannot_lock_out_clients_under_limit_concurrency(
    running_server,
) -> None:
    # Each used to hang forever, holding a slot of --limit-concurrency.
    async with running_server(
        http_apps.echo_body, limit_concurrency=5, timeout_keep_alive=0.3
    ) as addr:
        for _ in range(10):
            reader, writer = await asyncio.open_connection(*addr)
            writer.write(b"GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n\r\n")
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 3)
            assert head.startswith(b"HTTP/1.1 200")
            # Left open and idle: the keep-alive timer closes it.
            assert await asyncio.wait_for(reader.read(), 3) == b""
            writer.close()
        parsed = await ask(addr, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n", [b"GET"])
    assert parsed.answers[0].status == 200
