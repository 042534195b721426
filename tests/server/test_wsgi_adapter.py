"""switchboard/server/wsgi/adapter.py: plain WSGI applications (no framework) on the real server.

The environ checks follow PEP 3333 ("environ Variables", "The start_response() Callable",
"Optional Platform-Specific File Handling"); clients are raw sockets.
"""

from __future__ import annotations

import asyncio
import io
import json
import socket
import struct
import threading
import time

import pytest

from switchboard.server.runtime.interfaces import resolve_interface, takes_wsgi_arguments
from switchboard.server.wsgi.adapter import WSGIAdapter


async def exchange(addr, data: bytes, timeout: float = 10.0) -> bytes:
    reader, writer = await asyncio.open_connection(*addr)
    writer.write(data)
    await writer.drain()
    try:
        return await asyncio.wait_for(reader.read(), timeout)
    finally:
        writer.close()


def split(raw: bytes) -> tuple[int, dict[str, str], bytes]:
    head, _, body = raw.partition(b"\r\n\r\n")
    status_line, *lines = head.decode("latin-1").split("\r\n")
    fields = {}
    for line in lines:
        name, _, value = line.partition(":")
        fields[name.strip().lower()] = value.strip()
    return int(status_line.split()[1]), fields, body


def environ_app(environ, start_response):
    body = environ["wsgi.input"].read()
    shown = {k: v for k, v in environ.items() if isinstance(v, str)}
    shown["body"] = body.decode("latin-1")
    shown["multithread"] = environ["wsgi.multithread"]
    start_response("200 OK", [("Content-Type", "application/json")])
    return [json.dumps(shown).encode()]


async def test_environ_from_the_scope(running_server) -> None:
    async with running_server(WSGIAdapter(environ_app), root_path="/app") as addr:
        raw = await exchange(
            addr,
            b"POST /caf%C3%A9/x?a=1&b=%20 HTTP/1.1\r\nHost: example.com:8080\r\n"
            b"Content-Type: text/plain\r\nContent-Length: 5\r\nX-Multi: a\r\nX-Multi: b\r\n"
            b"Cookie: c=1\r\nCookie: d=2\r\nX_Spoof: no\r\nConnection: close\r\n\r\nhello",
        )
    status, _, body = split(raw)
    assert status == 200
    env = json.loads(body)
    assert env["REQUEST_METHOD"] == "POST"
    assert env["SCRIPT_NAME"] == "/app"  # the root path
    assert env["PATH_INFO"] == "/café/x".encode().decode("latin-1")  # native string
    assert env["QUERY_STRING"] == "a=1&b=%20"  # undecoded
    assert env["CONTENT_TYPE"] == "text/plain" and env["CONTENT_LENGTH"] == "5"
    assert env["HTTP_HOST"] == "example.com:8080"
    assert env["HTTP_X_MULTI"] == "a,b"
    assert env["HTTP_COOKIE"] == "c=1; d=2"
    assert "HTTP_X_SPOOF" not in env  # "_" in a field name: dropped
    assert env["SERVER_NAME"] == "127.0.0.1" and env["SERVER_PORT"] == str(addr[1])
    assert env["REMOTE_ADDR"] == "127.0.0.1"
    assert env["SERVER_PROTOCOL"] == "HTTP/1.1"
    assert env["wsgi.url_scheme"] == "http"
    assert env["body"] == "hello"
    assert env["multithread"] is True


async def test_chunked_body_beyond_the_memory_limit_is_spooled_whole(running_server) -> None:
    seen = {}

    def app(environ, start_response):
        stream = environ["wsgi.input"]
        seen["on_disk"] = not isinstance(stream, io.BytesIO)
        data = stream.read()
        start_response("200 OK", [])
        return [b"%d" % len(data)]

    chunks = [b"x" * 40_000, b"y" * 40_000, b"z" * 40_000]
    framed = b"".join(b"%x\r\n%s\r\n" % (len(c), c) for c in chunks) + b"0\r\n\r\n"
    adapter = WSGIAdapter(app, spool_max_memory=50_000)
    async with running_server(adapter) as addr:
        raw = await exchange(
            addr,
            b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n"
            b"Connection: close\r\n\r\n" + framed,
        )
    assert split(raw)[2] == b"120000"
    assert seen["on_disk"] is True


