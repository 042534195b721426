"""What the server does with what the client sends: field values, forwarded port, 100-continue
limits (issue 8, item 9), and clients that leave or send garbage without flooding the error
log (item 10)."""

from __future__ import annotations

import asyncio
import logging

import pytest

from tests.server import http_apps
from tests.server.wire import ask


def errors(caplog) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.levelno >= logging.WARNING]


# -- item 9 ---------------------------------------------------------------------------------


async def test_request_field_values_lose_surrounding_whitespace(running_server) -> None:
    # RFC 9110 section 5.5: OWS around a field value is not part of it (llhttp keeps the
    # trailing part).
    async with running_server(http_apps.echo_headers) as addr:
        request = (
            b"GET / HTTP/1.1\r\nHost: x\r\nX-A:   spaced  \t \r\nX-B:\tin\tside\t\r\n"
            b"X-Empty:   \r\n\r\n"
        )
        parsed = await ask(addr, request, [b"GET"])
    lines = parsed.answers[0].body.split(b"\n")
    assert b"x-a=[spaced]" in lines and b"x-b=[in\tside]" in lines and b"x-empty=[]" in lines


@pytest.mark.parametrize("trusted", [True, False])
async def test_forwarded_port_from_trusted_proxies_only(running_server, trusted) -> None:
    async with running_server(
        http_apps.echo_headers,
        proxy_headers=True,
        forwarded_allow_ips="127.0.0.1" if trusted else "10.9.9.9",
    ) as addr:
        request = b"GET / HTTP/1.1\r\nHost: x\r\nX-Forwarded-Port: 8443\r\n\r\n"
        parsed = await ask(addr, request, [b"GET"])
    server = parsed.answers[0].body.split(b"\n")[-1]
    assert server == (b"server=127.0.0.1:8443" if trusted else b"server=127.0.0.1:%d" % addr[1])


@pytest.mark.parametrize("value", [b"0", b"65536", b"https", b""])
async def test_invalid_forwarded_port_is_ignored(running_server, value) -> None:
    async with running_server(http_apps.echo_headers, proxy_headers=True) as addr:
        request = b"GET / HTTP/1.1\r\nHost: x\r\nX-Forwarded-Port: " + value + b"\r\n\r\n"
        parsed = await ask(addr, request, [b"GET"])
    assert parsed.answers[0].body.endswith(b"server=127.0.0.1:%d" % addr[1])


async def test_expect_continue_with_a_body_over_the_limit_gets_413_not_100(running_server):
    # RFC 9110 section 10.1.1: a final status instead of 100; the client never sends the body.
    async with running_server(http_apps.echo_body, max_body_size=1000) as addr:
        reader, writer = await asyncio.open_connection(*addr)
        writer.write(
            b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5000\r\nExpect: 100-continue\r\n\r\n"
        )
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 3)
        assert head.startswith(b"HTTP/1.1 413")
        await asyncio.wait_for(reader.read(), 3)  # then closed
        writer.close()


async def test_a_body_announced_over_the_limit_never_reaches_the_app(running_server) -> None:
    # Refused at the head, as nginx refuses past client_max_body_size: else an app that answers
    # without reading would answer 200 to a request the server cuts off on a later read.
    seen = []

    async def app(scope, receive, send):
        seen.append(scope["path"])
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"answered unread"})

    async with running_server(app, max_body_size=1000) as addr:
        reader, writer = await asyncio.open_connection(*addr)
        writer.write(b"POST /big HTTP/1.1\r\nHost: x\r\nContent-Length: 1001\r\n\r\n")
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 3)
        writer.close()
        # At the limit it is the application's.
        reader, writer = await asyncio.open_connection(*addr)
        writer.write(b"POST /ok HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n")
        ok = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 3)
        writer.close()
    assert head.startswith(b"HTTP/1.1 413") and ok.startswith(b"HTTP/1.1 200")
    assert seen == ["/ok"]


async def test_expect_continue_within_the_limit_still_gets_100(running_server) -> None:
    async with running_server(http_apps.echo_body, max_body_size=1000) as addr:
        reader, writer = await asyncio.open_connection(*addr)
        writer.write(
            b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\nExpect: 100-continue\r\n\r\n"
        )
        assert await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 3) == (
            b"HTTP/1.1 100 Continue\r\n\r\n"
        )
        writer.close()


# -- item 10 --------------------------------------------------------------------------------


