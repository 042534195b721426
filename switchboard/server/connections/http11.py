"""HTTP/1.1 over asyncio with httptools: one protocol object per connection.

Requests on a connection are answered strictly in order: a pipelined request waits (with its
body buffered, reading paused) until the one before it has finished. What goes on the wire is
checked by ``wire/http11_framing``: one correctly framed response per request, or a closed
connection.

The protocol is put together from parts over one connection state
(``http11_connection.Http11Connection``): where the connection is in its life follows the
table of ``http11_states``; the hand-overs to HTTP/2 and WebSocket are ``http11_upgrades``';
each request's ASGI cycle and response framing is an ``http11_request.Http11Request``; the
request head becomes a scope in ``wire/http11_scope``. This module has the asyncio and parser
callbacks and runs the requests.
"""

from __future__ import annotations

import asyncio
import logging

import httptools

from switchboard.server.asgi.errors import ClientDisconnected, caused_by_disconnect
from switchboard.server.asgi.http_cycle import DONE
from switchboard.server.connections.addresses import transport_addresses
from switchboard.server.connections.h2.handover import alpn_chose_h2
from switchboard.server.connections.http11_connection import Rejected
from switchboard.server.connections.http11_request import Http11Request
from switchboard.server.connections.http11_states import (
    AFTER,
    ANSWERED,
    FAILING,
    IDLE,
    LOST,
    OPEN,
    PREFACE,
    REQUEST,
    RESPONDING,
    UPGRADING,
    ConnectionStateError,
)
from switchboard.server.connections.http11_upgrades import Upgrades
from switchboard.server.runtime import access_log
from switchboard.server.runtime.tls import tls_extension
from switchboard.server.wire.http11_framing import (
    InvalidResponse,
    content_length_value,
    has_request_body,
    is_websocket_upgrade,
    plain_response,
)
from switchboard.server.wire.http11_scope import request_scope
from switchboard.server.wire.proxy_headers import apply_proxy_headers

__all__ = ["ClientDisconnected", "HttpProtocol", "InvalidResponse", "plain_response"]

logger = logging.getLogger("switchboard.server")
error_logger = logging.getLogger("switchboard.server.error")

# Stop reading from a client whose unread request body passes this many bytes.
HIGH_WATER = 64 * 1024
# The least framing a header field has in a request head: ":" and CRLF.
FIELD_FRAMING = 3

# The name of the task that runs the application for a request.
TASK_NAME = "switchboard.http11"

# The transitions of the per-request path, looked up inline (what _event does).
_AFTER_REQUEST = AFTER[REQUEST]
_AFTER_ANSWERED = AFTER[ANSWERED]


