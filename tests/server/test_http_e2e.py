"""HTTP/1.1 end to end: the real server on a loopback port, raw sockets as clients."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import threading
import time

import pytest

from tests.server import http_apps
from tests.server.serve_process import Serving, free_port

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


async def exchange(addr, data: bytes, until: bytes | None = None, timeout: float = 3.0) -> bytes:
    """Send raw bytes; read until ``until`` has been seen (or the server closes)."""
    reader, writer = await asyncio.open_connection(*addr)
    writer.write(data)
    await writer.drain()
    received = b""
    try:
        while until is None or until not in received:
            chunk = await asyncio.wait_for(reader.read(65536), timeout)
            if not chunk:
                break
            received += chunk
    finally:
        writer.close()
    return received


def responses(raw: bytes) -> list[bytes]:
    return [part for part in raw.split(b"HTTP/1.1 ")[1:]]


async def test_keep_alive_serves_two_requests_on_one_connection(running_server) -> None:
    async with running_server(http_apps.echo_body) as addr:
        reader, writer = await asyncio.open_connection(*addr)
        for n in (1, 2):
            writer.write(b"POST /r%d HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\nhi" % n)
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 3)
            assert head.startswith(b"HTTP/1.1 200 OK")
            assert b"x-path: /r%d" % n in head
            assert await asyncio.wait_for(reader.readexactly(2), 3) == b"hi"
        writer.close()


async def test_pipelined_requests_are_answered_in_order(running_server) -> None:
    async with running_server(http_apps.echo_body) as addr:
        batch = b"".join(
            b"POST /p%d HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\n\r\n%d" % (n, n)
            for n in range(5)
        )
        raw = await exchange(
            addr, batch + b"GET /last HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
        )
        paths = [line.split(b": ")[1] for line in raw.split(b"\r\n") if line.startswith(b"x-path")]
        assert paths == [b"/p0", b"/p1", b"/p2", b"/p3", b"/p4", b"/last"]


async def test_chunked_request_body_is_decoded(running_server) -> None:
    async with running_server(http_apps.echo_body) as addr:
        raw = await exchange(
            addr,
            b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
            b"5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n",
        )
        assert raw.endswith(b"hello world")


async def test_response_without_length_is_chunked(running_server) -> None:
    async with running_server(http_apps.streamed) as addr:
        raw = await exchange(addr, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n", until=b"0\r\n\r\n")
        assert b"transfer-encoding: chunked" in raw
        assert raw.endswith(b"4\r\none,\r\n4\r\ntwo,\r\n5\r\nthree\r\n0\r\n\r\n")


async def test_head_sends_no_body(running_server) -> None:
    async with running_server(http_apps.echo_body) as addr:
        raw = await exchange(addr, b"HEAD / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        assert raw.startswith(b"HTTP/1.1 200") and raw.endswith(b"\r\n\r\n")


async def test_expect_100_continue(running_server) -> None:
    async with running_server(http_apps.echo_body) as addr:
        reader, writer = await asyncio.open_connection(*addr)
        writer.write(
            b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nExpect: 100-continue\r\n\r\n"
        )
        interim = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 3)
        assert interim == b"HTTP/1.1 100 Continue\r\n\r\n"
        writer.write(b"abc")
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 3)
        assert head.startswith(b"HTTP/1.1 200")
        assert await asyncio.wait_for(reader.readexactly(3), 3) == b"abc"
        writer.close()


async def test_malformed_request_gets_400_and_close(running_server) -> None:
    async with running_server(http_apps.echo_body) as addr:
        raw = await exchange(addr, b"THIS IS NOT HTTP\r\n\r\n")
        assert raw.startswith(b"HTTP/1.1 400")


async def test_oversized_headers_get_431(running_server) -> None:
    async with running_server(http_apps.echo_body, max_header_size=1024) as addr:
        raw = await exchange(
            addr, b"GET / HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 4000 + b"\r\n\r\n"
        )
        assert raw.startswith(b"HTTP/1.1 431")


async def test_a_head_of_many_empty_fields_counts_their_framing(running_server) -> None:
    # Every byte of the head counts towards the limit (RFC 9112 section 2.3 leaves the limit
    # to the server; 431 is RFC 6585 section 5): 10,000 fields "X:" are 40 KB on the wire.
    async with running_server(http_apps.echo_body) as addr:  # the default 16 KiB
        raw = await exchange(addr, b"GET / HTTP/1.1\r\nHost: x\r\n" + b"X:\r\n" * 10_000 + b"\r\n")
        assert raw.startswith(b"HTTP/1.1 431")
        # A head well inside the limit, with as many fields as a browser sends, still passes.
        fields = b"".join(b"X-F%d: v\r\n" % n for n in range(40))
        raw = await exchange(
            addr, b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n" + fields + b"\r\n"
        )
        assert raw.startswith(b"HTTP/1.1 200")


async def test_oversized_body_gets_413(running_server) -> None:
    async with running_server(http_apps.echo_body, max_body_size=1000) as addr:
        raw = await exchange(
            addr, b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5000\r\n\r\n" + b"x" * 5000
        )
        assert raw.startswith(b"HTTP/1.1 413")


def test_responses_before_a_bad_request_all_arrive_though_the_client_still_sends(
    tmp_path,
) -> None:
    # Eight pipelined POSTs echoing 512 KiB each, then garbage (400), then 4 MiB more that the
    # server never reads, from a client that reads only after 0.5 s. Closed at once with its
    # bytes unread, the socket would send a reset, which discards what the kernel had not sent
    # yet: the client got one response of the eight and no 400. The server closes in stages
    # (RFC 9112 section 9.6; switchboard/server/connections/lingering_close.py): FIN, then
    # read and drop.
    port = free_port()
    serving = Serving(
        tmp_path / "serve.log", "tests.server.http_apps:echo_body", "--port", str(port),
        "--no-access-log",
    )  # fmt: skip
    body = b"y" * 524288
    request = b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n" % len(body) + body
    payload = request * 8 + b"NOT HTTP\r\n\r\n" + b"z" * (4 << 20)
    try:
        serving.wait_for("Listening on")
        with socket.create_connection(("127.0.0.1", port)) as sock:

            def send() -> None:
                try:
                    sock.sendall(payload)
                except OSError:
                    pass  # the server stopped reading for good: expected

            sender = threading.Thread(target=send)
            sender.start()
            time.sleep(0.5)
            received = bytearray()
            sock.settimeout(10)
            while data := sock.recv(1 << 16):
                received += data
            sender.join(10)
    finally:
        serving.stop()
        serving.close()
    assert received.count(b"HTTP/1.1 200") == 8
    assert received.count(body) == 8
    assert received.rfind(b"HTTP/1.1 400") > received.rfind(b"HTTP/1.1 200")  # the 400 last


async def test_app_exception_gives_500_without_traceback(running_server, caplog) -> None:
    async with running_server(http_apps.crashes) as addr:
        raw = await exchange(addr, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        assert raw.startswith(b"HTTP/1.1 500")
        assert b"secret internals" not in raw and b"Traceback" not in raw
    assert any("secret internals" in r.getMessage() or r.exc_info for r in caplog.records)


async def test_concurrency_limit_answers_503(running_server) -> None:
    async with running_server(http_apps.echo_body, limit_concurrency=1) as addr:
        first = await asyncio.open_connection(*addr)
        raw = await exchange(addr, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        assert raw.startswith(b"HTTP/1.1 503")
        first[1].close()


async def test_client_leaving_mid_request_sends_disconnect(running_server) -> None:
    app = http_apps.Slow(delay=2.0)
    async with running_server(app) as addr:
        reader, writer = await asyncio.open_connection(*addr)
        writer.write(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        await writer.drain()
        await asyncio.sleep(0.2)
        writer.close()
        for _ in range(100):
            if app.send_error is not None:
                break
            await asyncio.sleep(0.02)
    assert app.events == ["http.disconnect"]
    assert isinstance(app.send_error, OSError)


async def test_lifespan_state_reaches_requests(running_server) -> None:
    app = http_apps.WithLifespan()
    async with running_server(app) as addr:
        raw = await exchange(addr, b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        assert raw.endswith(b"hello from startup")
    assert app.events == ["lifespan.startup", "lifespan.shutdown"]


@pytest.mark.parametrize("peer_trusted", [True, False])
async def test_proxy_headers_only_from_trusted_peers(running_server, peer_trusted) -> None:
    allowed = "127.0.0.1" if peer_trusted else "10.9.9.9"
    async with running_server(
        http_apps.echo_body, proxy_headers=True, forwarded_allow_ips=allowed
    ) as addr:
        raw = await exchange(
            addr,
            b"GET / HTTP/1.1\r\nHost: x\r\nX-Forwarded-For: 203.0.113.7\r\n"
            b"X-Forwarded-Proto: https\r\nConnection: close\r\n\r\n",
        )
    if peer_trusted:
        assert b"x-client: 203.0.113.7" in raw and b"x-scheme: https" in raw
    else:
        assert b"x-client: 127.0.0.1" in raw and b"x-scheme: http\r\n" in raw


async def test_unix_socket(running_server, tmp_path) -> None:
    path = str(tmp_path / "sb.sock")
    async with running_server(http_apps.echo_body, uds=path):
        reader, writer = await asyncio.open_unix_connection(path)
        writer.write(b"GET /uds HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        raw = await asyncio.wait_for(reader.read(), 3)
        writer.close()
    assert raw.startswith(b"HTTP/1.1 200") and b"x-path: /uds" in raw


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _get(port: int, path: str = "/") -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        s.sendall(b"GET %s HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n" % path.encode())
        data = b""
        while chunk := s.recv(65536):
            data += chunk
    return data


def _wait_listening(port: int, proc: subprocess.Popen) -> None:
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        assert proc.poll() is None, proc.stderr.read().decode() if proc.stderr else "exited"
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return
        except OSError:
            time.sleep(0.05)
    raise AssertionError("server did not start listening")


@pytest.mark.parametrize("workers", [1, 2])
def test_cli_serves_and_drains_in_flight_request_on_sigterm(workers: int) -> None:
    port = _free_port()
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "switchboard",
            "serve",
            "tests.server.slow_app:app",
            "--port",
            str(port),
            "--workers",
            str(workers),
            "--log-level",
            "warning",
        ],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        _wait_listening(port, proc)
        assert _get(port, "/fast").endswith(b"fast")
        # A request that takes 0.5 s is in flight when SIGTERM arrives: it still completes.
        sock = socket.create_connection(("127.0.0.1", port), timeout=5)
        sock.sendall(b"GET /slow HTTP/1.1\r\nHost: x\r\n\r\n")
        time.sleep(0.15)
        proc.send_signal(signal.SIGTERM)
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
        sock.close()
        assert data.startswith(b"HTTP/1.1 200") and data.endswith(b"slow")
        assert proc.wait(timeout=10) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_cli_rejects_a_bad_import_string() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "switchboard", "serve", "no_such_module_here:app"],
        cwd=ROOT,
        capture_output=True,
        timeout=30,
    )
    assert result.returncode == 2
    assert b"Cannot import module 'no_such_module_here'" in result.stderr


def test_server_package_does_not_import_django() -> None:
    code = "import sys, switchboard.server; assert 'django' not in sys.modules, 'django imported'"
    subprocess.run([sys.executable, "-c", code], cwd=ROOT, check=True, timeout=30)


# -- http.response.trailers ---------------------------------------------------------------


async def read_response(reader: asyncio.StreamReader) -> tuple[bytes, bytes, list[bytes]]:
    """One response off the wire by its own framing: (head, body, trailer field lines)."""
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 3)
    lines = head.lower().split(b"\r\n")
    length = [int(line.split(b":")[1]) for line in lines if line.startswith(b"content-length:")]
    if length:
        return head, await asyncio.wait_for(reader.readexactly(length[0]), 3), []
    assert b"transfer-encoding: chunked" in lines
    body = b""
    while True:
        size = int((await asyncio.wait_for(reader.readuntil(b"\r\n"), 3))[:-2], 16)
        if size == 0:
            break
        chunk = await asyncio.wait_for(reader.readexactly(size + 2), 3)
        assert chunk.endswith(b"\r\n")
        body += chunk[:-2]
    trailers = []
    while (line := await asyncio.wait_for(reader.readuntil(b"\r\n"), 3)) != b"\r\n":
        trailers.append(line[:-2])
    return head, body, trailers


async def trailers_exchange(running_server, app, te: bytes | None):
    """Ask twice on one connection (the second proves the first was framed right)."""
    async with running_server(app) as addr:
        reader, writer = await asyncio.open_connection(*addr)
        request = b"GET / HTTP/1.1\r\nHost: x\r\n" + (b"TE: " + te + b"\r\n" if te else b"")
        results = []
        for _ in range(2):
            writer.write(request + b"\r\n")
            results.append(await read_response(reader))
        writer.close()
    assert len(app.errors) == 2  # a trailers message after the last one is refused
    return results


@pytest.mark.parametrize("te", [b"trailers", b"gzip;q=0.5, Trailers", b"deflate,trailers;q=1"])
async def test_trailers_sent_when_the_client_accepts_them(running_server, te: bytes) -> None:
    app = http_apps.WithTrailers(
        [b"hello ", b"world"], [[(b"x-checksum", b"abc123"), (b"content-length", b"9")]]
    )
    for head, body, trailers in await trailers_exchange(running_server, app, te):
        assert head.startswith(b"HTTP/1.1 200")
        assert b"transfer-encoding: chunked" in head and b"content-length" not in head
        assert b"trailer: x-checksum" in head
        assert body == b"hello world"
        assert trailers == [b"x-checksum: abc123"]  # framing fields never become trailers
    assert app.extensions[0]["http.response.trailers"] == {}


async def test_trailers_force_chunking_for_a_single_body_message(running_server) -> None:
    app = http_apps.WithTrailers([b"whole"], [[(b"x-checksum", b"1")]])
    for head, body, trailers in await trailers_exchange(running_server, app, b"trailers"):
        assert b"transfer-encoding: chunked" in head
        assert (body, trailers) == (b"whole", [b"x-checksum: 1"])


@pytest.mark.parametrize("parts", [[b"a", b"b"], [b"ab"]])
@pytest.mark.parametrize("te", [None, b"gzip", b"trailersx"])
async def test_trailers_dropped_when_the_client_did_not_ask(running_server, parts, te) -> None:
    app = http_apps.WithTrailers(parts, [[(b"x-checksum", b"1")]])
    for head, body, trailers in await trailers_exchange(running_server, app, te):
        assert head.startswith(b"HTTP/1.1 200")
        assert (body, trailers) == (b"ab", [])
        # A single body message keeps its plain content-length framing.
        assert (b"content-length: 2" in head) == (len(parts) == 1)


async def test_several_trailers_messages_end_with_the_last(running_server) -> None:
    app = http_apps.WithTrailers(
        [b"x" * 70000, b"y"],
        [[(b"x-first", b"1")], [], [(b"x-second", b"2"), (b"x-third", b"3")]],
        headers=[(b"trailer", b"x-first, x-second, x-third")],
    )
    for _head, body, trailers in await trailers_exchange(running_server, app, b"trailers"):
        assert body == b"x" * 70000 + b"y"
        assert trailers == [b"x-first: 1", b"x-second: 2", b"x-third: 3"]


async def test_trailers_dropped_when_the_app_set_content_length(running_server) -> None:
    app = http_apps.WithTrailers(
        [b"abc", b"de"], [[(b"x-checksum", b"1")]], headers=[(b"content-length", b"5")]
    )
    for head, body, trailers in await trailers_exchange(running_server, app, b"trailers"):
        assert b"content-length: 5" in head and b"chunked" not in head
        assert (body, trailers) == (b"abcde", [])


async def test_trailers_dropped_over_http_1_0(running_server) -> None:
    app = http_apps.WithTrailers([b"abc", b"de"], [[(b"x-checksum", b"1")]])
    async with running_server(app) as addr:
        raw = await exchange(addr, b"GET / HTTP/1.0\r\nTE: trailers\r\n\r\n")
    # HTTP/1.0 has no chunking: the body ends when the connection closes, with no fields.
    assert raw.startswith(b"HTTP/1.1 200") and b"chunked" not in raw
    assert b"connection: close" in raw and raw.endswith(b"\r\n\r\nabcde")
    assert len(app.errors) == 1


async def test_trailers_message_without_trailers_flag_is_an_app_error(running_server) -> None:
    async def app(scope, receive, send):
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"x", "more_body": True})
        await send({"type": "http.response.trailers", "headers": []})

    async with running_server(app) as addr:
        raw = await exchange(addr, b"GET / HTTP/1.1\r\nHost: x\r\nTE: trailers\r\n\r\n")
    # The response can't be finished properly: the connection is closed before the last chunk.
    assert raw.startswith(b"HTTP/1.1 200") and raw.endswith(b"1\r\nx\r\n")


# -- limits: keep-alive timeout, back-pressure both ways ----------------------------------


async def wait_closed_by_server(reader: asyncio.StreamReader, timeout: float = 3.0) -> float:
    """Seconds until the server closes the connection (EOF); fails on any data or timeout."""
    start = time.monotonic()
    assert await asyncio.wait_for(reader.read(1), timeout) == b""
    return time.monotonic() - start


async def test_keep_alive_timeout_closes_an_idle_connection(running_server) -> None:
    async with running_server(http_apps.echo_body, timeout_keep_alive=0.3) as addr:
        reader, writer = await asyncio.open_connection(*addr)
        writer.write(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        head, body, _ = await read_response(reader)
        assert head.startswith(b"HTTP/1.1 200") and b"connection: close" not in head
        # Idle between requests: closed after about timeout_keep_alive, not before.
        elapsed = await wait_closed_by_server(reader)
        assert 0.2 <= elapsed < 2.0
        writer.close()
        # A connection that never sends a request is closed the same way.
        reader, writer = await asyncio.open_connection(*addr)
        assert 0.2 <= await wait_closed_by_server(reader) < 2.0
        writer.close()


async def test_keep_alive_timeout_spares_requests_in_progress(running_server) -> None:
    # The app takes longer than the idle timeout; the timer restarts after each response.
    app = http_apps.Slow(delay=0.6)
    async with running_server(app, timeout_keep_alive=0.3) as addr:
        reader, writer = await asyncio.open_connection(*addr)
        for _ in range(2):
            writer.write(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
            head, body, _ = await read_response(reader)
            assert head.startswith(b"HTTP/1.1 200") and body == b"done"
            await asyncio.sleep(0.15)  # idle, but under the timeout
        assert await wait_closed_by_server(reader) < 2.0
        writer.close()


async def test_server_stops_writing_to_a_client_that_does_not_read(running_server) -> None:
    size, count = 64 * 1024, 1024  # 64 MiB
    app = http_apps.StreamsBig(size, count)
    loop = asyncio.get_running_loop()
    async with running_server(app) as addr:
        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 64 * 1024)  # no autotuning
        sock.setblocking(False)
        try:
            await loop.sock_connect(sock, addr)
            await loop.sock_sendall(sock, b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            await asyncio.sleep(1.0)
            # send() blocks once the kernel buffers and the transport's high-water mark are
            # full (a few MiB at most), instead of queueing the whole 64 MiB in memory.
            stalled_at = app.sent
            assert 0 < stalled_at * size < 16 * 1024 * 1024
            await asyncio.sleep(0.3)
            assert app.sent == stalled_at
            # Now read everything: every byte arrives, in order.
            data = bytearray()
            while chunk := await asyncio.wait_for(loop.sock_recv(sock, 1 << 20), 5):
                data += chunk
        finally:
            sock.close()
    head, _, body = bytes(data).partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200") and len(body) == size * count
    for n in range(count):
        assert body[n * size : (n + 1) * size] == app.chunk(n, size), n
    assert app.sent == count


async def test_server_stops_reading_an_upload_the_app_does_not_consume(running_server) -> None:
    import hashlib

    total = 32 * 1024 * 1024
    payload = os.urandom(1024 * 1024) * 32
    app = http_apps.ReadsLate(delay=1.0)
    async with running_server(app, max_body_size=64 * 1024 * 1024) as addr:
        reader, writer = await asyncio.open_connection(*addr)
        writer.write(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n" % total)
        writer.write(payload)
        head, body, _ = await read_response(reader)
        writer.close()
    assert head.startswith(b"HTTP/1.1 200")
    assert body == b"%d %s" % (total, hashlib.sha256(payload).hexdigest().encode())
    # After a second of the app not reading, the server held only about its high-water mark
    # (plus one socket read), not the megabytes the client had already pushed at it.
    assert 0 < app.first_size <= 1024 * 1024


@pytest.mark.parametrize("after_a_request", [False, True])
async def test_keep_alive_timeout_closes_a_client_stuck_in_its_headers(
    running_server, after_a_request: bool
) -> None:
    # Trickling a request head byte by byte (each gap under the timeout) must not keep the
    # connection open forever: the whole head has to arrive within timeout_keep_alive.
    async with running_server(http_apps.echo_body, timeout_keep_alive=0.4) as addr:
        reader, writer = await asyncio.open_connection(*addr)
        if after_a_request:
            writer.write(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
            await read_response(reader)
        start = time.monotonic()
        for byte in b"GET / HTTP/1.1\r\nHost: x\r\nX-Slow: " + b"a" * 100:
            try:
                writer.write(bytes([byte]))
                await writer.drain()
            except ConnectionError:
                break
            if reader.at_eof() or time.monotonic() - start > 3:
                break
            await asyncio.sleep(0.05)
        assert await asyncio.wait_for(reader.read(), 3) == b""
        assert time.monotonic() - start < 2.5
        writer.close()


@pytest.mark.parametrize(
    "request_bytes",
    [
        b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nConnection: close\r\n\r\nhello",
        b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
        b"2\r\nhe\r\n3\r\nllo\r\n0\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    ],
    ids=["content-length", "chunked", "no-body"],
)
async def test_receive_after_the_last_body_chunk_waits_instead_of_repeating(
    running_server, request_bytes
) -> None:
    # ASGI HTTP spec: after more_body=False, receive() blocks until the client disconnects or
    # the response is complete, then gives http.disconnect. A second http.request made
    # Django's handler assert ("Invalid ASGI message after request body") and answer 500.
    async with running_server(http_apps.receive_after_body) as addr:
        raw = await exchange(addr, request_bytes)
        assert raw.startswith(b"HTTP/1.1 200 OK")
        expected = b"0 waiting" if request_bytes.startswith(b"GET") else b"5 waiting"
        assert raw.endswith(expected)
