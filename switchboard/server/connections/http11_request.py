"""One HTTP/1.1 request on its connection: the writer of its ASGI cycle.

:class:`~switchboard.server.asgi.http_cycle.HttpCycle` holds what ASGI allows when; this
subclass puts the response on the wire: the head kept until the first body message and then
completed with its framing fields (``wire/http11_framing``), bodies written as they are or as
chunks, trailers, files for ``http.response.pathsend``, ``100 Continue``. The connection
(``http11.HttpProtocol``) feeds it the request body and hears when its response is done.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Awaitable
from typing import TYPE_CHECKING, Any, BinaryIO

from switchboard.server.asgi.errors import ClientDisconnected
from switchboard.server.asgi.http_cycle import DONE, HttpCycle
from switchboard.server.asgi.types import HeaderIterable, Scope
from switchboard.server.connections.pathsend import FILE_CHUNK, open_regular_file
from switchboard.server.wire.http11_framing import (
    LAST_CHUNK,
    LAST_CHUNK_BEFORE_TRAILERS,
    NO_CONTENT_STATUSES,
    InvalidResponse,
    chunk,
    complete_head,
    has_token,
    response_head,
    trailer_section,
)

if TYPE_CHECKING:
    from switchboard.server.connections.http11 import HttpProtocol

__all__ = ["Http11Request"]


class Http11Request(HttpCycle):
    """One HTTP/1.1 request: the cycle's writer, framing its response on the connection."""

    __slots__ = (
        "proto",
        "body_size",
        "keep_alive",
        "chunked",
        "declared",
        "task",
        "head",
        "received",
        "emit_trailers",
        "sent",
        "began",
    )

    def __init__(self, proto: HttpProtocol, scope: Scope, keep_alive: bool) -> None:
        HttpCycle.__init__(self, proto.loop, scope)
        self.proto = proto
        self.body_size = 0  # request body buffered, not handed over yet
        self.keep_alive = keep_alive
        self.chunked = False
        self.declared = False  # the app set a content-length
        self.task: asyncio.Task | None = None
        self.head: bytes | None = None  # status line and fields, written with the first body
        self.received = 0
        self.emit_trailers = False  # the trailer fields go on the wire (else they're dropped)
        self.sent = 0  # bytes of the response written (access log)
        self.began = 0.0  # loop time of the complete request head, when access-logged

    # -- the cycle's events -------------------------------------------------------------

    def _continue(self) -> None:
        self.proto.transport.write(b"HTTP/1.1 100 Continue\r\n\r\n")
        self.proto.state.bytes_out += 25

    def _reading(self) -> None:
        self.proto.flow.resume_reading()

    def _taken(self) -> None:
        self.body_size = 0
        if self.proto.current is self:
            self.proto.flow.resume_reading()

    def _done(self) -> None:
        self.proto.request_done(self)

    def finish(self) -> None:
        # HttpCycle.finish with wake() and _done() inline: once per response.
        self.state = DONE
        if self.waiter is not None or self.on_disconnect is not None:
            self.wake()
        self.proto.request_done(self)

    def _head(self, status: int, headers: HeaderIterable) -> int | None:
        """Check the fields of http.response.start; keep the head until the first body."""
        head, length, self.keep_alive = response_head(
            status, headers, self.proto.state.default_head, self.keep_alive
        )
        self.declared = length is not None
        self.head = head
        return length

    def _body(self, body: bytes | bytearray | memoryview, more: bool) -> Awaitable[None] | None:
        """Write one body message (with the head before the first)."""
        proto = self.proto
        head = self.head
        if head is not None:
            if (
                self.declared
                and self.keep_alive
                and not self.no_content
                and not self.trailers
                and not proto.state.shutting_down
            ):
                # What _head_bytes does for the commonest first message (the app's own
                # content-length frames it), inline.
                self.head = None
                self.wrote = True
                data = head + b"\r\n" + body
            else:
                head = self._head_bytes(
                    len(body) if not more and not self.no_content else None, more, head
                )
                if self.no_content:
                    data = head
                elif not self.chunked:
                    data = head + body if body else head
                else:
                    data = self._chunk(head, body, more)
        elif self.no_content:
            return None
        elif not self.chunked:
            data = bytes(body)
        else:
            data = self._chunk(None, body, more)
        proto.transport.write(data)
        self.sent += len(data)
        proto.state.bytes_out += len(data)
        if proto.flow.writing_paused:
            return proto.flow.drain()
        return None

    def _chunk(self, head: bytes | None, body: bytes | bytearray | memoryview, more: bool) -> bytes:
        out = [head] if head is not None else []
        if body:
            out.append(chunk(body))
        if not more:
            # With trailers to come, the fields and the final CRLF follow later.
            out.append(LAST_CHUNK_BEFORE_TRAILERS if self.emit_trailers else LAST_CHUNK)
        return b"".join(out)

    async def _file(self, path: Any) -> None:
        """http.response.pathsend: the file is the rest of the body, streamed with
        back-pressure (sendfile(2) where the transport allows it)."""
        proto = self.proto
        file, size = await asyncio.to_thread(open_regular_file, path)
        with file:
            if self.disconnected:
                raise ClientDisconnected("client disconnected")
            self.count_down(size, False)
            head = self.head
            if head is not None:
                head = self._head_bytes(size, False, head)
            chunked = self.chunked and not self.no_content
            prefix = b"%x\r\n" % size if chunked and size else b""
            if head is not None or prefix:
                self._write((head or b"") + prefix)
            if not self.no_content and size:
                await self._stream_file(file, size)
                self.sent += size
                proto.state.bytes_out += size
            if chunked:
                end = LAST_CHUNK_BEFORE_TRAILERS if self.emit_trailers else LAST_CHUNK
                self._write(b"\r\n" + end if size else end)
            if proto.flow.writing_paused:
                await proto.flow.drain()

    async def _stream_file(self, file: BinaryIO, size: int) -> None:
        proto = self.proto
        loop = proto.loop
        try:
            await loop.sendfile(proto.transport, file, 0, size, fallback=False)
            return
        except (NotImplementedError, asyncio.SendfileNotAvailableError):
            pass  # uvloop, TLS: nothing was sent yet, copy it ourselves
        except ConnectionError as exc:
            proto.close()
            raise ClientDisconnected("client disconnected") from exc
        fd = file.fileno()
        offset = 0
        while offset < size:
            data = await loop.run_in_executor(
                None, os.pread, fd, min(FILE_CHUNK, size - offset), offset
            )
            if self.disconnected:
                raise ClientDisconnected("client disconnected")
            if not data:
                raise InvalidResponse(f"http.response.pathsend: the file shrank below {size}")
            offset += len(data)
            proto.transport.write(data)
            if proto.flow.writing_paused:
                await proto.flow.drain()

    def _trailers(self, fields: HeaderIterable, more: bool) -> Awaitable[None] | None:
        # Dropped unless the head announced chunked framing with trailers (_head_bytes).
        if self.emit_trailers:
            section = trailer_section(fields, last=not more)
            if section:
                self._write(section)
                if self.proto.flow.writing_paused:
                    return self.proto.flow.drain()
        return None

    def _write(self, data: bytes) -> None:
        """Write part of the response, counted (not for the per-message body path)."""
        self.proto.transport.write(data)
        self.sent += len(data)
        self.proto.state.bytes_out += len(data)

    @property
    def is_head(self) -> bool:
        return self.scope["method"] == "HEAD"

    def _accepts_trailers(self) -> bool:
        """Did the client say ``TE: trailers``? (RFC 9110 section 10.1.4)."""
        return any(
            name == b"te" and has_token(value, b"trailers") for name, value in self.scope["headers"]
        )

    def _head_bytes(self, length: int | None, more: bool, head: bytes) -> bytes:
        """Complete the head kept by ``_head`` with the framing fields. ``length`` is the
        whole body's size when it is known now."""
        self.head = None
        self.wrote = True
        framed = self.declared or self.status in NO_CONTENT_STATUSES
        keep_alive = self.keep_alive and not self.proto.state.shutting_down
        if keep_alive and not self.trailers:
            # The common cases, without complete_head's general decisions: the app's own
            # content-length (or no content), or a single body message of known size.
            if framed:
                return head + b"\r\n"
            if length is not None:
                return head + b"content-length: %d\r\n\r\n" % length
        http11 = self.scope["http_version"] == "1.1"
        # Trailer fields only exist in chunked framing, so trailers force it even for a single
        # body message. Without TE: trailers, on HTTP/1.0, for HEAD, with an app-set
        # content-length (framing is then fixed: no room for fields after the body) or a
        # status without a body, the trailers are accepted and dropped.
        trailers = (
            not framed
            and self.trailers
            and not self.is_head
            and http11
            and self._accepts_trailers()
        )
        data, self.chunked, self.keep_alive = complete_head(
            head,
            length,
            more,
            framed=framed,
            trailers=trailers,
            http11=http11,
            keep_alive=keep_alive,
        )
        self.emit_trailers = trailers
        return data
