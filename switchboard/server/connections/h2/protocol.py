"""HTTP/2 connections on the ``h2`` library: one protocol object per connection, one ASGI
application task per stream.

The connection routes ``h2`` events to its streams (``stream.HttpStream`` for requests,
``websocket.StreamTransport`` for RFC 8441 WebSockets), writes what ``h2`` has to send once
per batch, and defends itself:

* at most ``h2_max_concurrent_streams`` streams per connection, counting those whose client
  reset them while their application still runs (what rapid reset, CVE-2023-44487, abuses):
  streams beyond are refused (REFUSED_STREAM), and refusing or seeing resets too fast ends
  the connection with ENHANCE_YOUR_CALM (``limits.FloodGuard``); streams reset before their
  response also draw on a budget per client address and per process (``limits.ResetBudget``),
  past which new streams from that address are refused before any application runs;
* header lists above ``max_header_size`` (the HPACK bomb) are refused by ``h2`` itself, which
  ends the connection with a GOAWAY; a header block still arriving is held to
  ``max_header_size`` bytes and to ``timeout_keep_alive`` seconds, as HTTP/1.1 heads are;
* PING, SETTINGS, empty DATA, WINDOW_UPDATE and PRIORITY floods draw on rate limits; and while
  the client does not read what we write (the transport's buffer is full) nothing more is read
  from it, so replies cannot pile up;
* request data is acknowledged (flow-control window given back) only as applications read it,
  and a connection's window is ``h2_connection_window`` bytes: so much unread body at most,
  beyond the protocol's first 64 KiB lent from a process-wide ``h2_max_buffered_body``.

Graceful shutdown sends GOAWAY, lets the streams in flight finish and refuses new ones. The
connection's settings, state, writing, idle timeout, shutdown and close are
``lifecycle.H2Lifecycle``'s; this module is the traffic.
"""

from __future__ import annotations

import logging
from typing import Any
from urllib.parse import unquote

from h2.errors import ErrorCodes
from h2.events import (
    ConnectionTerminated,
    DataReceived,
    PingReceived,
    PriorityUpdated,
    RemoteSettingsChanged,
    RequestReceived,
    StreamEnded,
    StreamReset,
    WindowUpdated,
)
from h2.exceptions import H2Error, ProtocolError
from h2.settings import SettingCodes

from switchboard.server.asgi.http_cycle import DONE
from switchboard.server.connections.h2.lifecycle import H2Lifecycle
from switchboard.server.connections.h2.limits import pending_header_block
from switchboard.server.connections.h2.stream import TOO_LARGE, HttpStream
from switchboard.server.connections.h2.websocket import H2WebSocketProtocol, StreamTransport
from switchboard.server.runtime import access_log
from switchboard.server.wire.h2_fields import parse_request, split_path
from switchboard.server.wire.http11_framing import request_content_length
from switchboard.server.wire.proxy_headers import apply_proxy_headers

logger = logging.getLogger("switchboard.server")

# The most our HPACK encoder keeps for a client, whatever it advertises: the protocol's default.
ENCODER_TABLE_SIZE = 4096

_SCOPE_ASGI = {"version": "3.0", "spec_version": "2.4"}


def _address(scope: dict[str, Any]) -> str:
    """The client address budgets are kept for: the scope's (a trusted proxy's X-Forwarded-For
    included), "" when there is none (a Unix socket)."""
    client = scope.get("client")
    return client[0] if client else ""


