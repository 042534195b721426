"""HTTP/1.1 over asyncio with httptools: one protocol object per connection.

Requests on a connection are answered strictly in order: a pipelined request waits (with its
body buffered, reading paused) until the one before it has finished.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import httptools

from switchboard.server.config import Config
from switchboard.server.proxy import apply_proxy_headers
from switchboard.server.state import ServerState

logger = logging.getLogger("switchboard.server")
error_logger = logging.getLogger("switchboard.server.error")
access_logger = logging.getLogger("switchboard.server.access")

# Stop reading from a client whose unread request body passes this many bytes.
HIGH_WATER = 64 * 1024

# ``_Request.trailers``: the app asked for trailers; its final body message has been sent.
_TRAILERS_WANTED = 1
_TRAILERS_NEXT = 2
# Framing fields can't be trailers (RFC 9110 section 6.5.1); we drop them rather than lie.
_NOT_TRAILERS = frozenset((b"content-length", b"transfer-encoding", b"trailer", b"host"))


class ClientDisconnected(OSError):
    """The client is gone; raised by ``send`` after the connection closed."""


def _status_line(status: int) -> bytes:
    from http import HTTPStatus

    try:
        phrase = HTTPStatus(status).phrase
    except ValueError:
        phrase = ""
    return f"HTTP/1.1 {status} {phrase}\r\n".encode()


_STATUS_LINES = {code: _status_line(code) for code in range(100, 600)}


def plain_response(status: int, text: str, close: bool = True) -> bytes:
    body = text.encode()
    return b"".join(
        [
            _STATUS_LINES[status],
            b"content-type: text/plain; charset=utf-8\r\n",
            b"content-length: %d\r\n" % len(body),
            b"connection: close\r\n" if close else b"",
            b"\r\n",
            body,
        ]
    )


class _Request:
    """One request/response cycle: the app's ``receive`` and ``send``."""

    __slots__ = (
        "proto",
        "scope",
        "body",
        "body_size",
        "complete",
        "keep_alive",
        "expect_continue",
        "started",
        "finished",
        "chunked",
        "head",
        "status",
        "waiter",
        "disconnected",
        "task",
        "pending_head",
        "received",
        "trailers",
        "emit_trailers",
        "body_done",
    )

    def __init__(self, proto: HttpProtocol, scope: dict[str, Any], keep_alive: bool) -> None:
        self.proto = proto
        self.scope = scope
        self.body: deque[bytes] = deque()
        self.body_size = 0
        self.complete = False
        self.keep_alive = keep_alive
        self.expect_continue = False
        self.started = False
        self.finished = False
        self.chunked = False
        self.head = scope["method"] == "HEAD"
        self.status = 0
        self.waiter: asyncio.Future | None = None
        self.disconnected = False
        self.task: asyncio.Task | None = None
        self.pending_head: dict[str, Any] | None = None
        self.received = 0
        self.trailers = 0  # 0, _TRAILERS_WANTED or _TRAILERS_NEXT
        self.emit_trailers = False  # the trailer fields go on the wire (else they're dropped)
        self.body_done = False  # the final http.request (more_body=False) was handed over

    def wake(self) -> None:
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_result(None)

    async def receive(self) -> dict[str, Any]:
        proto = self.proto
        if self.expect_continue and not self.started and not self.disconnected:
            self.expect_continue = False
            proto.transport.write(b"HTTP/1.1 100 Continue\r\n\r\n")
        if not self.body_done:
            while not self.disconnected and not self.body and not self.complete:
                proto.resume_reading()
                self.waiter = proto.loop.create_future()
                await self.waiter
            if self.body:
                data = b"".join(self.body)
                self.body.clear()
                self.body_size = 0
                if proto.current is self:
                    proto.resume_reading()
                self.body_done = self.complete
                return {"type": "http.request", "body": data, "more_body": not self.complete}
            if self.complete and not self.disconnected:
                self.body_done = True
                return {"type": "http.request", "body": b"", "more_body": False}
        # The whole body was handed over: per the ASGI spec the next receive() waits for the
        # client to go away (or the response to finish) and then reports http.disconnect.
        while not self.disconnected and not self.finished:
            self.waiter = proto.loop.create_future()
            await self.waiter
        return {"type": "http.disconnect"}

    async def send(self, message: dict[str, Any]) -> None:
        proto = self.proto
        if self.disconnected:
            raise ClientDisconnected("client disconnected")
        kind = message["type"]
        if not self.started:
            if kind != "http.response.start":
                raise RuntimeError(f"Expected 'http.response.start', got {kind!r}")
            self.started = True
            self.status = int(message["status"])
            if message.get("trailers"):
                self.trailers = _TRAILERS_WANTED
            self.pending_head = message  # written together with the first body chunk
            return
        if self.finished:
            raise RuntimeError(f"Unexpected {kind!r}: the response is complete")
        if kind == "http.response.pathsend":
            data = await asyncio.to_thread(Path(message["path"]).read_bytes)
            message = {"type": "http.response.body", "body": data}
            kind = message["type"]
        if kind != "http.response.body" or self.trailers == _TRAILERS_NEXT:
            if kind == "http.response.trailers" and self.trailers == _TRAILERS_NEXT:
                await self._send_trailers(message)
                return
            want_trailers = self.trailers == _TRAILERS_NEXT
            expected = "http.response.trailers" if want_trailers else "http.response.body"
            raise RuntimeError(f"Expected {expected!r}, got {kind!r}")
        body = message.get("body", b"")
        more = message.get("more_body", False)
        head, self.pending_head = self.pending_head, None
        out: list[bytes] = []
        if head is not None:
            out.append(self._head_bytes(head, body, more))
        if not self.head:
            if self.chunked:
                if body:
                    out.append(b"%x\r\n%s\r\n" % (len(body), body))
                if not more:
                    # With trailers to come, the fields and the final CRLF follow later.
                    out.append(b"0\r\n" if self.emit_trailers else b"0\r\n\r\n")
            elif body:
                out.append(body)
        proto.transport.write(b"".join(out) if len(out) > 1 else out[0] if out else b"")
        if proto.writing_paused:
            await proto.drain()
        if not more:
            if self.trailers:
                # Not complete yet: the response ends with the last trailers message.
                self.trailers = _TRAILERS_NEXT
                return
            self.finished = True
            self.wake()
            proto.request_done(self)

    async def _send_trailers(self, message: dict[str, Any]) -> None:
        proto = self.proto
        more = message.get("more_trailers", False)
        if self.emit_trailers:
            out = [
                b"%s: %s\r\n" % (name, value)
                for name, value in message.get("headers", ())
                if name.lower() not in _NOT_TRAILERS
            ]
            if not more:
                out.append(b"\r\n")  # ends the chunked body
            if out:
                proto.transport.write(b"".join(out))
                if proto.writing_paused:
                    await proto.drain()
        if not more:
            self.finished = True
            self.wake()
            proto.request_done(self)

    def _accepts_trailers(self) -> bool:
        """Did the client say ``TE: trailers``? (RFC 9110 section 10.1.4)."""
        for name, value in self.scope["headers"]:
            if name == b"te":
                for item in value.split(b","):
                    if item.split(b";", 1)[0].strip().lower() == b"trailers":
                        return True
        return False

    def _head_bytes(self, head: dict[str, Any], body: bytes, more: bool) -> bytes:
        proto = self.proto
        lines = [_STATUS_LINES.get(self.status) or _status_line(self.status)]
        has_length = False
        for name, value in proto.state.default_headers:
            lines.append(b"%s: %s\r\n" % (name, value))
        for name, value in head.get("headers", ()):
            lname = name.lower()
            if lname == b"content-length":
                has_length = True
            elif lname == b"connection" and value.lower() == b"close":
                self.keep_alive = False
            elif lname == b"transfer-encoding":
                continue  # framing is ours to decide
            lines.append(b"%s: %s\r\n" % (name, value))
        no_body_status = self.status < 200 or self.status in (204, 304)
        if not has_length and not no_body_status:
            if (
                self.trailers
                and not self.head
                and self.scope["http_version"] == "1.1"
                and self._accepts_trailers()
            ):
                # Trailer fields only exist in chunked framing, so trailers force it even for a
                # single body message. Without TE: trailers, on HTTP/1.0, for HEAD, with an
                # app-set content-length (framing is then fixed: no room for fields after the
                # body) or a status without a body, the trailers are accepted and dropped.
                self.emit_trailers = self.chunked = True
                lines.append(b"transfer-encoding: chunked\r\n")
            elif more:
                if self.scope["http_version"] == "1.1":
                    self.chunked = True
                    lines.append(b"transfer-encoding: chunked\r\n")
                else:
                    self.keep_alive = False
            elif not self.head:
                lines.append(b"content-length: %d\r\n" % len(body))
        if not self.keep_alive or proto.state.shutting_down:
            self.keep_alive = False
            lines.append(b"connection: close\r\n")
        lines.append(b"\r\n")
        return b"".join(lines)