async def test_sending_after_the_client_left_is_not_an_application_error(
    running_server, caplog
) -> None:
    caplog.set_level(logging.DEBUG)
    app = http_apps.SendsAfterLeaving()
    async with running_server(app) as addr:
        for _ in range(20):
            app.done.clear()
            reader, writer = await asyncio.open_connection(*addr)
            writer.write(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
            await writer.drain()
            await asyncio.sleep(0.01)
            writer.close()
            await asyncio.wait_for(app.done.wait(), 3)
    assert app.disconnects == 20
    assert not errors(caplog), [r.getMessage() for r in errors(caplog)]


class ReadsBody:
    """Reads the body and records each message type, then answers (if it still can)."""

    def __init__(self) -> None:
        self.seen: list[str] = []
        self.done = asyncio.Event()

    async def __call__(self, scope, receive, send) -> None:
        try:
            while True:
                message = await receive()
                self.seen.append(message["type"])
                if not message.get("more_body"):
                    break
            await send(http_apps.start(200))
            await send(http_apps.body(b"fine"))
        finally:
            self.done.set()


@pytest.mark.parametrize("later", [False, True], ids=["at-once", "after-a-good-chunk"])
async def test_malformed_chunked_body_gets_400_and_the_app_a_disconnect(
    running_server, caplog, later
) -> None:
    app = ReadsBody()
    async with running_server(app) as addr:
        reader, writer = await asyncio.open_connection(*addr)
        writer.write(b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n")
        if later:
            writer.write(b"3\r\nabc\r\n")
            await writer.drain()
            await asyncio.sleep(0.2)
        writer.write(b"zz\r\nnot hex\r\n")
        raw = await asyncio.wait_for(reader.read(), 3)
        writer.close()
        await asyncio.wait_for(app.done.wait(), 3)
    assert raw.startswith(b"HTTP/1.1 400") and b"fine" not in raw
    assert app.seen[-1] == "http.disconnect"
    assert not errors(caplog), [r.getMessage() for r in errors(caplog)]


async def test_malformed_request_behind_a_pipelined_one_waits_for_its_response(
    running_server,
) -> None:
    async with running_server(http_apps.Slow(delay=0.2)) as addr:
        raw = b"GET / HTTP/1.1\r\nHost: x\r\n\r\nNOT HTTP AT ALL\r\n\r\n"
        parsed = await ask(addr, raw, [b"GET", b"GET"])
    assert [(a.status, a.body) for a in parsed.answers][:1] == [(200, b"done")]
    assert [a.status for a in parsed.answers] == [200, 400] and parsed.closed


async def test_oversized_body_of_a_pipelined_request_never_reaches_the_app(running_server):
    seen = []

    async def app(scope, receive, send):
        seen.append(scope["path"])
        await http_apps.Slow(delay=0.2)(scope, receive, send)

    async with running_server(app, max_body_size=10) as addr:
        raw = (
            b"GET /first HTTP/1.1\r\nHost: x\r\n\r\n"
            b"POST /big HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n" + b"x" * 100
        )
        parsed = await ask(addr, raw, [b"GET", b"POST"])
    assert [a.status for a in parsed.answers] == [200, 413] and parsed.closed
    assert seen == ["/first"]


# -- the scope's http_version, whatever decides keep-alive ----------------------------------


async def _version_app(scope, receive, send) -> None:
    if scope["type"] != "http":
        return
    body = scope["http_version"].encode()
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-length", b"%d" % len(body))]})  # fmt: skip
    await send({"type": "http.response.body", "body": body})


@pytest.mark.parametrize(
    ("request_line", "connection", "version", "kept"),
    [
        (b"GET / HTTP/1.1", b"", b"1.1", True),
        (b"GET / HTTP/1.1", b"Connection: close\r\n", b"1.1", False),
        (b"GET / HTTP/1.1", b"Connection: keep-alive\r\n", b"1.1", True),
        (b"GET / HTTP/1.0", b"", b"1.0", False),
        (b"GET / HTTP/1.0", b"Connection: keep-alive\r\n", b"1.0", True),
        (b"GET /?q=1 HTTP/1.0", b"Connection: close\r\n", b"1.0", False),
    ],
)
async def test_http_version_is_the_requests_whether_kept_alive_or_not(
    running_server, request_line, connection, version, kept
) -> None:
    # The server names HTTP/1.1 without asking the parser when llhttp keeps a request with no
    # Connection field alive (only 1.1 is): every other combination must still say its own.
    async with running_server(_version_app) as addr:
        reader, writer = await asyncio.open_connection(*addr)
        try:
            writer.write(request_line + b"\r\nHost: x\r\n" + connection + b"\r\n")
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
            body = await asyncio.wait_for(reader.readexactly(len(version)), 5)
            closed = await asyncio.wait_for(reader.read(1), 0.5 if kept else 5) == b""
        except TimeoutError:
            closed = False  # still open: kept alive
        finally:
            writer.close()
    assert head.startswith(b"HTTP/1.1 200 ") and body == version
    assert closed is not kept