class H2Protocol(H2Lifecycle):
    """One HTTP/2 connection: ``h2`` events routed to streams, and the limits kept."""

    # -- incoming frames --------------------------------------------------------------------

    def data_received(self, data: bytes) -> None:
        if self.closing:
            return
        try:
            events = self.conn.receive_data(data)
        except ProtocolError as exc:
            # h2 has queued the GOAWAY (PROTOCOL_ERROR, ENHANCE_YOUR_CALM for header lists
            # too long, CONTINUATION runs...): send it and close.
            logger.info("HTTP/2 protocol error from %s: %s", self._peer(), exc)
            self.closing = True
            self.flow.stop()
            self._close_transport()
            return
        for event in events:
            try:
                self._event(event)
            except H2Error as exc:
                # A stream that a later frame of the same batch closed: nothing to do for it.
                logger.debug("HTTP/2 event %r not handled: %s", event, exc)
            if self.closing:
                return
        self._watch_header_block()
        if not self.closing:
            self.flush()

    def _watch_header_block(self) -> None:
        """A header block in progress (HEADERS, CONTINUATION... without END_HEADERS), which
        ``h2`` holds and says nothing of: held to ``max_header_size`` bytes, and to
        ``timeout_keep_alive`` seconds, as an HTTP/1.1 head is. Until it ends, no other frame
        may come (RFC 9113 section 6.10), so the connection is of no use anyway."""
        pending = pending_header_block(self.conn)
        if pending is None:
            self.header_block = None
            if self.header_handle is not None:
                self.header_handle.cancel()
                self.header_handle = None
            return
        first, size = pending
        if size > self.config.max_header_size:
            # Encoded, a field list is never larger than the size the header list limit
            # counts (RFC 7541 section 4.1: 32 octets a field on top): it could not pass.
            self._calm(f"header block over {self.config.max_header_size} bytes")
            return
        if first is not self.header_block:
            self.header_block = first
            if self.header_handle is not None:
                self.header_handle.cancel()
            self.header_handle = self.loop.call_later(
                self.config.timeout_keep_alive, self._header_block_expired
            )

    def _header_block_expired(self) -> None:
        self.header_handle = None
        if pending_header_block(self.conn) is not None:
            self._calm(f"header block unfinished after {self.config.timeout_keep_alive:g}s")

    def _event(self, event: Any) -> None:
        kind = event.__class__
        if kind is RequestReceived:
            self._request(event)
        elif kind is DataReceived:
            self._data(event)
        elif kind is StreamEnded:
            stream = self.streams.get(event.stream_id)
            if stream is not None:
                stream.end()
        elif kind is WindowUpdated:
            if not self.guard.window.allow():
                self._calm("WINDOW_UPDATE flood")
                return
            self._window(event.stream_id)
        elif kind is PriorityUpdated:
            if not self.guard.priority.allow():
                self._calm("PRIORITY flood")
        elif kind is StreamReset:
            self._reset(event)
        elif kind is PingReceived:
            if not self.guard.ping.allow():
                self._calm("PING flood")
        elif kind is RemoteSettingsChanged:
            if not self.guard.settings.allow():
                self._calm("SETTINGS flood")
                return
            changed = event.changed_settings
            if SettingCodes.HEADER_TABLE_SIZE in changed:
                self._cap_encoder_table()
            if SettingCodes.INITIAL_WINDOW_SIZE in changed:
                self._window(0)
        elif kind is ConnectionTerminated:
            self.close()
        # TrailersReceived: ASGI has no message for request trailers; they are dropped
        # (the StreamEnded that comes with them ends the body).

    def _cap_encoder_table(self) -> None:
        # h2 sizes our HPACK encoder's dynamic table to whatever the client advertises (up to
        # 2^32-1): with a unique response field per request, every response then searches a
        # table that only grows. RFC 7541 section 4.2 lets the encoder use less than the peer
        # allows; the size update it sends (section 6.3) tells the client's decoder.
        encoder = self.conn.encoder
        if encoder.header_table_size > ENCODER_TABLE_SIZE:
            encoder.header_table_size = ENCODER_TABLE_SIZE

    def _request(self, event: RequestReceived) -> None:
        sid = event.stream_id
        if self.goaway_sent or self.running >= self.max_streams:
            self._refuse_stream(sid)
            return
        self._cancel_idle()
        head = parse_request(event.headers)
        raw_path, query = split_path(head.path)
        path = raw_path.decode("ascii", "replace")
        if "%" in path:
            path = unquote(path)
        root = self.config.root_path
        scope: dict[str, Any] = {
            "type": "http",
            "asgi": _SCOPE_ASGI.copy(),
            "http_version": "2",
            "server": self.server,
            "client": self.client,
            "scheme": self.scheme,
            "method": head.method,
            "root_path": root,
            "path": root + path,
            "raw_path": raw_path,
            "query_string": query,
            "headers": head.headers,
            "state": self.app_state.copy(),
        }
        if self.config.proxy_headers:
            apply_proxy_headers(scope, self.config.trusted_proxies)
        if not self.budgets.resets.admits(_address(scope)):
            # This client address reset too many streams before their response lately.
            if not self.over_budget:
                self.over_budget = True  # said once per connection
                logger.warning(
                    "Refusing new HTTP/2 streams from %s: too many streams reset before their "
                    "response (rapid reset)",
                    _address(scope) or "-",
                )
            self._refuse_stream(sid)
            return
        length = request_content_length(head.headers)
        if length is not None and length > self.config.max_body_size:
            self._answer_refused(sid, scope, 413, TOO_LARGE)
            return
        if head.method == "CONNECT":
            if head.protocol is None:
                # A tunnel to :authority (RFC 9113 section 8.5), which an origin server offers
                # for no resource: 501, as for a method it does not implement (RFC 9110
                # section 15.6.2; 405 would say the method suits other resources).
                self._answer_refused(sid, scope, 501, b"Not Implemented")
                return
            if event.stream_ended is not None:
                # An RFC 8441 stream that ends at once cannot carry a WebSocket.
                self._answer_refused(sid, scope, 400, b"Bad Request")
                return
        self.state.total_requests += 1
        self.running += 1
        self.guard.stream_opened()
        if head.protocol is not None:
            self._websocket(sid, head.protocol, scope)
            return
        extensions: dict[str, Any] = {"http.response.pathsend": {}, "http.response.trailers": {}}
        if self.tls is not None:
            extensions["tls"] = self.tls
        scope["extensions"] = extensions
        stream = HttpStream(self, sid, scope)
        self.streams[sid] = stream
        task = self.loop.create_task(stream.run())
        tasks = self.state.tasks
        tasks.add(task)
        task.add_done_callback(tasks.discard)

    def answer_and_reset(self, sid: int, status: int, text: bytes) -> bool:
        """A complete text/plain response of the server's own on stream ``sid``, then
        RST_STREAM NO_ERROR, which tells the client to stop sending the request's body
        (RFC 9113 section 8.1). False when the stream was gone already."""
        fields = [(b":status", b"%d" % status), *self.state.default_headers]
        fields += [
            (b"content-type", b"text/plain; charset=utf-8"),
            (b"content-length", b"%d" % len(text)),
        ]
        try:
            self.conn.send_headers(sid, fields, False)
            self.conn.send_data(sid, text, True)
        except H2Error:
            return False  # the client reset the stream already, later in the same batch
        try:
            self.conn.reset_stream(sid, ErrorCodes.NO_ERROR)
        except H2Error:
            pass  # it had ended its side: the stream is closed already
        return True

    def _answer_refused(self, sid: int, scope: dict[str, Any], status: int, text: bytes) -> None:
        """A request the server answers itself, before any application sees it (413 when
        Content-Length announces more than ``max_body_size``, as on HTTP/1.1...)."""
        if not self.answer_and_reset(sid, status, text):
            return
        self.state.count_response(status)
        if access_log.enabled(self.config):
            line = access_log.refused_line(scope.get("client"), scope, status, len(text))
            access_log.access_logger.info(line)

    def _refuse_stream(self, sid: int) -> None:
        """REFUSED_STREAM: not processed, the client may retry (RFC 9113 section 8.7)."""
        self.state.h2_streams_refused += 1
        # The client may have reset the stream already, later in the same batch of frames.
        try:
            self.conn.reset_stream(sid, ErrorCodes.REFUSED_STREAM)
        except H2Error:
            pass
        if not self.guard.reset.allow():
            self._calm("too many streams refused (rapid reset?)")

    def _websocket(self, sid: int, protocol: str, scope: dict[str, Any]) -> None:
        if protocol.lower() != "websocket":
            # RFC 8441 section 4: a protocol we do not speak; 501 like an unknown method.
            self.running -= 1
            try:
                self.conn.send_headers(sid, [(b":status", b"501"), (b"content-length", b"0")], True)
            except H2Error:
                pass
            return
        del scope["method"]  # a websocket scope has none (ASGI spec)
        scope["scheme"] = "wss" if self.tls is not None else "ws"
        transport = StreamTransport(self, sid)
        ws = H2WebSocketProtocol(self.config, self.state, self.app_state)
        transport.protocol = ws
        self.streams[sid] = transport
        ws.connection_made(transport)  # type: ignore[arg-type]
        ws.handshake(scope)
        if self.tls is not None:
            scope.setdefault("extensions", {})["tls"] = self.tls

    def _data(self, event: DataReceived) -> None:
        sid = event.stream_id
        flow = event.flow_controlled_length
        stream = self.streams.get(sid)
        if not event.data and not event.stream_ended and not self.guard.empty.allow():
            self._calm("empty DATA flood")
            return
        if self.window_extra < self.window_wanted:
            self._grow_window()
        if stream is None:
            self.ack(sid, flow)  # the stream is done with: nobody will read it
            return
        if not stream.data(event.data, flow):
            assert isinstance(stream, HttpStream)
            self.ack(sid, flow)  # this frame is dropped with the rest of the body
            stream.refuse_body()

    def _grow_window(self) -> None:
        """The client sends body: open the connection's window to ``h2_connection_window``,
        as far as the process's budget lends. (A connection that never sends body never
        borrows; one that found the budget spent tries again with its next DATA frame.)"""
        got = self.budgets.window.borrow(self.window_wanted - self.window_extra)
        if got:
            self.window_extra += got
            self.conn.increment_flow_control_window(got)

    def _reset(self, event: StreamReset) -> None:
        stream = self.streams.pop(event.stream_id, None)
        if stream is not None:
            stream.disconnect()
        if not event.remote_reset:
            return
        if isinstance(stream, HttpStream) and stream.state is not DONE:
            # Reset before its response was complete: work started for nothing, which the
            # client's address, whatever its connections, has a budget for.
            self.state.h2_streams_reset += 1
            address = _address(stream.scope)
            if not self.budgets.resets.reset(address):
                who = address or "-"
                self._calm(f"{who} reset too many streams before their response (rapid reset)")
                return
        if not self.guard.reset.allow():
            self._calm("too many streams reset (rapid reset)")

    def _window(self, sid: int) -> None:
        if sid:
            stream = self.streams.get(sid)
            if stream is not None:
                stream.wake_window()
        else:
            for stream in list(self.streams.values()):
                stream.wake_window()

    def ack(self, sid: int, size: int) -> None:
        """The application read ``size`` flow-controlled bytes of stream ``sid``: give the
        client that much window back (h2 batches the WINDOW_UPDATEs)."""
        if size and not self.closing:
            try:
                self.conn.acknowledge_received_data(size, sid)
            except H2Error:
                return
            self.schedule_flush()

    # -- streams ------------------------------------------------------------------------------

    def response_done(self, stream: HttpStream) -> None:
        """The stream's response ended (or was cut off)."""
        if stream.complete or stream.disconnected:
            self.streams.pop(stream.stream_id, None)

    def app_done(self, stream: HttpStream) -> None:
        self.running -= 1
        stream.release()  # body the application left unread goes back to the window
        if not stream.complete and not stream.disconnected and not self.closing:
            # The app answered without reading the whole request: tell the client to stop
            # sending it (RFC 9113 section 8.1).
            stream.disconnect()
            try:
                self.conn.reset_stream(stream.stream_id, ErrorCodes.NO_ERROR)
            except H2Error:
                pass
            self.schedule_flush()
        if stream.disconnected or stream.state is DONE:
            self.streams.pop(stream.stream_id, None)
        self._maybe_done()

    def stream_gone(self, transport: StreamTransport) -> None:
        """A WebSocket stream has closed."""
        if self.streams.get(transport.stream_id) is transport:
            del self.streams[transport.stream_id]
        self.running -= 1
        self._maybe_done()

    # -- flow control ---------------------------------------------------------------------------

    def pause_writing(self) -> None:
        self.flow.pause_writing()
        # Read nothing more until the client reads: whatever it sends may need a reply.
        self.flow.pause_reading()
        for stream in self.streams.values():
            if isinstance(stream, StreamTransport) and stream.protocol is not None:
                if not stream.write_paused:
                    stream.write_paused = True
                    stream.protocol.pause_writing()

    def resume_writing(self) -> None:
        self.flow.resume_reading()
        self.flow.resume_writing()
        self._window(0)