class HttpProtocol(Upgrades):
    """One HTTP/1.1 connection (see the module docs for its parts)."""

    __slots__ = ()

    # -- connection ----------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        self.flow.transport = self.transport
        self.state.connections.add(self)
        self.log_access = access_log.enabled(self.config)
        self.client, self.server = transport_addresses(transport)
        self.scheme = "https" if transport.get_extra_info("sslcontext") else "http"
        if self.scheme == "https":
            self.tls = tls_extension(transport)
        if (
            self.config.limit_concurrency is not None
            and len(self.state.connections) > self.config.limit_concurrency
        ):
            self._write_error(plain_response(503, "Service Unavailable"))
            self.close()
            return
        if self.config.http2 and self.tls is not None and alpn_chose_h2(transport):
            self._to_h2()
            return
        self._arm_keep_alive()

    def connection_lost(self, exc: Exception | None) -> None:
        self.state.connections.discard(self)
        self._event(LOST)
        self._cancel_keep_alive()
        self._disconnect_requests()
        self.flow.stop()
        self.flow.release()

    def eof_received(self) -> bool | None:
        return None

    def data_received(self, data: bytes) -> None:
        self.state.bytes_in += len(data)
        conn_state = self.conn_state
        if conn_state is not IDLE and conn_state is not RESPONDING:
            if conn_state is not PREFACE:
                return  # closing, or no longer HTTP/1.1 (an upgrade, refused input)
            parse = self._probe_preface(data)
            if parse is None:
                return
            data = parse
        # The keep-alive timer is not stopped by bytes arriving, only by a complete request
        # head taking the connection out of IDLE: a client trickling its headers gets no more
        # time than an idle one.
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade as exc:
            offset = exc.args[0] if exc.args and isinstance(exc.args[0], int) else len(data)
            self._upgraded(data[offset:])
        except httptools.HttpParserError as exc:
            # Also our own callbacks' Rejected: httptools wraps it.
            if isinstance(exc.__context__, ConnectionStateError):
                raise exc.__context__ from None  # a bug of ours, not bad input
            if self.conn_state is IDLE or self.conn_state is RESPONDING:
                self._fail_input(400, "Bad Request: malformed HTTP")

    # -- parser callbacks ----------------------------------------------------------------

    def on_message_begin(self) -> None:
        self.url = b""
        self.headers = []
        self.header_bytes = 0
        self.expect = None
        self.content_length = None
        self.connection_field = False

    def on_url(self, url: bytes) -> None:
        self.url = self.url + url if self.url else url  # mostly one piece: no copy
        self.header_bytes += len(url)
        if self.header_bytes > self.config.max_header_size:
            self._fail_input(431, "Request Header Fields Too Large")
            raise Rejected

    def on_header(self, name: bytes, value: bytes) -> None:
        # Each field costs at least its ":" and CRLF on the wire, and an empty one nothing
        # else: counted with its framing, 10,000 empty fields no longer pass a 16 KiB limit.
        self.header_bytes += len(name) + len(value) + FIELD_FRAMING
        if self.header_bytes > self.config.max_header_size:
            self._fail_input(431, "Request Header Fields Too Large")
            raise Rejected
        # llhttp keeps trailing whitespace; it is not part of the value (RFC 9110 section 5.5).
        name = name.lower()
        value = value.rstrip(b" \t")
        if name == b"expect":
            self.expect = value
        elif name == b"content-length":
            self.content_length = value
        elif name == b"connection":
            self.connection_field = True
        self.headers.append((name, value))

    def on_headers_complete(self) -> None:
        if self.resume_body is not None:
            self.parsing, self.resume_body = self.resume_body, None
            return
        parser = self.parser
        method = parser.get_method().decode("ascii")
        keep_alive = parser.should_keep_alive()
        # llhttp takes HTTP/0.9, 1.0, 1.1 and 2.0 (no leniency is set), and of those keeps
        # only 1.1 alive without a Connection field: get_http_version formats a new str.
        if keep_alive and not self.connection_field:
            version = "1.1"
        else:
            version = parser.get_http_version()
        headers = self.headers
        scope = request_scope(
            method,
            self.url,
            version,
            headers,
            self.config.root_path,
            self.server,
            self.client,
            self.scheme,
            self.app_state,
            self.tls,
        )
        if self.config.proxy_headers:
            apply_proxy_headers(scope, self.config.trusted_proxies)
        if method == "CONNECT":
            # A tunnel (RFC 9110 section 9.3.6), which ASGI has none to offer: refused before
            # any application runs, and nothing after it is read (it may be tunnel bytes).
            self.parsing = Http11Request(self, scope, False)  # what the refusal is logged as
            self._fail_input(400, "Bad Request: CONNECT is not supported")
            raise Rejected
        upgrade = parser.should_upgrade()
        if upgrade and is_websocket_upgrade(method, headers):
            if has_request_body(headers):
                # The handshake is a GET (RFC 6455 section 4.1) with no content: the body
                # would be read as WebSocket frames after the 101.
                self.parsing = Http11Request(self, scope, False)
                self._fail_input(400, "Bad Request: a WebSocket handshake has no body")
                raise Rejected
            self.parsing = None
            self.ws_scope = scope  # handed over from _upgraded, where llhttp stops
            return
        req = Http11Request(self, scope, keep_alive and not self.state.shutting_down)
        if self.content_length is not None:
            length = content_length_value(self.content_length)
            if length is not None and length > self.config.max_body_size:
                # Announced too large: refused before any application sees it (as nginx
                # does), and before the client sends it when it waits for a 100 (RFC 9110
                # section 10.1.1). An application that answers without reading the body would
                # otherwise answer a request that the server cuts off on a later read.
                self.parsing = req  # what the refusal is logged as
                self._fail_input(413, "Request Entity Too Large")
                raise Rejected
        if self.expect is not None and self.expect.lower() == b"100-continue":
            req.expect_continue = True
        if upgrade:
            self.refused_upgrade = req
        self.parsing = req
        self.state.total_requests += 1
        if self.log_access:
            req.began = self.loop.time()
        before = self.conn_state
        self.conn_state = _AFTER_REQUEST[before]
        if before is IDLE:
            self._start(req)
        else:
            self.queue.append(req)
            self.flow.pause_reading()

    def on_body(self, body: bytes) -> None:
        req = self.parsing
        if req is None or req.state is DONE:
            return
        req.body_size += len(body)
        req.received += len(body)
        if req.received > self.config.max_body_size:
            self._fail_input(413, "Request Entity Too Large")
            raise Rejected
        req.body.append(body)
        if req.body_size > HIGH_WATER:
            self.flow.pause_reading()
        req.wake()

    def on_message_complete(self) -> None:
        req = self.parsing
        if req is None:
            return
        req.complete = True
        self.parsing = None
        if req.waiter is not None:  # what wake() has to do here
            req.wake()

    # -- the requests, in order ----------------------------------------------------------

    def _start(self, req: Http11Request) -> None:
        self.current = req
        loop = self.loop
        if loop.get_task_factory() is None:
            # What create_task does (on the running loop, this one), with a name: a task
            # without one formats its own.
            task = asyncio.Task(self._run(req), loop=loop, name=TASK_NAME)
        else:
            task = loop.create_task(self._run(req), name=TASK_NAME)
        req.task = task
        # Discarded by _run as it ends rather than by a done callback, which would cost a
        # loop turn per request. (A task cancelled before its first step, which only the
        # shutdown does, stays in the set: done, which is all the shutdown asks.)
        self.state.tasks.add(task)

    async def _run(self, req: Http11Request) -> None:
        try:
            try:
                await self.app(req.scope, req.receive, req.send)
            except BaseException as exc:  # noqa: BLE001 - every failure is answered and logged
                if isinstance(exc, asyncio.CancelledError):
                    raise
                if req.disconnected and caused_by_disconnect(exc):
                    # The client left: nothing went wrong in the application.
                    logger.debug(
                        "Client disconnected during %s %s", req.scope["method"], req.scope["path"]
                    )
                else:
                    error_logger.error("Exception in ASGI application", exc_info=exc)
                self._abandon(req)
                self._done(req)
                return
            if req.state is not DONE and not req.disconnected:
                missing = req.unanswered()
                if missing is not None:
                    error_logger.error("ASGI application returned without %s", missing)
                self._abandon(req)
            self._done(req)
        finally:
            self.state.tasks.discard(req.task)

    def _abandon(self, req: Http11Request) -> None:
        """The response of ``req`` can't be completed: a 500 if none of it was written yet,
        then the connection closes (the client can tell a cut response from a whole one)."""
        if req.state is DONE:
            return  # the error came after a complete response: only logged
        if not req.wrote and not req.disconnected and self.conn_state in OPEN:
            req.wrote = True
            req.status = 500
            req._write(plain_response(500, "Internal Server Error", head=req.is_head))
        self.close()

    def request_done(self, req: Http11Request) -> None:
        """The response of ``req`` is complete: the next request in line, or what the
        connection's state says comes once the requests in flight are answered."""
        if self.current is not req:
            return
        self.current = None
        if not req.keep_alive or self.state.shutting_down:
            self.close()
            return
        if self.queue:
            self._start(self.queue.pop(0))
        else:
            conn_state = self.conn_state
            if conn_state is RESPONDING:
                self.conn_state = _AFTER_ANSWERED[conn_state]
                # _arm_keep_alive, inline: once per request.
                self.idle_since = self.loop.time()
                if self.idle_timer is None:
                    self._arm_keep_alive()
            elif conn_state is FAILING:
                self._write_error(self.failure)
                self.close()
                return
            elif conn_state is UPGRADING:
                self._hand_over_websocket(self.ws_leftover)
                return
            # else CLOSING or CLOSED: the response ended after the connection did
        flow = self.flow
        if flow.reading_paused:
            flow.resume_reading()

    def shutdown(self) -> None:
        """Close now when idle; otherwise after the response in flight."""
        if self.transport is None:
            return  # still in its TLS handshake, which the listener ends (tls.TLSServer)
        if self.current is None:
            self.close()
        else:
            self.current.keep_alive = False
            self.queue.clear()
