"""Upgrade requests that are not WebSocket handshakes are plain requests (issue 8, item 4).

RFC 9110 section 7.8: a server may ignore Upgrade and answer on HTTP/1.1; tokens compare
case-insensitively. Only GET + ``Connection: upgrade`` + ``Upgrade: websocket`` (RFC 6455
section 4.2.1) goes to the WebSocket side.
"""

from __future__ import annotations

import asyncio
import json
import socket
import time
from collections.abc import Iterator

import pytest

from tests.server import http_apps
from tests.server.serve_process import Serving, free_port
from tests.server.wire import ask, ask_blocking

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


@pytest.mark.parametrize(
    "fields, expected",
    [
        (b"Connection: keep-alive, Upgrade\r\nUpgrade: WebSocket\r\n", b"101"),
        (b"Connection: UPGRADE\r\nUpgrade: websocket\r\n", b"101"),
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


# -- through a server process: the access log and what the server logs besides ----------------

HANDSHAKE = (
    b"GET /ws HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n"
    b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n"
)


@pytest.fixture(scope="module")
def serving(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Serving, int]]:
    """``tests.server.h2_apps:app`` (HTTP: the scope as JSON; WebSocket: accepted, the scope
    as JSON in the first message), access log on."""
    port = free_port()
    log = tmp_path_factory.mktemp("upgrades") / "serve.log"
    server = Serving(log, "tests.server.h2_apps:app", "--port", str(port))
    try:
        server.wait_for("Listening on")
        yield server, port
    finally:
        server.stop()
        server.close()


def logged_since(server: Serving, start: int, text: str, times: int = 1) -> str:
    """What the server logged after offset ``start``, once ``text`` is in it ``times`` times."""
    deadline = time.monotonic() + 10
    while (log := server.stderr[start:]).count(text) < times:
        assert time.monotonic() < deadline, f"{text!r} not logged {times} times:\n{log}"
        time.sleep(0.05)
    return log


def read_all(port: int, payload: bytes, timeout: float = 5.0) -> bytes:
    """Send ``payload``; everything the server writes until it closes the connection."""
    received = b""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        sock.sendall(payload)
        while data := sock.recv(65536):
            received += data
    return received


def test_connect_is_refused_at_the_parser_with_400(serving: tuple[Serving, int]) -> None:
    """HTTP/1.1 ``CONNECT host:port`` (authority-form, RFC 9112 section 3.2.3) asks for a
    tunnel (RFC 9110 section 9.3.6), which an ASGI application cannot give: the server answers
    400 and closes without running the application, since the bytes after it may be tunnel
    bytes. It used to run the app, whose 200 was refused with an ERROR traceback and a 500 per
    request. uvicorn (httptools) answers 400 "Invalid HTTP request received." too: the
    authority-form is no URL its parser accepts."""
    server, port = serving
    start = len(server.stderr)
    connect = b"CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n"
    after = b"GET /after HTTP/1.1\r\nHost: x\r\n\r\n"
    # Alone, and behind a request that is answered first.
    alone = ask_blocking(("127.0.0.1", port), connect + after, [b"CONNECT", b"GET"])
    behind = ask_blocking(("127.0.0.1", port), after + connect + after, [b"GET", b"CONNECT"])
    log = logged_since(server, start, '"CONNECT example.com:443 HTTP/1.1" 400', times=2)
    assert [a.status for a in alone.answers] == [400]
    assert alone.closed and not alone.extra  # what followed CONNECT was not read as HTTP
    assert [a.status for a in behind.answers] == [200, 400]
    assert behind.closed and not behind.extra
    assert json.loads(behind.answers[0].body)["path"] == "/after"
    assert log.count('"CONNECT example.com:443 HTTP/1.1" 400') == 2, log
    assert "ERROR" not in log and "Traceback" not in log, log


@pytest.mark.parametrize(
    "framing",
    [
        b"Content-Length: 5\r\n\r\nhello",
        b"Transfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
    ],
    ids=["content-length", "chunked"],
)
def test_websocket_handshake_with_a_body_is_refused_with_400(
    serving: tuple[Serving, int], framing: bytes
) -> None:
    """The opening handshake is a GET (RFC 6455 section 4.1), and content in a GET has no
    defined meaning (RFC 9110 section 9.3.1): here the body would be read as WebSocket frames
    after the 101, as it used to be (the connection then failed with 1002). The websockets
    library that uvicorn's default WebSocket protocol runs on refuses such a request with 400
    too ("unsupported request body", "transfer codings aren't supported")."""
    server, port = serving
    start = len(server.stderr)
    raw = read_all(port, HANDSHAKE + framing)
    assert raw.startswith(b"HTTP/1.1 400 "), raw
    assert b" 101 " not in raw
    log = logged_since(server, start, '"GET /ws HTTP/1.1" 400')
    assert "WEBSOCKET /ws" not in log and "ERROR" not in log, log


def test_websocket_handshake_with_an_empty_content_length_is_upgraded(
    serving: tuple[Serving, int],
) -> None:
    """``Content-Length: 0`` announces no body: some clients send it, and the websockets
    library accepts it too."""
    server, port = serving
    start = len(server.stderr)
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(HANDSHAKE + b"Content-Length: 0\r\n\r\n")
        head = b""
        while b"\r\n\r\n" not in head:
            head += sock.recv(4096)
    assert head.startswith(b"HTTP/1.1 101 "), head
    logged_since(server, start, '"WEBSOCKET /ws" closed')  # none of it left for the next test


def test_upgrade_offering_another_protocol_besides_websocket_is_plain_http(
    serving: tuple[Serving, int],
) -> None:
    """``Upgrade: foo, WebSocket``: a server may ignore Upgrade and answer on HTTP/1.1 (RFC
    9110 section 7.8), and does here, as uvicorn (it switches only for an Upgrade field that
    is exactly "websocket") and Daphne do: a WebSocket handshake offers websocket alone. It
    used to be handed to the WebSocket side, whose handshake refused it with 426."""
    server, port = serving
    start = len(server.stderr)
    key = b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n"
    first = (
        b"GET /up HTTP/1.1\r\nHost: x\r\nConnection: upgrade\r\nUpgrade: foo, WebSocket\r\n"
        + key
        + b"\r\n"
    )
    after = b"GET /after HTTP/1.1\r\nHost: x\r\n\r\n"
    parsed = ask_blocking(("127.0.0.1", port), first + after, [b"GET", b"GET"])
    assert [a.status for a in parsed.answers] == [200, 200]
    scopes = [json.loads(a.body) for a in parsed.answers]
    assert [(s["type"], s["path"]) for s in scopes] == [("http", "/up"), ("http", "/after")]
    assert ["upgrade", "foo, WebSocket"] in scopes[0]["headers"]
    log = logged_since(server, start, '"GET /after HTTP/1.1" 200')
    assert '"GET /up HTTP/1.1" 200' in log and "WEBSOCKET /up" not in log, log
