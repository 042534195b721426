"""One HTTP/2 stream as an ASGI ``http`` request/response cycle: the app's ``receive`` and
``send``.

The connection (``protocol.H2Protocol``) feeds it request data and resets; the stream turns the
app's messages into HEADERS/DATA on the shared ``h2`` connection, within the flow-control
windows (a ``send`` waits for WINDOW_UPDATE, so a slow client slows the app down), and hands
request data back to the window only as the app reads it (so a slow app slows the client).
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections import deque
from typing import TYPE_CHECKING, Any

from h2.errors import ErrorCodes
from h2.exceptions import H2Error

from switchboard.server.asgi_types import Message, Scope
from switchboard.server.errors import ClientDisconnected, InvalidResponse, caused_by_disconnect
from switchboard.server.h2.fields import ResponseHead, response_head, trailer_fields
from switchboard.server.http11_framing import NO_CONTENT_STATUSES
from switchboard.server.pathsend import FILE_CHUNK, open_regular_file

if TYPE_CHECKING:
    from switchboard.server.h2.protocol import H2Protocol

logger = logging.getLogger("switchboard.server")
error_logger = logging.getLogger("switchboard.server.error")
access_logger = logging.getLogger("switchboard.server.access")

_BYTES_LIKE = (bytes, bytearray, memoryview)


class HttpStream:
    __slots__ = (
        "proto",
        "stream_id",
        "scope",
        "body",
        "unacked",
        "received",
        "complete",
        "body_done",
        "disconnected",
        "waiter",
        "window_waiter",
        "started",
        "finished",
        "wrote",
        "head",
        "status",
        "no_content",
        "length",
        "trailers",
        "trailers_next",
        "trailer_fields",
    )

    def __init__(self, proto: H2Protocol, stream_id: int, scope: Scope) -> None:
        self.proto = proto
        self.stream_id = stream_id
        self.scope = scope
        self.body: deque[bytes] = deque()
        self.unacked = 0  # flow-controlled bytes received, not yet read by the app
        self.received = 0
        self.complete = False  # the client ended its side of the stream
        self.body_done = False  # the final http.request went to the app
        self.disconnected = False
        self.waiter: asyncio.Future | None = None
        self.window_waiter: asyncio.Future | None = None
        self.started = False
        self.finished = False  # END_STREAM went out (or the stream was reset)
        self.wrote = False  # the HEADERS went out: no 500 possible any more
        self.head: ResponseHead | None = None
        self.status = 0
        self.no_content = scope["method"] == "HEAD"
        self.length: int | None = None
        self.trailers = False
        self.trailers_next = False
        self.trailer_fields: list[tuple[bytes, bytes]] = []

    # -- from the connection ------------------------------------------------------------

    def wake(self) -> None:
        waiter = self.waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def wake_window(self) -> None:
        waiter = self.window_waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def data(self, data: bytes, flow_length: int) -> bool:
        """Request body from the client; False when it is more than ``max_body_size``."""
        self.received += len(data)
        if self.received > self.proto.config.max_body_size:
            return False
        if self.body_done or self.finished:
            self.proto.ack(self.stream_id, flow_length)  # nobody reads it any more
            return True
        self.unacked += flow_length
        if data:
            self.body.append(data)
        self.wake()
        return True

    def end(self) -> None:
        self.complete = True
        self.wake()

    def disconnect(self) -> None:
        self.disconnected = True
        self.wake()
        self.wake_window()

    def refuse_body(self) -> None:
        """More request body than ``max_body_size``: 413 unless the response has begun, and
        the client is told to stop sending (RST_STREAM); the app sees http.disconnect."""
        conn = self.proto.conn
        try:
            if not self.wrote and not self.finished:
                self.wrote = self.finished = True
                self.status = 413
                body = b"Request Entity Too Large"
                fields = [(b":status", b"413"), *self.proto.state.default_headers]
                fields += [
                    (b"content-type", b"text/plain; charset=utf-8"),
                    (b"content-length", b"%d" % len(body)),
                ]
                conn.send_headers(self.stream_id, fields, False)
                conn.send_data(self.stream_id, body, True)
                conn.reset_stream(self.stream_id, ErrorCodes.NO_ERROR)
            else:
                conn.reset_stream(self.stream_id, ErrorCodes.CANCEL)
        except H2Error:
            pass
        self.finished = True
        self.disconnect()
        self.proto.streams.pop(self.stream_id, None)
        self.proto.schedule_flush()

    # -- ASGI -------------------------------------------------------------------------------

    async def receive(self) -> Message:
        if not self.body_done:
            while not self.disconnected and not self.body and not self.complete:
                self.waiter = self.proto.loop.create_future()
                await self.waiter
            if self.body:
                body = self.body
                data = body[0] if len(body) == 1 else b"".join(body)
                body.clear()
                if self.unacked:
                    self.proto.ack(self.stream_id, self.unacked)
                    self.unacked = 0
                self.body_done = self.complete
                return {"type": "http.request", "body": data, "more_body": not self.complete}
            if self.complete and not self.disconnected:
                self.body_done = True
                return {"type": "http.request", "body": b"", "more_body": False}
        # Whole body handed over: the next receive waits for the end (ASGI http.disconnect).
        while not self.disconnected and not self.finished:
            self.waiter = self.proto.loop.create_future()
            await self.waiter
        return {"type": "http.disconnect"}

    async def send(self, message: Message) -> None:
        # A message refused with InvalidResponse has no effect: nothing of it is sent.
        if self.disconnected:
            raise ClientDisconnected("client disconnected")
        kind = message["type"]
        if not self.started:
            if kind != "http.response.start":
                raise InvalidResponse(f"Expected 'http.response.start', got {kind!r}")
            head = response_head(message, self.proto.state.default_headers)
            if head.status < 300 and self.scope["method"] == "CONNECT":
                # A 2xx to CONNECT opens a tunnel (RFC 9113 section 8.5): not an ASGI thing.
                raise InvalidResponse("A 2xx response to CONNECT would open a tunnel")
            self.head = head
            self.status = head.status
            if head.status in NO_CONTENT_STATUSES:
                self.no_content = True
            # With no content, a content-length describes the representation (HEAD, 304).
            self.length = None if self.no_content else head.length
            self.trailers = bool(message.get("trailers"))
            self.started = True
            return
        if self.finished:
            raise InvalidResponse(f"Unexpected {kind!r}: the response is complete")
        if self.trailers_next:
            if kind != "http.response.trailers":
                raise InvalidResponse(f"Expected 'http.response.trailers', got {kind!r}")
            self.trailer_fields.extend(trailer_fields(message))
            if not message.get("more_trailers", False):
                # HTTP/2 frames trailers itself (a HEADERS ending the stream; RFC 9113 section
                # 8.1), so unlike HTTP/1.1 they need no TE: trailers from the client.
                self._h2(self.proto.conn.send_headers, self.stream_id, self.trailer_fields, True)
                self._finish()
            return
        if kind == "http.response.body":
            body = message.get("body", b"")
            more = message.get("more_body", False)
            if body.__class__ is not bytes:
                if not isinstance(body, _BYTES_LIKE):
                    raise InvalidResponse(f"http.response.body must be bytes, not {type(body)!r}")
                body = bytes(body)
            self._count_down(len(body), more)
            await self._body(body, more)
        elif kind == "http.response.pathsend":
            await self._send_file(message["path"])
            more = False
        else:
            raise InvalidResponse(f"Expected 'http.response.body', got {kind!r}")
        if not more:
            if self.trailers:
                self.trailers_next = True
            else:
                self._finish()

    def _count_down(self, size: int, more: bool) -> None:
        """Hold the body to the app's content-length (RFC 9110 section 8.6)."""
        length = self.length
        if length is None:
            return
        if size > length:
            raise InvalidResponse("Response body longer than its content-length")
        if not more and size < length:
            raise InvalidResponse("Response body shorter than its content-length")
        self.length = length - size

    def _h2(self, method: Any, *args: Any) -> None:
        """Call the h2 connection; a stream it says is gone means the client left."""
        try:
            method(*args)
        except H2Error as exc:
            self.disconnect()
            raise ClientDisconnected("stream closed") from exc

    async def _body(self, body: bytes, more: bool) -> None:
        proto = self.proto
        end = not more and not self.trailers
        if self.no_content:
            body = b""
        head = self.head
        if head is not None:
            self.head = None
            self.wrote = True
            fields = head.fields
            if head.length is None and not more and not self.no_content:
                fields.append((b"content-length", b"%d" % len(body)))
            if not body:
                self._h2(proto.conn.send_headers, self.stream_id, fields, end)
                proto.schedule_flush()
                return
            self._h2(proto.conn.send_headers, self.stream_id, fields, False)
        if body or end:
            await self._data(body, end)

    async def _data(self, data: bytes, end: bool) -> None:
        """DATA frames for ``data`` as the stream's and the connection's windows allow."""
        proto = self.proto
        conn = proto.conn
        sid = self.stream_id
        size = len(data)
        if not size:
            self._h2(conn.end_stream, sid)
        pos = 0
        while pos < size:
            if self.disconnected:
                raise ClientDisconnected("client disconnected")
            try:
                window = conn.local_flow_control_window(sid)
            except H2Error as exc:
                self.disconnect()
                raise ClientDisconnected("stream closed") from exc
            if window <= 0:
                proto.flush()
                self.window_waiter = proto.loop.create_future()
                await self.window_waiter
                self.window_waiter = None
                continue
            n = min(size - pos, window, conn.max_outbound_frame_size)
            chunk = data if n == size else data[pos : pos + n]
            pos += n
            self._h2(conn.send_data, sid, chunk, end and pos == size)
        if proto.flow.writing_paused:
            proto.flush()
            await proto.flow.drain()
            if self.disconnected and not (end and pos == size):
                raise ClientDisconnected("client disconnected")
        else:
            proto.schedule_flush()

    async def _send_file(self, path: Any) -> None:
        """http.response.pathsend: the file is the rest of the body."""
        file, size = await asyncio.to_thread(open_regular_file, path)
        with file:
            self._count_down(size, False)
            loop = self.proto.loop
            fd = file.fileno()
            offset = 0
            if self.no_content or not size:
                await self._body(b"", False)
                return
            while offset < size:
                data = await loop.run_in_executor(
                    None, os.pread, fd, min(FILE_CHUNK, size - offset), offset
                )
                if not data:
                    raise InvalidResponse(f"http.response.pathsend: the file shrank below {size}")
                offset += len(data)
                if self.head is not None:
                    self.head.length = size  # framing known: announce it
                    self.head.fields.append((b"content-length", b"%d" % size))
                await self._body(data, offset < size)

    def _finish(self) -> None:
        self.finished = True
        self.wake()
        self.proto.response_done(self)

    # -- the application ----------------------------------------------------------------

    async def run(self) -> None:
        proto = self.proto
        scope = self.scope
        try:
            await proto.app(scope, self.receive, self.send)
        except BaseException as exc:  # noqa: BLE001 - every failure is answered and logged
            if isinstance(exc, asyncio.CancelledError):
                self._abandon()
                raise
            if self.disconnected and caused_by_disconnect(exc):
                logger.debug("Client disconnected during %s %s", scope["method"], scope["path"])
            else:
                error_logger.error("Exception in ASGI application", exc_info=exc)
            self._abandon()
        else:
            if not self.finished and not self.disconnected:
                if not self.wrote:
                    error_logger.error(
                        "ASGI application returned without %s",
                        "sending its response" if self.started else "starting a response",
                    )
                self._abandon()
        finally:
            proto.app_done(self)
        if proto.config.access_log and access_logger.isEnabledFor(logging.INFO):
            access_logger.info(
                '%s - "%s %s HTTP/2" %d',
                scope["client"][0] if scope["client"] else "-",
                scope["method"],
                scope["path"],
                self.status,
            )

    def _abandon(self) -> None:
        """The response cannot be completed: a 500 if nothing went out yet, else a reset
        (the client can tell a cut response from a whole one)."""
        if self.finished or self.disconnected:
            return
        proto = self.proto
        conn = proto.conn
        try:
            if not self.wrote:
                self.wrote = True
                self.status = 500
                body = b"" if self.scope["method"] == "HEAD" else b"Internal Server Error"
                fields = [(b":status", b"500"), *proto.state.default_headers]
                fields += [
                    (b"content-type", b"text/plain; charset=utf-8"),
                    (b"content-length", b"21"),
                ]
                conn.send_headers(self.stream_id, fields, not body)
                if body:
                    conn.send_data(self.stream_id, body, True)
                self._finish()
            else:
                conn.reset_stream(self.stream_id, ErrorCodes.INTERNAL_ERROR)
                self.finished = True
                self.disconnect()
                proto.response_done(self)
        except H2Error:
            self.disconnect()
            proto.response_done(self)
        proto.schedule_flush()