class HttpProtocol(asyncio.Protocol):
    def __init__(
        self,
        config: Config,
        state: ServerState,
        app_state: dict[str, Any] | None = None,
        loop: asyncio.AbstractEventLoop | None = None,
    ) -> None:
        self.config = config
        self.app = config.app
        self.state = state
        self.app_state = app_state if app_state is not None else {}
        self.loop = loop or asyncio.get_event_loop()
        self.parser = httptools.HttpRequestParser(self)
        self.transport: asyncio.Transport = None  # type: ignore[assignment]
        self.server: tuple[str, int] | None = None
        self.client: tuple[str, int] | None = None
        self.scheme = "http"
        self.current: _Request | None = None
        self.queue: deque[_Request] = deque()
        self.parsing: _Request | None = None
        self.url = b""
        self.headers: list[tuple[bytes, bytes]] = []
        self.header_bytes = 0
        self.upgrade = False
        self.reading_paused = False
        self.writing_paused = False
        self.drain_waiter: asyncio.Future | None = None
        self.keep_alive_handle: asyncio.TimerHandle | None = None
        self.closing = False

    # -- connection ------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:  # type: ignore[override]
        self.transport = transport  # type: ignore[assignment]
        self.state.connections.add(self)
        sock = transport.get_extra_info("socket")
        peer = transport.get_extra_info("peername")
        local = transport.get_extra_info("sockname")
        if isinstance(peer, tuple):
            self.client = (str(peer[0]), int(peer[1]))
        if isinstance(local, tuple):
            self.server = (str(local[0]), int(local[1]))
        elif isinstance(local, str):
            self.server = (local, None)  # type: ignore[assignment]
        self.scheme = "https" if transport.get_extra_info("sslcontext") else "http"
        del sock
        if (
            self.config.limit_concurrency is not None
            and len(self.state.connections) > self.config.limit_concurrency
        ):
            self.transport.write(plain_response(503, "Service Unavailable"))
            self.transport.close()
            self.closing = True
            return
        self._arm_keep_alive()

    def connection_lost(self, exc: Exception | None) -> None:
        self.state.connections.discard(self)
        self.closing = True
        self._cancel_keep_alive()
        for req in [self.current, *self.queue]:
            if req is not None:
                req.disconnected = True
                req.wake()
        if self.drain_waiter is not None and not self.drain_waiter.done():
            self.drain_waiter.set_result(None)

    def eof_received(self) -> bool | None:
        return None

    def data_received(self, data: bytes) -> None:
        if self.closing:
            return
        # The keep-alive timer is not stopped by bytes arriving, only by a complete request
        # head (on_headers_complete): a client trickling its headers gets no more time than
        # an idle one.
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade as exc:
            offset = exc.args[0] if exc.args and isinstance(exc.args[0], int) else len(data)
            self._hand_over(data[offset:])
        except httptools.HttpParserError:
            self._reject(400, "Bad Request: malformed HTTP")
        except _Rejected:
            pass

    # -- parser callbacks ------------------------------------------------

    def on_message_begin(self) -> None:
        self.url = b""
        self.headers = []
        self.header_bytes = 0
        self.upgrade = False

    def on_url(self, url: bytes) -> None:
        self.url += url
        self.header_bytes += len(url)
        if self.header_bytes > self.config.max_header_size:
            self._reject(431, "Request Header Fields Too Large")
            raise _Rejected

    def on_header(self, name: bytes, value: bytes) -> None:
        self.header_bytes += len(name) + len(value)
        if self.header_bytes > self.config.max_header_size:
            self._reject(431, "Request Header Fields Too Large")
            raise _Rejected
        name = name.lower()
        if name == b"upgrade" and value.lower() == b"websocket":
            self.upgrade = True
        self.headers.append((name, value))

    def on_headers_complete(self) -> None:
        self._cancel_keep_alive()
        parser = self.parser
        parsed = httptools.parse_url(self.url)
        raw_path = parsed.path
        path = raw_path.decode("ascii", "replace")
        if "%" in path:
            path = unquote(path)
        root = self.config.root_path
        scope: dict[str, Any] = {
            "type": "http",
            "asgi": {"version": "3.0", "spec_version": "2.4"},
            "http_version": parser.get_http_version(),
            "server": self.server,
            "client": self.client,
            "scheme": self.scheme,
            "method": parser.get_method().decode("ascii"),
            "root_path": root,
            "path": root + path,
            "raw_path": raw_path,
            "query_string": parsed.query or b"",
            "headers": self.headers,
            "state": self.app_state.copy(),
            "extensions": {"http.response.pathsend": {}, "http.response.trailers": {}},
        }
        if self.config.proxy_headers:
            apply_proxy_headers(scope, self.config.trusted_proxies)
        if self.upgrade:
            self.parsing = None
            self._upgrade_scope = scope
            return
        keep_alive = parser.should_keep_alive() and not self.state.shutting_down
        req = _Request(self, scope, keep_alive)
        for name, value in self.headers:
            if name == b"expect" and value.lower() == b"100-continue":
                req.expect_continue = True
        self.parsing = req
        self.state.total_requests += 1
        if self.current is None:
            self._start(req)
        else:
            self.queue.append(req)
            self.pause_reading()

    def on_body(self, body: bytes) -> None:
        req = self.parsing
        if req is None or req.finished:
            return
        req.body_size += len(body)
        req.received += len(body)
        if req.received > self.config.max_body_size:
            self._reject(413, "Request Entity Too Large", req)
            raise _Rejected
        req.body.append(body)
        if req.body_size > HIGH_WATER:
            self.pause_reading()
        req.wake()

    def on_message_complete(self) -> None:
        req = self.parsing
        if req is None:
            return
        req.complete = True
        self.parsing = None
        req.wake()

    # -- request lifecycle -----------------------------------------------

    def _start(self, req: _Request) -> None:
        self.current = req
        task = self.loop.create_task(self._run(req))
        req.task = task
        self.state.tasks.add(task)
        task.add_done_callback(self.state.tasks.discard)

    async def _run(self, req: _Request) -> None:
        try:
            await self.app(req.scope, req.receive, req.send)
        except BaseException as exc:  # noqa: BLE001 - every failure is answered and logged
            if isinstance(exc, asyncio.CancelledError):
                raise
            error_logger.error("Exception in ASGI application", exc_info=exc)
            if not req.started and not req.disconnected:
                self.transport.write(plain_response(500, "Internal Server Error"))
            if not req.finished:
                self.transport.close()
                self.closing = True
            return
        if not req.finished and not req.disconnected:
            if not req.started:
                error_logger.error("ASGI application returned without starting a response")
                self.transport.write(plain_response(500, "Internal Server Error"))
            self.transport.close()
            self.closing = True
        if self.config.access_log and access_logger.isEnabledFor(logging.INFO):
            access_logger.info(
                '%s - "%s %s HTTP/%s" %d',
                req.scope["client"][0] if req.scope["client"] else "-",
                req.scope["method"],
                req.scope["path"],
                req.scope["http_version"],
                req.status,
            )

    def request_done(self, req: _Request) -> None:
        if self.current is not req:
            return
        self.current = None
        if not req.keep_alive or self.state.shutting_down:
            self.transport.close()
            self.closing = True
            return
        if self.queue:
            self._start(self.queue.popleft())
        else:
            self._arm_keep_alive()
        self.resume_reading()

    def _hand_over(self, leftover: bytes) -> None:
        scope = self._upgrade_scope
        scope["scheme"] = "wss" if scope["scheme"] in ("https", "wss") else "ws"
        scope.pop("extensions", None)
        try:
            from switchboard.server.websocket import WebSocketProtocol
        except ImportError:  # pragma: no cover - module ships with the package
            self._reject(501, "WebSocket support is not available")
            return
        ws = WebSocketProtocol(self.config, self.state, self.app_state)
        self.state.connections.discard(self)
        self.closing = True
        self._cancel_keep_alive()
        self.transport.set_protocol(ws)
        ws.connection_made(self.transport)
        ws.handshake(scope, leftover)

    def _reject(self, status: int, text: str, req: _Request | None = None) -> None:
        if not self.closing:
            if req is None or not req.started:
                self.transport.write(plain_response(status, text))
            self.closing = True
            self.transport.close()

    # -- timers, flow control, shutdown -----------------------------------

    def _arm_keep_alive(self) -> None:
        self._cancel_keep_alive()
        self.keep_alive_handle = self.loop.call_later(
            self.config.timeout_keep_alive, self._keep_alive_expired
        )

    def _cancel_keep_alive(self) -> None:
        if self.keep_alive_handle is not None:
            self.keep_alive_handle.cancel()
            self.keep_alive_handle = None

    def _keep_alive_expired(self) -> None:
        if self.current is None and not self.closing:
            self.closing = True
            self.transport.close()

    def pause_reading(self) -> None:
        if not self.reading_paused and not self.closing:
            self.reading_paused = True
            self.transport.pause_reading()

    def resume_reading(self) -> None:
        if self.reading_paused and not self.closing:
            self.reading_paused = False
            self.transport.resume_reading()

    def pause_writing(self) -> None:
        self.writing_paused = True

    def resume_writing(self) -> None:
        self.writing_paused = False
        if self.drain_waiter is not None and not self.drain_waiter.done():
            self.drain_waiter.set_result(None)

    async def drain(self) -> None:
        if self.writing_paused and not self.closing:
            self.drain_waiter = self.loop.create_future()
            await self.drain_waiter

    def shutdown(self) -> None:
        """Close now when idle; otherwise after the response in flight."""
        if self.current is None:
            self.closing = True
            self.transport.close()
        else:
            self.current.keep_alive = False
            self.queue.clear()


class _Rejected(Exception):
    """Unwinds the parser after an error response was written."""
