"""WebSockets over HTTP/2 (RFC 8441): an extended CONNECT stream carries RFC 6455 frames.

The frames on the stream are exactly those of a WebSocket over TCP, without the HTTP/1.1
handshake, so the existing
:class:`~switchboard.server.connections.websocket.WebSocketProtocol` runs unchanged on a
:class:`StreamTransport`: a transport-shaped view of one stream. Its ASGI cycle
(:class:`~switchboard.server.asgi.ws_cycle.WebSocketCycle`) is thus the same on both versions.
The only translation is the handshake's answer: the protocol writes an HTTP/1.1 response head, which
becomes the stream's HEADERS (101 is 200 here, RFC 8441 section 5), and "closing the
transport" ends the stream.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from h2.errors import ErrorCodes
from h2.exceptions import H2Error

from switchboard.server.connections.websocket import WebSocketProtocol
from switchboard.server.wire.h2_fields import CONNECTION_SPECIFIC

if TYPE_CHECKING:
    from switchboard.server.connections.h2.protocol import H2Protocol

# The answer's fields that only mean something to an HTTP/1.1 upgrade.
_NOT_ON_H2 = CONNECTION_SPECIFIC | {b"sec-websocket-accept"}
# What websockets needs to see to accept a handshake; an RFC 8441 request carries no key
# (section 5: the stream itself proves the client speaks WebSocket), so any valid one does.
_HANDSHAKE_FIELDS = ((b"upgrade", b"websocket"), (b"connection", b"upgrade"))
_ANY_KEY = (b"sec-websocket-key", b"c3dpdGNoYm9hcmQtaDJ3cw==")
_VERSION = (b"sec-websocket-version", b"13")


def h1_head_to_h2(data: bytes) -> tuple[list[tuple[bytes, bytes]], bytes]:
    """An HTTP/1.1 response (head and maybe body) -> the HTTP/2 field block and the body."""
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    status = int(lines[0].split(b" ", 2)[1])
    fields = [(b":status", b"200" if status == 101 else b"%d" % status)]
    for line in lines[1:]:
        name, _, value = line.partition(b":")
        name = name.strip().lower()
        if name and name not in _NOT_ON_H2:
            fields.append((name, value.strip()))
    return fields, body


class H2WebSocketProtocol(WebSocketProtocol):
    """WebSocketProtocol on an extended CONNECT stream."""

    def handshake(self, scope: dict[str, Any], leftover: bytes = b"") -> None:
        # websockets checks an HTTP/1.1 upgrade request; show it one, then give the app the
        # scope as the client sent it.
        headers, version = scope["headers"], scope["http_version"]
        names = {name for name, _ in headers}
        shown = headers + list(_HANDSHAKE_FIELDS)
        if b"sec-websocket-key" not in names:
            shown.append(_ANY_KEY)
        if b"sec-websocket-version" not in names:
            shown.append(_VERSION)
        scope["headers"], scope["http_version"] = shown, "1.1"
        try:
            super().handshake(scope, leftover)
        finally:
            scope["headers"], scope["http_version"] = headers, version


class StreamTransport:
    """The ``asyncio.Transport`` calls WebSocketProtocol makes, on one HTTP/2 stream."""

    __slots__ = (
        "proto",
        "stream_id",
        "protocol",
        "head_sent",
        "out",
        "end_pending",
        "ended",
        "remote_ended",
        "lost",
        "read_paused",
        "unacked",
        "write_paused",
    )

    def __init__(self, proto: H2Protocol, stream_id: int) -> None:
        self.proto = proto
        self.stream_id = stream_id
        self.protocol: WebSocketProtocol | None = None
        self.head_sent = False
        self.out = bytearray()  # frames waiting for flow-control window
        self.end_pending = False  # close() asked for: END_STREAM once ``out`` is sent
        self.ended = False  # END_STREAM went out
        self.remote_ended = False
        self.lost = False  # connection_lost was delivered
        self.read_paused = False
        self.unacked = 0
        self.write_paused = False

    # -- what WebSocketProtocol calls ---------------------------------------------------

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return self.proto.transport.get_extra_info(name, default)

    def is_closing(self) -> bool:
        return self.ended or self.end_pending or self.lost

    def write(self, data: bytes) -> None:
        if self.is_closing():
            return
        if not self.head_sent:
            self.head_sent = True
            fields, data = h1_head_to_h2(bytes(data))
            if not self._h2(self.proto.conn.send_headers, self.stream_id, fields, False):
                return
            if not data:
                self.proto.schedule_flush()
                return
        self.out += data
        self.pump()

    def writelines(self, chunks: Any) -> None:
        for chunk in chunks:
            self.write(chunk)

    def close(self) -> None:
        if not self.is_closing():
            self.end_pending = True
            self.pump()

    def abort(self) -> None:
        if not self.lost:
            if not self.ended:
                self._h2(self.proto.conn.reset_stream, self.stream_id, ErrorCodes.CANCEL)
                self.proto.schedule_flush()
            self.connection_lost()

    def pause_reading(self) -> None:
        self.read_paused = True

    def resume_reading(self) -> None:
        if self.read_paused:
            self.read_paused = False
            if self.unacked and not self.lost:
                self.proto.ack(self.stream_id, self.unacked)
                self.unacked = 0

    # -- from the connection ------------------------------------------------------------

    def data(self, data: bytes, flow_length: int) -> bool:
        # Unread frames are not acknowledged: the client's window closes, and it waits.
        if self.read_paused:
            self.unacked += flow_length
        else:
            self.proto.ack(self.stream_id, flow_length)
        if data and self.protocol is not None and not self.lost:
            self.protocol.data_received(data)
        return True

    def end(self) -> None:
        self.remote_ended = True
        if self.protocol is not None and not self.lost and not self.protocol.eof_received():
            self.close()
        if self.ended:
            self.connection_lost()

    def disconnect(self) -> None:
        """The stream was reset, or the connection is gone."""
        self.ended = True
        self.connection_lost()

    def wake_window(self) -> None:
        self.pump()

    def pump(self) -> None:
        """Send what the windows allow; pause the protocol's writing while frames wait."""
        if self.lost or self.ended:
            return
        proto = self.proto
        conn = proto.conn
        out = self.out
        sid = self.stream_id
        while out:
            try:
                window = conn.local_flow_control_window(sid)
            except H2Error:
                self.disconnect()
                return
            n = min(len(out), window, conn.max_outbound_frame_size)
            if n <= 0:
                break
            chunk = bytes(out[:n])
            del out[:n]
            end = self.end_pending and not out
            if not self._h2(conn.send_data, sid, chunk, end):
                return
            proto.guard.data_sent()
            if end:
                self.ended = True
        if self.end_pending and not out and not self.ended:
            if not self._h2(conn.end_stream, sid):
                return
            self.ended = True
        proto.schedule_flush()
        protocol = self.protocol
        if out and not self.write_paused:
            self.write_paused = True
            if protocol is not None:
                protocol.pause_writing()
        elif not out and self.write_paused and not proto.flow.writing_paused:
            self.write_paused = False
            if protocol is not None:
                protocol.resume_writing()
        if self.ended and self.remote_ended:
            self.connection_lost()

    def connection_lost(self) -> None:
        if not self.lost:
            self.lost = True
            if self.unacked:  # frames left unread: their window goes back to the connection
                self.proto.ack(self.stream_id, self.unacked)
                self.unacked = 0
            self.proto.stream_gone(self)
            if self.protocol is not None:
                self.protocol.connection_lost(None)

    def _h2(self, method: Any, *args: Any) -> bool:
        try:
            method(*args)
        except H2Error:
            self.disconnect()
            return False
        return True
