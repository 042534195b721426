"""WebSocket connections: RFC 6455 via the ``websockets`` sans-I/O protocol, spoken as ASGI.

The HTTP protocol parses the upgrade request, builds the scope and hands the transport over to
:class:`WebSocketProtocol` (see ``handshake``). From there on this module owns the socket:

* the opening handshake is held until the application sends ``websocket.accept`` (101),
  ``websocket.close`` (403) or a ``websocket.http.response.*`` denial response;
* complete, unfragmented, masked data/ping/pong frames (the per-message hot path) are
  unmasked and dispatched here; at the first frame that is anything else (close, fragments,
  reserved bits, errors, big frames still arriving, any extension) the rest of the stream goes
  to ``websockets.server.ServerProtocol``, which then handles masking, control frames, the
  closing handshake, size limits and permessage-deflate; messages it yields are reassembled
  and UTF-8 checked here;
* outgoing data frames without extensions are framed here and written straight to the
  transport, because that is the hot path of every echo/broadcast workload;
* one task per connection (the application). Its ASGI side (the state, which message it may
  send when, its ``receive`` with the queue of unread messages) is the transport-independent
  :class:`~switchboard.server.asgi.ws_cycle.WebSocketCycle`; this protocol owns the transport,
  the timers and flow control, and does the I/O each state change asks for.
"""

from __future__ import annotations

import asyncio
import codecs
import logging
import os
from http import HTTPStatus
from typing import Any, cast

from websockets.datastructures import Headers
from websockets.frames import Frame, Opcode
from websockets.http11 import Request, Response
from websockets.protocol import State
from websockets.server import ServerProtocol

from switchboard.server.asgi.errors import ClientDisconnected
from switchboard.server.asgi.types import Message, Scope
from switchboard.server.asgi.ws_cycle import (
    ABNORMAL,
    CLOSED,
    HANDSHAKE,
    OPEN,
    RESPONSE,
    UNANSWERED,
    Action,
    WebSocketCycle,
)
from switchboard.server.connections.flow_control import FlowControl
from switchboard.server.runtime import access_log
from switchboard.server.wire.ws_framing import (
    BINARY_HEADERS,
    FALLBACK,
    TEXT_HEADERS,
    frame_header,
    pong,
    read_simple_frame,
)

logger = logging.getLogger("switchboard.server")
error_logger = logging.getLogger("switchboard.server.error")
access_logger = access_log.access_logger


OP_CONT, OP_TEXT, OP_BINARY = Opcode.CONT, Opcode.TEXT, Opcode.BINARY
OP_CLOSE, OP_PING, OP_PONG = Opcode.CLOSE, Opcode.PING, Opcode.PONG

# Seconds the client gets to answer our close frame before the TCP connection is dropped.
CLOSE_TIMEOUT = 5.0
# Above this size a frame is written as header + payload instead of one concatenated buffer.
_CONCAT_LIMIT = 16384


class _ServerProtocol(ServerProtocol):
    def recv_frame(self, frame: Any) -> None:
        # RFC 6455 5.4 lets control frames, close included, interleave with the fragments of a
        # message; websockets treats a close there as a protocol error. The unfinished message
        # is dropped either way, so forget it and run the normal closing handshake.
        if frame.opcode is OP_CLOSE:
            self.current_size = None
        super().recv_frame(frame)


def _subprotocols(headers: list[tuple[bytes, bytes]]) -> list[str]:
    offered: list[str] = []
    for name, value in headers:
        if name == b"sec-websocket-protocol":
            offered.extend(p.strip() for p in value.decode("latin-1").split(",") if p.strip())
    return offered


