"""HTTP/1.1 over asyncio with httptools: one protocol object per connection.

Requests on a connection are answered strictly in order: a pipelined request waits (with its
body buffered, reading paused) until the one before it has finished. What goes on the wire is
checked by ``wire/http11_framing``: one correctly framed response per request, or a closed
connection. Each request's ASGI cycle and response framing is an
``http11_request.Http11Request``; the request head becomes a scope in ``wire/http11_scope``.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from typing import Any

import httptools

from switchboard.server.asgi.errors import ClientDisconnected, caused_by_disconnect
from switchboard.server.asgi.http_cycle import DONE
from switchboard.server.asgi.types import Scope
from switchboard.server.connections.addresses import transport_addresses
from switchboard.server.connections.flow_control import FlowControl
from switchboard.server.connections.h2.handover import alpn_chose_h2, hand_over, starts_with_preface
from switchboard.server.connections.http11_request import Http11Request
from switchboard.server.connections.lingering_close import close_in_stages
from switchboard.server.runtime import access_log
from switchboard.server.runtime.config import Config
from switchboard.server.runtime.state import ServerState
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
access_logger = access_log.access_logger

# Stop reading from a client whose unread request body passes this many bytes.
HIGH_WATER = 64 * 1024
# The least framing a header field has in a request head: ":" and CRLF.
FIELD_FRAMING = 3


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
        self.current: Http11Request | None = None
        self.queue: deque[Http11Request] = deque()
        self.parsing: Http11Request | None = None
        self.url = b""
        self.headers: list[tuple[bytes, bytes]] = []
        self.header_bytes = 0
        self.expect: bytes | None = None  # the request's Expect field, seen by on_header
        self.content_length: bytes | None = None  # and its Content-Length field
        self.flow = FlowControl(self.loop)
        self.keep_alive_handle: asyncio.TimerHandle | None = None
        self.closing = False
        # Bytes from the client are no longer parsed as HTTP/1.1 (error, WebSocket).
        self.input_closed = False
        # An error response for bad input, written once the requests before it are answered.
        self.failure: bytes | None = None
        self.ws_scope: Scope | None = None  # a WebSocket handshake was parsed
        self.ws_leftover: bytes | None = None  # ...and waits for the responses in flight
        self.refused_upgrade: Http11Request | None = None  # an Upgrade answered as plain HTTP
        self.resume_body: Http11Request | None = None  # see _refuse_upgrade
        self.log_access = False  # asked once per connection (access_log.enabled)
        self.tls: dict[str, Any] | None = None  # the ASGI tls extension, on TLS connections
        # The first bytes, until they tell whether they are the HTTP/2 preface (h2c).
        self.h2c_probe: bytes | None = b"" if config.http2 else None

    # -- connection ------------------------------------------------------

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
            hand_over(self)
            return
        self._arm_keep_alive()

    def connection_lost(self, exc: Exception | None) -> None:
        self.state.connections.discard(self)
        self.closing = True
        self._cancel_keep_alive()
        self._disconnect_requests()
        self.flow.stop()
        self.flow.release()

    def eof_received(self) -> bool | None:
        return None

    def close(self) -> None:
        """Close the connection; the requests on it see the client as gone from now on (so
        nothing more of theirs reaches the wire)."""
        if not self.closing:
            self.closing = True
            self.flow.stop()
            if self.state.shutting_down:
                self.transport.close()
            else:  # staged: a client still sending reads our last response, not a reset
                close_in_stages(self.transport, self.loop)
        self._cancel_keep_alive()
        self._disconnect_requests()

    def _disconnect_requests(self) -> None:
        for req in (self.current, *self.queue):
            if req is not None and not req.disconnected:
                req.disconnected = True
                req.wake()

    def data_received(self, data: bytes) -> None:
        self.state.bytes_in += len(data)
        if self.closing or self.input_closed:
            return
        if self.h2c_probe is not None:
            if self.h2c_probe:
                data = self.h2c_probe + data
            self.h2c_probe = None
            preface = starts_with_preface(data)
            if preface is None:
                self.h2c_probe = data
                return
            if preface:
                hand_over(self, data)
                return
        # The keep-alive timer is not stopped by bytes arriving, only by a complete request
        # head (on_headers_complete): a client trickling its headers gets no more time than
        # an idle one.
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade as exc:
            offset = exc.args[0] if exc.args and isinstance(exc.args[0], int) else len(data)
            self._upgraded(data[offset:])
        except httptools.HttpParserError:
            # Also our own callbacks' _Rejected: httptools wraps it.
            if not self.input_closed:
                self._fail_input(400, "Bad Request: malformed HTTP")

    # -- parser callbacks ------------------------------------------------

    def on_message_begin(self) -> None:
        self.url = b""
        self.headers = []
        self.header_bytes = 0
        self.expect = None
        self.content_length = None

    def on_url(self, url: bytes) -> None:
        self.url += url
        self.header_bytes += len(url)
        if self.header_bytes > self.config.max_header_size:
            self._fail_input(431, "Request Header Fields Too Large")
            raise _Rejected

    def on_header(self, name: bytes, value: bytes) -> None:
        # Each field costs at least its ":" and CRLF on the wire, and an empty one nothing
        # else: counted with its framing, 10,000 empty fields no longer pass a 16 KiB limit.
        self.header_bytes += len(name) + len(value) + FIELD_FRAMING
        if self.header_bytes > self.config.max_header_size:
            self._fail_input(431, "Request Header Fields Too Large")
            raise _Rejected
        # llhttp keeps trailing whitespace; it is not part of the value (RFC 9110 section 5.5).
        name = name.lower()
        value = value.rstrip(b" \t")
        if name == b"expect":
            self.expect = value
        elif name == b"content-length":
            self.content_length = value
        self.headers.append((name, value))

    def on_headers_complete(self) -> None:
        if self.resume_body is not None:
            self.parsing, self.resume_body = self.resume_body, None
            return
        self._cancel_keep_alive()
        parser = self.parser
        method = parser.get_method().decode("ascii")
        headers = self.headers
        scope = request_scope(
            method,
            self.url,
            parser.get_http_version(),
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
            raise _Rejected
        upgrade = parser.should_upgrade()
        if upgrade and is_websocket_upgrade(method, headers):
            if has_request_body(headers):
                # The handshake is a GET (RFC 6455 section 4.1) with no content: the body
                # would be read as WebSocket frames after the 101.
                self.parsing = Http11Request(self, scope, False)
                self._fail_input(400, "Bad Request: a WebSocket handshake has no body")
                raise _Rejected
            self.parsing = None
            self.ws_scope = scope
            return
        keep_alive = parser.should_keep_alive() and not self.state.shutting_down
        req = Http11Request(self, scope, keep_alive)
        if self.content_length is not None:
            length = content_length_value(self.content_length)
            if length is not None and length > self.config.max_body_size:
                # Announced too large: refused before any application sees it (as nginx
                # does), and before the client sends it when it waits for a 100 (RFC 9110
                # section 10.1.1). An application that answers without reading the body would
                # otherwise answer a request that the server cuts off on a later read.
                self.parsing = req  # what the refusal is logged as
                self._fail_input(413, "Request Entity Too Large")
                raise _Rejected
        if self.expect is not None and self.expect.lower() == b"100-continue":
            req.expect_continue = True
        if upgrade:
            self.refused_upgrade = req
        self.parsing = req
        self.state.total_requests += 1
        if self.log_access:
            req.began = self.loop.time()
        if self.current is None:
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
            raise _Rejected
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
        req.wake()

    # -- upgrades --------------------------------------------------------

    def _upgraded(self, leftover: bytes) -> None:
        """llhttp stopped at an Upgrade request (CONNECT was refused in on_headers_complete):
        hand a WebSocket handshake over, answer anything else as a plain request."""
        if self.ws_scope is not None:
            self.input_closed = True  # what follows are WebSocket frames
            if self.current is None and not self.queue:
                self._hand_over(leftover)
            else:
                self.ws_leftover = leftover
                self.flow.pause_reading()
            return
        req, self.refused_upgrade = self.refused_upgrade, None
        if req is None:  # pragma: no cover - llhttp only stops after on_headers_complete
            self._fail_input(400, "Bad Request: malformed HTTP")
            return
        # The client stays on HTTP/1.1 (RFC 9110 section 7.8). llhttp skipped this request's
        # body, so a fresh parser reads it: fed a head with just the request's framing fields,
        # which on_headers_complete turns back into this request.
        self.parser = httptools.HttpRequestParser(self)
        framing = [
            b"%s: %s\r\n" % field
            for field in req.scope["headers"]
            if field[0] in (b"content-length", b"transfer-encoding")
        ]
        if framing:
            req.complete = False  # its app has not run yet: nothing saw the early completion
            self.resume_body = req
            leftover = b"POST / HTTP/1.1\r\n" + b"".join(framing) + b"\r\n" + leftover
        if leftover:
            self.data_received(leftover)

    def _hand_over(self, leftover: bytes) -> None:
        scope = self.ws_scope
        assert scope is not None
        self.ws_scope = self.ws_leftover = None
        scope["scheme"] = "wss" if scope["scheme"] in ("https", "wss") else "ws"
        scope.pop("extensions", None)
        try:
            from switchboard.server.connections.websocket import WebSocketProtocol
        except ImportError:  # pragma: no cover - module ships with the package
            self._write_error(plain_response(501, "WebSocket support is not available"))
            self.close()
            return
        ws = WebSocketProtocol(self.config, self.state, self.app_state)
        # Paused for the responses before it; the new protocol reads.
        self.flow.resume_reading()
        self.release_transport()
        self.transport.set_protocol(ws)
        ws.connection_made(self.transport)
        ws.handshake(scope, leftover)
        if self.tls is not None:
            scope.setdefault("extensions", {})["tls"] = self.tls

    # -- request lifecycle -----------------------------------------------

    def _start(self, req: Http11Request) -> None:
        self.current = req
        task = self.loop.create_task(self._run(req))
        req.task = task
        self.state.tasks.add(task)
        task.add_done_callback(self.state.tasks.discard)

    async def _run(self, req: Http11Request) -> None:
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

    def _done(self, req: Http11Request) -> None:
        """Count the response (by status class) and write its access-log line."""
        status = req.status
        self.state.count_response(status)
        if self.log_access:
            seconds = self.loop.time() - req.began
            access_logger.info(access_log.http_line(req.scope, status, req.sent, seconds))

    def _abandon(self, req: Http11Request) -> None:
        """The response of ``req`` can't be completed: a 500 if none of it was written yet,
        then the connection closes (the client can tell a cut response from a whole one)."""
        if req.state is DONE:
            return  # the error came after a complete response: only logged
        if not req.wrote and not req.disconnected and not self.closing:
            req.wrote = True
            req.status = 500
            req._write(plain_response(500, "Internal Server Error", head=req.is_head))
        self.close()

    def request_done(self, req: Http11Request) -> None:
        if self.current is not req:
            return
        self.current = None
        if not req.keep_alive or self.state.shutting_down:
            self.close()
            return
        if self.queue:
            self._start(self.queue.popleft())
        elif self.failure is not None:
            self._write_error(self.failure)
            self.close()
            return
        elif self.ws_leftover is not None:
            self._hand_over(self.ws_leftover)
            return
        else:
            self._arm_keep_alive()
        self.flow.resume_reading()

    def _fail_input(self, status: int, text: str) -> None:
        """The client's bytes can't be served from here on: answer ``status`` once the
        requests before them are answered, then close."""
        self.input_closed = True
        bad, self.parsing = self.parsing, None
        current = self.current
        if bad is not None and bad is not current and bad in self.queue:
            self.queue.remove(bad)  # queued: it never reaches the app
        response = plain_response(status, text, head=bad is not None and bad.is_head)
        if current is None:
            self._write_error(response)
            self._refused(bad, status, len(response))
            self.close()
        elif current is bad:
            # The app sees http.disconnect; its own response can't go out any more. Its
            # access-log line and count come when it returns, with this status.
            if not current.wrote:
                current.wrote = True
                current.status = status
                current._write(response)
            self.close()
        else:
            self.failure = response
            self._refused(bad, status, len(response))
            self.flow.pause_reading()

    def _refused(self, bad: Http11Request | None, status: int, size: int) -> None:
        """Count, and access-log, a response of the server's own to a request that no
        application answers (``bad`` is None when its head was not even parsed)."""
        self.state.count_response(status)
        if self.log_access:
            scope = bad.scope if bad is not None else None
            client = scope.get("client") if scope is not None else self.client
            access_logger.info(access_log.refused_line(client, scope, status, size))

    def _write_error(self, response: bytes) -> None:
        """An error response of the server's own (no application saw the request)."""
        self.transport.write(response)
        self.state.bytes_out += len(response)

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
        self.keep_alive_handle = None
        if self.current is None and not self.closing:
            self.close()

    def pause_writing(self) -> None:
        self.flow.pause_writing()

    def resume_writing(self) -> None:
        self.flow.resume_writing()

    def release_transport(self) -> None:
        """Another protocol takes the transport over (WebSocket, HTTP/2): this one lets go of
        it without closing it."""
        self.state.connections.discard(self)
        self.closing = True
        self.flow.stop()
        self._cancel_keep_alive()

    def shutdown(self) -> None:
        """Close now when idle; otherwise after the response in flight."""
        if self.transport is None:
            return  # still in its TLS handshake, which the listener ends (tls.TLSServer)
        if self.current is None:
            self.close()
        else:
            self.current.keep_alive = False
            self.queue.clear()


class _Rejected(Exception):
    """Unwinds the parser after an error response was written."""