async def test_streaming_iterable_write_and_close(running_server) -> None:
    closed = threading.Event()

    class Body:
        def __iter__(self):
            yield b""  # PEP 3333: the head waits for the first non-empty chunk
            yield b"one,"
            yield b"two"

        def close(self):
            closed.set()

    def app(environ, start_response):
        write = start_response("201 Created", [("X-A", "1")])
        write(b"written,")  # the legacy write() callable goes first
        return Body()

    async with running_server(WSGIAdapter(app)) as addr:
        raw = await exchange(addr, b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    status, fields, body = split(raw)
    assert status == 201 and fields["x-a"] == "1"
    assert fields["transfer-encoding"] == "chunked"
    assert b"written," in body and b"one," in body and b"two" in body
    assert closed.is_set()


async def test_exc_info_replaces_the_head_before_it_was_sent(running_server) -> None:
    def app(environ, start_response):
        start_response("200 OK", [("X-Draft", "1")])
        try:
            raise ValueError("boom")
        except ValueError:
            import sys

            start_response("500 Internal Server Error", [("X-Final", "1")], sys.exc_info())
        return [b"sorry"]

    async with running_server(WSGIAdapter(app)) as addr:
        raw = await exchange(addr, b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    status, fields, body = split(raw)
    assert (status, body) == (500, b"sorry")
    assert "x-draft" not in fields and fields["x-final"] == "1"


async def test_file_wrapper_sends_the_file(running_server, tmp_path) -> None:
    data = bytes(range(256)) * 4000
    path = tmp_path / "f.bin"
    path.write_bytes(data)
    closed = []

    def app(environ, start_response):
        f = open(path, "rb")  # noqa: SIM115 - closed by the wrapper
        start_response("200 OK", [("Content-Length", str(len(data)))])
        wrapper = environ["wsgi.file_wrapper"](f, 8192)
        assert wrapper.sendable_path() == str(path)
        closed.append(f)
        return wrapper

    def partly_read(environ, start_response):
        f = open(path, "rb")  # noqa: SIM115
        f.read(1000)  # not at position 0: must not be sent whole by path
        start_response("200 OK", [])
        return environ["wsgi.file_wrapper"](f)

    async with running_server(WSGIAdapter(app)) as addr:
        raw = await exchange(addr, b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    assert split(raw)[2] == data
    assert closed[0].closed
    async with running_server(WSGIAdapter(partly_read)) as addr:
        raw = await exchange(addr, b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    from tests.sites.django_site.serving import decode_chunked

    assert b"".join(decode_chunked(split(raw)[2])[0]) == data[1000:]


async def test_app_error_before_the_head_is_a_500(running_server) -> None:
    def app(environ, start_response):
        raise RuntimeError("broken")

    async with running_server(WSGIAdapter(app)) as addr:
        raw = await exchange(addr, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
    assert split(raw)[0] == 500


def test_interface_detection() -> None:
    async def asgi_app(scope, receive, send): ...

    class AsgiObject:
        async def __call__(self, scope, receive, send): ...

    def wsgi_app(environ, start_response): ...

    class WsgiObject:
        def __call__(self, environ, start_response): ...

    assert not takes_wsgi_arguments(asgi_app)
    assert not takes_wsgi_arguments(AsgiObject())
    assert not takes_wsgi_arguments(lambda scope, receive, send: None)
    assert takes_wsgi_arguments(wsgi_app) and takes_wsgi_arguments(WsgiObject())
    assert resolve_interface(asgi_app) is asgi_app
    assert isinstance(resolve_interface(wsgi_app), WSGIAdapter)
    assert resolve_interface(wsgi_app, "asgi") is wsgi_app
    wrapped = resolve_interface(asgi_app, "wsgi")
    assert isinstance(wrapped, WSGIAdapter)
    assert resolve_interface(wrapped, "wsgi") is wrapped  # Config.load() may run twice
    with pytest.raises(ValueError):
        resolve_interface(wsgi_app, "asgi2")


def test_registered_adapters_swap_exactly_their_class() -> None:
    from switchboard.server.runtime.interfaces import ADAPTERS, register_app_adapter

    class App:
        async def __call__(self, scope, receive, send): ...

    class Sub(App):
        pass

    name = f"{App.__module__}.{App.__qualname__}"
    register_app_adapter(name, lambda app: ("adapted", app))
    try:
        app = App()
        assert resolve_interface(app) == ("adapted", app)
        assert resolve_interface(app, "asgi") is app
        sub = Sub()
        assert resolve_interface(sub) is sub
    finally:
        del ADAPTERS[name]


def test_protocol_type_router_and_serve_swap_djangos_asgi_handler() -> None:
    from django.core.handlers.asgi import ASGIHandler
    from django.test import override_settings

    from switchboard.integration.native_http import DjangoHTTPApplication
    from switchboard.routing import ProtocolTypeRouter

    handler = ASGIHandler()
    assert isinstance(ProtocolTypeRouter({"http": handler}).application_mapping["http"],
                      DjangoHTTPApplication)  # fmt: skip
    assert isinstance(resolve_interface(handler), DjangoHTTPApplication)
    assert resolve_interface(handler, "asgi") is handler

    class Subclass(ASGIHandler):
        pass

    sub = Subclass()  # not exactly Django's handler: left alone
    assert ProtocolTypeRouter({"http": sub}).application_mapping["http"] is sub
    with override_settings(SWITCHBOARD_NATIVE_HTTP=False):
        assert ProtocolTypeRouter({"http": handler}).application_mapping["http"] is handler
        assert resolve_interface(handler) is handler


# --- turns to compute (no server: the pool threads and the loop's looks) --------------------


async def _run_turns(job_seconds: float, sleep: bool, jobs: int = 8) -> int:
    """``jobs`` jobs on four pool threads, one turn: how many ran at once, at most."""
    import time

    from switchboard.server.wsgi.compute_turns import ComputeTurns, TurnTicket
    from switchboard.server.wsgi.thread_pool import ThreadPool

    turns, pool = ComputeTurns(1, grace=0.002), ThreadPool(4)
    now, most, lock = [0], [0], threading.Lock()
    loop = asyncio.get_running_loop()

    def job(ticket: TurnTicket) -> None:
        try:
            ticket.start_clock()
            with lock:
                now[0] += 1
                most[0] = max(most[0], now[0])
            if sleep:
                time.sleep(job_seconds)
            else:
                end = time.thread_time() + job_seconds
                while time.thread_time() < end:
                    pass
            with lock:
                now[0] -= 1
        finally:
            successor = turns.leave(ticket)
            if successor is not None:
                pool.run_next(successor)

    async def one() -> None:
        ticket = TurnTicket()
        future = loop.create_future()
        turns.enter(ticket, (loop, future, lambda: job(ticket)), pool)
        turns.watch(loop, pool)
        await future

    try:
        await asyncio.gather(*[one() for _ in range(jobs)])
    finally:
        pool.shutdown()
    assert not turns.holders and not turns.queue  # every turn came back
    return most[0]


async def test_jobs_that_compute_take_turns() -> None:
    # 20 ms of CPU each, looked at every 2 ms: each look sees it computing. "<= 2": on a
    # busy machine the OS may leave the whole process unscheduled for most of a look.
    assert await _run_turns(0.02, sleep=False) <= 2


async def test_a_job_that_waits_gives_its_turn_up() -> None:
    # Sleeping 0.2 s each: the first look sees them waiting, so all four threads run at once.
    assert await _run_turns(0.2, sleep=True, jobs=4) == 4


async def test_a_request_given_up_while_it_waits_for_its_turn_never_runs() -> None:
    # Its task cancelled (a server shutting down) while another holds the only turn: the app
    # is never called for it, and the turn passes on to the request after it.
    release, called = threading.Event(), []

    def app(environ, start_response):
        called.append(environ["PATH_INFO"])
        if environ["PATH_INFO"] == "/first":
            release.wait(10)
        start_response("200 OK", [])
        return [b"ok"]

    adapter = WSGIAdapter(app, concurrency=1, grace=60)  # no look finds /first waiting

    async def request(path: str) -> list[dict]:
        sent: list[dict] = []

        async def receive() -> dict:
            return {"type": "http.request", "body": b""}

        async def send(message: dict) -> None:
            sent.append(message)

        scope = {"type": "http", "method": "GET", "path": path, "headers": []}
        await adapter(scope, receive, send)
        return sent

    first = asyncio.create_task(request("/first"))
    while not called:
        await asyncio.sleep(0.01)
    second = asyncio.create_task(request("/second"))
    third = asyncio.create_task(request("/third"))
    await asyncio.sleep(0.05)
    second.cancel()
    await asyncio.sleep(0.05)
    release.set()
    assert (await asyncio.wait_for(first, 10))[0]["status"] == 200
    assert (await asyncio.wait_for(third, 10))[0]["status"] == 200
    assert second.cancelled()
    assert called == ["/first", "/third"]
    assert not adapter._turns.holders and not adapter._turns.queue


async def test_the_pool_settles_loop_futures_and_runs_next_jobs_in_the_same_thread() -> None:
    from switchboard.server.wsgi.thread_pool import ThreadPool

    pool, loop = ThreadPool(4), asyncio.get_running_loop()
    try:
        assert await pool.run(loop, lambda: 42) == 42
        with pytest.raises(ZeroDivisionError):
            await pool.run(loop, lambda: 1 / 0)

        # A job that queues the next one from inside: both ran in the same thread, in order.
        ran: list[tuple[str, int]] = []
        second = loop.create_future()

        def first() -> None:
            pool.run_next((loop, second, lambda: ran.append(("second", threading.get_ident()))))
            ran.append(("first", threading.get_ident()))

        await pool.run(loop, first)
        await second
        assert [name for name, _ in ran] == ["first", "second"]
        assert ran[0][1] == ran[1][1]
        # From outside a pool thread, run_next just starts the job.
        third = loop.create_future()
        pool.run_next((loop, third, lambda: "third"))
        assert await third == "third"
    finally:
        pool.shutdown()


def test_a_thread_blocked_on_io_is_not_runnable_and_a_computing_one_is() -> None:
    # What tells a request waiting on I/O from one the OS merely left unscheduled (Linux).
    import sys
    import time

    from switchboard.server.wsgi.compute_turns import _runnable

    if not sys.platform.startswith("linux"):
        pytest.skip("reads /proc")  # CI runs on Linux: never skipped there
    tid: list[int] = []
    release = threading.Event()

    def blocked() -> None:
        tid.append(threading.get_native_id())
        release.wait(10)

    thread = threading.Thread(target=blocked)
    thread.start()
    try:
        while not tid:
            time.sleep(0.01)
        time.sleep(0.05)
        assert not _runnable(tid[0])
        assert _runnable(threading.get_native_id())  # this one, running
    finally:
        release.set()
        thread.join()


@pytest.mark.parametrize("concurrency", [0, 1], ids=["threads", "turns"])
async def test_requests_whose_clients_left_while_queued_never_run(
    running_server, concurrency
) -> None:
    # Twenty slow requests whose clients reset at once, then one more: the two a thread had
    # already taken run to their end (WSGI cannot stop them, PEP 3333), the eighteen that
    # still waited for a thread are never run, and the next request is served as soon as a
    # thread is free. gunicorn's sync workers behave alike: a request whose client has gone
    # before a worker accepts it is never handed to the application.
    started: list[str] = []

    def app(environ, start_response):
        started.append(environ["PATH_INFO"])
        if environ["PATH_INFO"] == "/slow":
            time.sleep(1.0)
        start_response("200 OK", [])
        return [b"ok"]

    from switchboard.server.wsgi.thread_pool import ThreadPool

    pool = ThreadPool(2, name="test-gone")  # its own: the default pool is shared by tests
    adapter = WSGIAdapter(app, executor=pool, concurrency=concurrency, grace=0.05)
    async with running_server(adapter) as addr:
        for _ in range(20):
            reader, writer = await asyncio.open_connection(*addr)
            writer.write(b"GET /slow HTTP/1.1\r\nHost: x\r\n\r\n")
            await writer.drain()
            sock = writer.get_extra_info("socket")
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            writer.close()  # a reset, as a client that gave up
        await asyncio.sleep(0.2)
        began = time.monotonic()
        raw = await exchange(addr, b"GET /next HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        took = time.monotonic() - began
    pool.shutdown(wait=False)
    assert split(raw)[0] == 200
    assert took < 2.5, f"the next request waited {took:.1f} s behind requests nobody waits for"
    assert started.count("/slow") <= 2, started