class WebSocketProtocol(asyncio.Protocol):
    """One WebSocket connection after the HTTP upgrade request has been parsed."""

    __slots__ = (
        "config",
        "server_state",
        "app_state",
        "loop",
        "transport",
        "ws",
        "scope",
        "request",
        "response",
        "cycle",
        "fast",
        "flow",
        "pending",
        "frag_op",
        "frag_parts",
        "frag_decoder",
        "task",
        "timer",
        "ping_timer",
        "pong_timer",
        "ping_payload",
        "close_timer",
        "denial",
        "app_done",
        "accepted",
        "fast_in",
        "inbuf",
        "max_size",
        "log_access",
        "began",
        "close_prefix",
    )

    def __init__(self, config: Any, server_state: Any, app_state: dict | None = None) -> None:
        self.config = config
        self.server_state = server_state
        self.app_state = app_state
        self.loop = asyncio.get_running_loop()
        self.transport: asyncio.Transport | None = None
        self.ws: ServerProtocol | None = None
        self.scope: Scope = {}
        self.request: Request | None = None
        self.response: Response | None = None
        self.flow = FlowControl(self.loop)
        # The ASGI side: state, the app's receive, what it may send when.
        self.cycle = WebSocketCycle(self.loop, self.flow, config.ws_max_queue)
        self.fast = False  # True while outgoing frames can skip the sans-I/O protocol
        self.pending: list[bytes] = []  # bytes received before the handshake completed
        self.frag_op: Opcode | None = None
        self.frag_parts: list[Any] = []  # str pieces of a text message, else bytes
        self.frag_decoder: Any = None
        self.task: asyncio.Task | None = None
        self.timer: asyncio.TimerHandle | None = None  # handshake timeout
        self.ping_timer: asyncio.TimerHandle | None = None
        self.pong_timer: asyncio.TimerHandle | None = None
        self.ping_payload = b""
        self.close_timer: asyncio.TimerHandle | None = None
        self.denial: list[bytes] | None = None
        self.app_done = False
        self.accepted = False  # the 101 went out: bytes from the client are frames now
        # True while incoming frames are parsed here (see _receive_fast); websockets has then
        # seen no byte yet, so handing it the rest of the stream at a frame boundary is safe.
        self.fast_in = False
        self.inbuf = b""
        self.max_size: int = config.ws_max_size or 1 << 62
        self.log_access = False  # asked once, at the handshake (access_log.enabled)
        self.began = 0.0  # loop time of the handshake, then of the 101, when access-logged
        self.close_prefix = ""  # the start of the close line, kept after the scope is gone

    # -- asyncio.Protocol -------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        self.flow.transport = self.transport
        self.server_state.connections.add(self)
        self.server_state.websockets += 1

    def connection_lost(self, exc: Exception | None) -> None:
        state = self.server_state
        state.connections.discard(self)
        state.websockets -= 1
        if self.accepted:
            self._count_close()
        self.flow.stop()
        for handle in (self.timer, self.ping_timer, self.pong_timer, self.close_timer):
            if handle is not None:
                handle.cancel()
        self.timer = self.ping_timer = self.pong_timer = self.close_timer = None
        code, reason = ABNORMAL, ""
        ws = self.ws
        if ws is not None and ws.close_rcvd is not None:
            code, reason = ws.close_rcvd.code, ws.close_rcvd.reason
        elif ws is not None and ws.close_sent is not None:
            code, reason = ws.close_sent.code, ws.close_sent.reason
        self.fast = False
        self.cycle.lost(code, reason)  # CLOSED: from here on nothing is written
        self._stop_fast_in()
        self.flow.release()
        task = self.task
        if task is not None and not task.done():
            # The application has been told; give it a bounded time to return.
            self.loop.call_later(self.config.application_close_timeout, self._cancel_app)

    def pause_writing(self) -> None:
        self.flow.pause_writing()

    def resume_writing(self) -> None:
        self.flow.resume_writing()

    def data_received(self, data: bytes) -> None:
        self.server_state.bytes_in += len(data)
        if self.fast_in:
            self._receive_fast(data)
        elif self.accepted:
            self._receive(data)
        elif self.cycle.state in UNANSWERED:
            # A client may not send frames before the 101; keep them, but not without bound.
            self.pending.append(data)
            self.flow.pause_reading()

    def eof_received(self) -> bool | None:
        ws = self.ws
        if ws is not None and self.accepted:
            if self.fast_in:
                data, self.inbuf = self.inbuf, b""
                self._to_websockets(data)
            ws.receive_eof()
            self._flush(ws)
        return None  # close the transport

    # -- handshake --------------------------------------------------------------------------

    def handshake(self, scope: Scope, leftover: bytes = b"") -> None:
        """Start the application for the upgrade request described by ``scope``."""
        config = self.config
        headers = scope["headers"]
        scope["type"] = "websocket"
        scope["subprotocols"] = _subprotocols(headers)
        scope["extensions"] = {"websocket.http.response": {}}
        if self.app_state is not None and "state" not in scope:
            scope["state"] = self.app_state.copy()
        self.scope = scope
        if access_log.enabled(config):
            self.log_access = True
            self.began = self.loop.time()
        if leftover:
            self.pending.append(leftover)
            self.flow.pause_reading()

        extensions = None
        if config.ws_per_message_deflate:
            from websockets.extensions.permessage_deflate import (
                ServerPerMessageDeflateFactory,
            )

            extensions = [ServerPerMessageDeflateFactory()]
        # state=OPEN: the request was parsed by the HTTP side, so the frame parser starts now;
        # the handshake response is produced with accept() and written by us.
        self.ws = ws = _ServerProtocol(
            extensions=extensions,
            select_subprotocol=_no_subprotocol,
            state=State.OPEN,
            max_size=config.ws_max_size,
        )
        path = scope.get("raw_path") or scope["path"].encode()
        qs = scope.get("query_string") or b""
        target = path.decode("latin-1") + ("?" + qs.decode("latin-1") if qs else "")
        request = Request(
            target,
            Headers((k.decode("latin-1"), v.decode("latin-1")) for k, v in headers),
            method=scope.get("method", "GET"),
            protocol="HTTP/" + scope.get("http_version", "1.1"),
        )
        response = ws.accept(request)
        if response.status_code != 101:
            # Malformed handshake (bad key/version...): answer without bothering the app.
            self.cycle.refuse()
            self._write_response(response)
            self._handshake_done(response.status_code)
            return
        self.request, self.response = request, response
        timeout = config.ws_handshake_timeout
        if timeout:
            self.timer = self.loop.call_later(timeout, self._handshake_timeout)
        self.cycle.start()
        self.task = task = self.loop.create_task(self._run_app())
        tasks = self.server_state.tasks
        tasks.add(task)
        task.add_done_callback(tasks.discard)

    def _handshake_timeout(self) -> None:
        self.timer = None
        if self.cycle.state in UNANSWERED:
            error_logger.error(
                "WebSocket application did not accept or close within %ss",
                self.config.ws_handshake_timeout,
            )
            self._reject(HTTPStatus.INTERNAL_SERVER_ERROR, "Handshake timed out.\n")

    def _accept(self, message: Message) -> None:
        response, ws = self.response, self.ws
        assert response is not None and ws is not None
        subprotocol = message.get("subprotocol")
        if subprotocol is not None:
            response.headers["Sec-WebSocket-Protocol"] = subprotocol
            ws.subprotocol = subprotocol
        self._add_headers(response.headers, message.get("headers") or ())
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None
        self.cycle.accept()
        self.accepted = True
        self.fast = self.fast_in = not ws.extensions
        head = response.serialize()
        self.transport.write(head)  # type: ignore[union-attr]
        self.server_state.bytes_out += len(head)
        self._handshake_done(101)
        self.request = self.response = None
        interval = self.config.ws_ping_interval
        if interval:
            self.ping_timer = self.loop.call_later(interval, self._send_keepalive)
        if self.pending:
            data, self.pending = b"".join(self.pending), []
            self.flow.resume_reading()
            self.data_received(data)

    def _reject(self, status: int, text: str, code: int = ABNORMAL) -> None:
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None
        assert self.ws is not None
        response = self.ws.reject(status, text)
        self._add_headers(response.headers, ())
        self._close_app_side(code, "")
        self._write_response(response)
        self._handshake_done(int(status))

    def _write_response(self, response: Response) -> None:
        transport = self.transport
        if transport is not None and self.cycle.state is not CLOSED:
            data = response.serialize()
            transport.write(data)
            self.server_state.bytes_out += len(data)
            transport.close()
        self.request = self.response = None

    def _add_headers(self, target: Headers, extra: Any) -> None:
        if self.config.server_header:
            for name, value in self.server_state.default_headers:
                if name.lower() == b"server":
                    target["Server"] = value.decode("latin-1")
        for name, value in extra:
            target[name.decode("latin-1")] = value.decode("latin-1")

    def _handshake_done(self, status: int) -> None:
        """The handshake was answered ``status``: counted, and logged."""
        state = self.server_state
        if status == 101:
            state.ws_accepted += 1
        else:
            state.ws_handshake_failures += 1
        if self.log_access:
            now = self.loop.time()
            scope = self.scope
            access_logger.info(access_log.ws_handshake_line(scope, status, now - self.began))
            if status == 101:
                self.began = now
                self.close_prefix = access_log.ws_close_prefix(scope)

    def _count_close(self) -> None:
        """An accepted connection ended: its close code counted, its close line logged.

        The code is that of the first close frame of the closing handshake, and the side
        that sent it closed the connection; with no close frame at all it is 1006."""
        ws = self.ws
        assert ws is not None
        rcvd, sent = ws.close_rcvd, ws.close_sent
        if rcvd is not None and (sent is None or ws.close_rcvd_then_sent):
            code, by = rcvd.code, "client"
        elif sent is not None:
            code, by = sent.code, "server"
        else:
            code, by = ABNORMAL, None
        closes = self.server_state.ws_closes
        closes[code] = closes.get(code, 0) + 1
        if self.log_access:
            seconds = self.loop.time() - self.began
            line = access_log.ws_close_line(
                self.close_prefix, code, by, seconds, self.cycle.received, self.cycle.sent
            )
            access_logger.info(line)

    # -- incoming frames --------------------------------------------------------------------

    def _receive_fast(self, data: bytes) -> None:
        """Dispatch the simple frames of ``data`` (see ``ws_framing``) without websockets.

        This is the per-message hot path. Anything else (close, fragments, reserved bits,
        protocol errors, big frames still arriving) goes to websockets from that frame on,
        for the rest of the connection.
        """
        buf = data
        if self.inbuf:
            buf = self.inbuf + data
            self.inbuf = b""
        size = len(buf)
        pos = 0
        max_size = self.max_size
        cycle = self.cycle
        while pos < size:
            opcode, payload, end = read_simple_frame(buf, pos, max_size)
            if opcode == 1:
                if cycle.state is OPEN:
                    try:
                        text = payload.decode()
                    except UnicodeDecodeError as exc:
                        self.fast_in = False
                        ws = self.ws
                        assert ws is not None
                        self._fail(ws, 1007, f"invalid UTF-8 at position {exc.start}")
                        self._flush(ws)
                        return
                    self.server_state.ws_messages_in += 1
                    cycle.deliver({"type": "websocket.receive", "text": text})
            elif opcode == 2:
                if cycle.state is OPEN:
                    self.server_state.ws_messages_in += 1
                    cycle.deliver({"type": "websocket.receive", "bytes": payload})
            elif opcode == 9:
                if self.transport is not None and cycle.state is not CLOSED:
                    frame = pong(payload)
                    self.transport.write(frame)
                    self.server_state.bytes_out += len(frame)
            elif opcode == 10:
                if self.pong_timer is not None and payload == self.ping_payload:
                    self.pong_timer.cancel()
                    self.pong_timer = None
            elif opcode == FALLBACK:
                self._to_websockets(buf[pos:])
                return
            else:  # INCOMPLETE
                break
            pos = end
        if pos < size:
            self.inbuf = buf[pos:]

    def _to_websockets(self, data: bytes) -> None:
        """From here on, websockets parses this connection's incoming bytes."""
        self.fast_in = False
        if data:
            self._receive(data)

    def _receive(self, data: bytes) -> None:
        ws = self.ws
        assert ws is not None
        ws.receive_data(data)
        # Past the handshake (state OPEN), websockets only yields frames.
        for frame in cast("list[Frame]", ws.events_received()):
            opcode = frame.opcode
            if opcode is OP_TEXT or opcode is OP_BINARY or opcode is OP_CONT:
                if self.cycle.state is not OPEN:
                    continue  # we are closing: the application no longer reads
                if frame.fin and opcode is not OP_CONT:
                    if opcode is OP_TEXT:
                        try:
                            text = str(frame.data, "utf-8")
                        except UnicodeDecodeError as exc:
                            self._fail(ws, 1007, f"invalid UTF-8 at position {exc.start}")
                            break
                        self._deliver({"type": "websocket.receive", "text": text})
                    else:
                        self._deliver({"type": "websocket.receive", "bytes": bytes(frame.data)})
                elif not self._fragment(ws, opcode, frame.data, frame.fin):
                    break
            elif opcode is OP_PONG:
                if self.pong_timer is not None and frame.data == self.ping_payload:
                    self.pong_timer.cancel()
                    self.pong_timer = None
            elif opcode is OP_CLOSE:
                close = ws.close_rcvd
                if close is not None:
                    self._close_app_side(close.code, close.reason)
        sent = ws.close_sent
        if sent is not None and self.cycle.state is OPEN:  # websockets failed the connection
            self._close_app_side(sent.code, sent.reason)
        self._flush(ws)

    def _fragment(
        self, ws: ServerProtocol, opcode: Opcode, data: bytes | bytearray | memoryview, fin: bool
    ) -> bool:
        if opcode is not OP_CONT:
            self.frag_op = opcode
            self.frag_parts = []
            self.frag_decoder = (
                codecs.getincrementaldecoder("utf-8")() if opcode is OP_TEXT else None
            )
        decoder = self.frag_decoder
        if decoder is not None:
            # Decode as fragments arrive so invalid UTF-8 fails fast, before the message ends.
            try:
                self.frag_parts.append(decoder.decode(data, fin))
            except UnicodeDecodeError as exc:
                self._fail(ws, 1007, f"invalid UTF-8 at position {exc.start}")
                return False
        else:
            self.frag_parts.append(data)
        if fin:
            parts, self.frag_parts, self.frag_decoder = self.frag_parts, [], None
            if self.frag_op is OP_TEXT:
                self._deliver({"type": "websocket.receive", "text": "".join(parts)})
            else:
                self._deliver({"type": "websocket.receive", "bytes": b"".join(parts)})
        return True

    def _fail(self, ws: ServerProtocol, code: int, reason: str) -> None:
        ws.fail(code, reason)
        self._close_app_side(code, reason)

    def _flush(self, ws: ServerProtocol) -> None:
        """Write what the sans-I/O protocol produced (pongs, close frames, EOF)."""
        writes = ws.data_to_send()
        if not writes:
            return
        transport = self.transport
        if transport is None or self.cycle.state is CLOSED:
            return
        state = self.server_state
        for chunk in writes:
            if chunk:
                transport.write(chunk)
                state.bytes_out += len(chunk)
            else:
                # End of stream: after a closing handshake the server closes TCP first.
                transport.close()
                return
        if ws.close_sent is not None and self.close_timer is None:
            self.close_timer = self.loop.call_later(CLOSE_TIMEOUT, self._close_timeout)

    def _close_timeout(self) -> None:
        self.close_timer = None
        if self.transport is not None and self.cycle.state is not CLOSED:
            self.transport.abort()

    # -- keepalive --------------------------------------------------------------------------

    def _send_keepalive(self) -> None:
        self.ping_timer = None
        ws = self.ws
        if ws is None or self.cycle.state is not OPEN:
            return
        if self.pong_timer is None:  # else the previous ping is still waiting for its pong
            self.ping_payload = os.urandom(4)
            ws.send_ping(self.ping_payload)
            self._flush(ws)
            timeout = self.config.ws_ping_timeout
            if timeout:
                self.pong_timer = self.loop.call_later(timeout, self._keepalive_timeout)
        interval = self.config.ws_ping_interval
        if interval:
            self.ping_timer = self.loop.call_later(interval, self._send_keepalive)

    def _keepalive_timeout(self) -> None:
        self.pong_timer = None
        ws = self.ws
        if ws is None or self.cycle.state is CLOSED:
            return
        if self.cycle.state is OPEN:
            self._fail(ws, 1011, "keepalive ping timeout")
            self._flush(ws)
        if self.transport is not None and self.cycle.state is not CLOSED:
            self.transport.close()

    # -- application side -------------------------------------------------------------------

    def _deliver(self, message: Message) -> None:
        self.server_state.ws_messages_in += 1
        self.cycle.deliver(message)

    def _close_app_side(self, code: int, reason: str) -> None:
        """Stop exchanging messages with the app; it reads websocket.disconnect next."""
        self.fast = False
        self.cycle.finish(code, reason)
        self._stop_fast_in()

    def _stop_fast_in(self) -> None:
        if self.fast_in:  # the closing handshake is websockets' business
            data, self.inbuf = self.inbuf, b""
            self._to_websockets(data)

    async def send(self, message: Message) -> None:
        """The ASGI ``send`` callable: ``websocket.send`` is framed here, the rest is rare."""
        kind = message["type"]
        if kind == "websocket.send":
            cycle = self.cycle
            if cycle.state is not OPEN:
                cycle.not_allowed(kind)
            flow = self.flow
            if flow.writing_paused:
                await flow.drain()
                if cycle.state is not OPEN:
                    cycle.not_allowed(kind)
            text = message.get("text")
            if text is not None:
                payload = text.encode()
                first = 0x81
                headers = TEXT_HEADERS
            else:
                payload = message.get("bytes")
                if payload is None:
                    raise TypeError("websocket.send needs 'bytes' or 'text'")
                first = 0x82
                headers = BINARY_HEADERS
            cycle.sent += 1
            state = self.server_state
            state.ws_messages_out += 1
            if self.fast:
                size = len(payload)
                if size < 126:
                    data = headers[size] + payload
                    state.bytes_out += size + 2
                    self.transport.write(data)  # type: ignore[union-attr]
                else:
                    header = frame_header(first, size)
                    state.bytes_out += len(header) + size
                    transport = self.transport
                    assert transport is not None
                    if size <= _CONCAT_LIMIT:
                        transport.write(header + payload)
                    else:
                        # Two writes, not writelines: asyncio's writelines on Python 3.12 and
                        # 3.13.0 never pauses the protocol, so a client that does not read
                        # would have the whole flood buffered.
                        transport.write(header)
                        transport.write(payload)
            else:
                ws = self.ws
                assert ws is not None
                if first == 0x81:
                    ws.send_text(payload)
                else:
                    ws.send_binary(payload)
                self._flush(ws)
            return
        action = self.cycle.app_sends(kind)
        if action is Action.ACCEPT:
            self._accept(message)
        elif action is Action.CLOSE:
            self._close(message.get("code") or 1000, message.get("reason") or "")
        elif action is Action.REJECT:
            self._reject(HTTPStatus.FORBIDDEN, "WebSocket connection rejected.\n")
        elif action is Action.START_RESPONSE:
            self._start_denial(message)
        elif action is Action.RESPONSE_BODY:
            self._denial_body(message)
        # Action.IGNORE: the closing handshake is under way already

    def _close(self, code: int, reason: str) -> None:
        ws = self.ws
        assert ws is not None
        ws.send_close(code, reason)
        self._close_app_side(code, reason)
        self._flush(ws)

    def _start_denial(self, message: Message) -> None:
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None
        status = int(message["status"])
        headers = Headers()
        self._add_headers(headers, ())
        for name, value in message.get("headers") or ():
            headers[name.decode("latin-1")] = value.decode("latin-1")
        self.cycle.respond()
        self.denial = []
        self.response = Response(status, _reason(status), headers, b"")

    def _denial_body(self, message: Message) -> None:
        assert self.denial is not None and self.response is not None
        body = message.get("body") or b""
        if body:
            self.denial.append(body)
        if message.get("more_body"):
            return
        response = self.response
        body = b"".join(self.denial)
        self.denial = None
        if "Content-Length" not in response.headers:
            response.headers["Content-Length"] = str(len(body))
        response.headers["Connection"] = "close"
        response = Response(response.status_code, response.reason_phrase, response.headers, body)
        self._close_app_side(ABNORMAL, "")
        self._write_response(response)
        self._handshake_done(response.status_code)

    async def _run_app(self) -> None:
        try:
            await self.config.app(self.scope, self.cycle.receive, self.send)
        except asyncio.CancelledError:
            if self.cycle.state is not CLOSED:
                self._app_failed(cancelled=True)
            raise
        except ClientDisconnected:
            # A send after the client left, not caught by the app: the client's departure is
            # not an application error, so no traceback.
            logger.debug("ASGI application stopped: the WebSocket client disconnected")
            self._app_failed()
        except Exception:
            error_logger.exception("Exception in ASGI application")
            self._app_failed()
        else:
            state = self.cycle.state
            if state is HANDSHAKE:
                error_logger.error("ASGI application returned without accepting the WebSocket")
                self._reject(HTTPStatus.INTERNAL_SERVER_ERROR, "Internal Server Error\n")
            elif state is RESPONSE:
                error_logger.error("ASGI application returned before its response ended")
                self._abort()
            elif state is OPEN:
                self._close(1000, "")
        finally:
            self.app_done = True
            self.scope = {}

    def _app_failed(self, cancelled: bool = False) -> None:
        state = self.cycle.state
        if state is HANDSHAKE:
            self._reject(HTTPStatus.INTERNAL_SERVER_ERROR, "Internal Server Error\n")
        elif state is RESPONSE:
            self._abort()
        elif state is OPEN:
            self._close(1011, "")

    def _abort(self) -> None:
        if self.cycle.state is RESPONSE:  # a denial response cut short: no handshake line
            self.server_state.ws_handshake_failures += 1
        self._close_app_side(ABNORMAL, "")
        if self.transport is not None and self.cycle.state is not CLOSED:
            self.transport.abort()

    def _cancel_app(self) -> None:
        task = self.task
        if task is not None and not task.done():
            error_logger.warning(
                "WebSocket application still running %ss after the connection closed; "
                "cancelling it",
                self.config.application_close_timeout,
            )
            task.cancel()

    # -- flow control & shutdown ------------------------------------------------------------

    def shutdown(self) -> None:
        """Graceful close requested by the server: 1001 to the client and to the app."""
        state = self.cycle.state
        if state is CLOSED:
            return
        if state is HANDSHAKE:
            self._reject(HTTPStatus.SERVICE_UNAVAILABLE, "Server shutting down.\n", 1001)
        elif state is RESPONSE:
            pass  # let the denial response finish; the transport closes right after it
        elif state is OPEN:
            self._close(1001, "server shutting down")
        elif self.transport is not None and self.ws is not None and self.ws.close_sent is None:
            self.transport.close()


def _no_subprotocol(protocol: ServerProtocol, offered: Any) -> None:
    # The application picks the subprotocol later, in websocket.accept.
    return None


def _reason(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return ""
