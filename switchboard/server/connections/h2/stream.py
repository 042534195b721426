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
from collections.abc import Awaitable
from typing import TYPE_CHECKING, Any

from h2.errors import ErrorCodes
from h2.exceptions import H2Error

from switchboard.server.asgi.errors import ClientDisconnected, InvalidResponse, caused_by_disconnect
from switchboard.server.asgi.http_cycle import DONE, HttpCycle
from switchboard.server.asgi.types import HeaderIterable, Scope
from switchboard.server.connections.pathsend import FILE_CHUNK, open_regular_file
from switchboard.server.runtime import access_log
from switchboard.server.wire.h2_fields import NOT_TRAILERS, ResponseHead, response_head

if TYPE_CHECKING:
    from switchboard.server.connections.h2.protocol import H2Protocol

logger = logging.getLogger("switchboard.server")
error_logger = logging.getLogger("switchboard.server.error")
access_logger = access_log.access_logger

_BYTES_LIKE = (bytes, bytearray, memoryview)
TOO_LARGE = b"Request Entity Too Large"  # the 413's text, at the head or mid-body


class HttpStream(HttpCycle):
    """One request stream: the cycle's writer, making ``h2`` calls on the shared connection."""

    __slots__ = (
        "proto",
        "stream_id",
        "unacked",
        "received",
        "window_waiter",
        "head",
        "fields",
        "sent",
        "began",
    )

    def __init__(self, proto: H2Protocol, stream_id: int, scope: Scope) -> None:
        HttpCycle.__init__(self, proto.loop, scope)
        self.proto = proto
        self.stream_id = stream_id
        self.unacked = 0  # flow-controlled bytes received, not yet read by the app
        self.received = 0
        self.window_waiter: asyncio.Future | None = None
        self.head: ResponseHead | None = None  # sent with the first body message
        self.fields: list[tuple[bytes, bytes]] = []  # trailer fields, sent with the last
        self.sent = 0  # response body bytes sent (access log)
        self.began = proto.loop.time()

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
        if self.body_done or self.state is DONE or self.disconnected:
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
        self.release()
        self.wake()
        self.wake_window()

    def release(self) -> None:
        """Nobody will read the body received so far (the client left, or the application
        returned): drop it, and give its flow-control window back to the connection, where
        the client counts it as unread until we do."""
        if self.unacked:
            self.proto.ack(self.stream_id, self.unacked)
            self.unacked = 0
        self.body.clear()

    def refuse_body(self) -> None:
        """More request body than ``max_body_size``: 413 unless the response has begun, and
        the client is told to stop sending (RST_STREAM); the app sees http.disconnect."""
        if not self.wrote and self.state is not DONE:
            self.wrote = True
            self.status = 413
            self.proto.answer_and_reset(self.stream_id, 413, TOO_LARGE)
        else:
            try:
                self.proto.conn.reset_stream(self.stream_id, ErrorCodes.CANCEL)
            except H2Error:
                pass
        self.state = DONE
        self.disconnect()
        self.proto.streams.pop(self.stream_id, None)
        self.proto.schedule_flush()

    # -- the cycle's events ----------------------------------------------------------------

    def _taken(self) -> None:
        if self.unacked:
            self.proto.ack(self.stream_id, self.unacked)
            self.unacked = 0

    def _done(self) -> None:
        self.proto.response_done(self)

    def _head(self, status: int, headers: HeaderIterable) -> int | None:
        self.head = head = response_head(
            {"status": status, "headers": headers}, self.proto.state.default_headers
        )
        return head.length

    def _trailers(self, fields: HeaderIterable, more: bool) -> Awaitable[None] | None:
        self.fields += [
            (lname, value) for name, value in fields if (lname := name.lower()) not in NOT_TRAILERS
        ]
        if not more:
            # HTTP/2 frames trailers itself (a HEADERS ending the stream; RFC 9113 section
            # 8.1), so unlike HTTP/1.1 they need no TE: trailers from the client.
            self._h2(self.proto.conn.send_headers, self.stream_id, self.fields, True)
        return None

    def _h2(self, method: Any, *args: Any) -> None:
        """Call the h2 connection; a stream it says is gone means the client left."""
        try:
            method(*args)
        except H2Error as exc:
            self.disconnect()
            raise ClientDisconnected("stream closed") from exc

    def _body(self, body: bytes | bytearray | memoryview, more: bool) -> Awaitable[None] | None:
        """HEADERS before the first body message, then DATA (awaited for the windows)."""
        proto = self.proto
        end = not more and not self.trailers
        data = b"" if self.no_content else body if body.__class__ is bytes else bytes(body)
        head = self.head
        if head is not None:
            self.head = None
            self.wrote = True
            fields = head.fields
            if head.length is None and not more and not self.no_content:
                fields.append((b"content-length", b"%d" % len(data)))
            if not data:
                self._h2(proto.conn.send_headers, self.stream_id, fields, end)
                proto.schedule_flush()
                return None
            self._h2(proto.conn.send_headers, self.stream_id, fields, False)
        if data or end:
            return self._data(data, end)
        return None

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
            proto.guard.data_sent()
            self.sent += n
        if proto.flow.writing_paused:
            proto.flush()
            await proto.flow.drain()
            if self.disconnected and not (end and pos == size):
                raise ClientDisconnected("client disconnected")
        else:
            proto.schedule_flush()

    async def _file(self, path: Any) -> None:
        """http.response.pathsend: the file is the rest of the body."""
        file, size = await asyncio.to_thread(open_regular_file, path)
        with file:
            self.count_down(size, False)
            loop = self.proto.loop
            fd = file.fileno()
            offset = 0
            if self.no_content or not size:
                wait = self._body(b"", False)
                if wait is not None:
                    await wait
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
                wait = self._body(data, offset < size)
                if wait is not None:
                    await wait

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
            if self.state is not DONE and not self.disconnected:
                missing = self.unanswered()
                if missing is not None:
                    error_logger.error("ASGI application returned without %s", missing)
                self._abandon()
        finally:
            proto.app_done(self)
        status = self.status
        proto.state.count_response(status)
        if access_log.enabled(proto.config):
            seconds = proto.loop.time() - self.began
            access_logger.info(access_log.http_line(scope, status, self.sent, seconds))

    def _abandon(self) -> None:
        """The response cannot be completed: a 500 if nothing went out yet, else a reset
        (the client can tell a cut response from a whole one)."""
        if self.state is DONE or self.disconnected:
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
                self.finish()
            else:
                conn.reset_stream(self.stream_id, ErrorCodes.INTERNAL_ERROR)
                self.state = DONE
                self.disconnect()
                proto.response_done(self)
        except H2Error:
            self.disconnect()
            proto.response_done(self)
        proto.schedule_flush()
