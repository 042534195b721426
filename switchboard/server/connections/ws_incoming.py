"""Incoming WebSocket frames, on two paths.

The fast path parses complete, unfragmented, masked data/ping/pong frames itself
(``wire/ws_framing.read_simple_frame``), unmasks and dispatches them: the per-message hot
path. At the first frame that is anything else (close, fragments, reserved bits, errors, big
frames still arriving, any extension) the rest of the stream goes to ``websockets``'
sans-I/O protocol, which then handles masking, control frames, the closing handshake, size
limits and permessage-deflate; the messages it yields are reassembled
(``wire/ws_reassembly``) and UTF-8 checked here.
"""

from __future__ import annotations

from typing import cast

from websockets.frames import Frame, Opcode

from switchboard.server.asgi.ws_cycle import CLOSED, OPEN
from switchboard.server.connections.ws_connection import WebSocketConnection
from switchboard.server.wire.ws_framing import FALLBACK, pong, read_simple_frame
from switchboard.server.wire.ws_reassembly import MessageAssembler

__all__ = ["IncomingFrames"]

OP_CONT, OP_TEXT, OP_BINARY = Opcode.CONT, Opcode.TEXT, Opcode.BINARY
OP_CLOSE, OP_PONG = Opcode.CLOSE, Opcode.PONG


class IncomingFrames(WebSocketConnection):
    """Reads the frames of an accepted connection."""

    __slots__ = ()

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
                        ws = self._frames()
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
                    if self.flow.writing_paused and self._over_backlog(len(frame)):
                        return
                    self.transport.write(frame)
                    self.server_state.bytes_out += len(frame)
            elif opcode == 10:
                if self.keepalive is not None:
                    self.keepalive.pong(payload)
            elif opcode == FALLBACK:
                self._to_websockets(buf[pos:])
                return
            else:  # INCOMPLETE
                break
            pos = end
        if pos < size:
            self.inbuf = buf[pos:]

    def _receive(self, data: bytes) -> None:
        ws = self._frames()
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
                    continue
                fragments = self.fragments
                if fragments is None:
                    fragments = self.fragments = MessageAssembler()
                try:
                    message = fragments.add(opcode, frame.data, frame.fin)
                except UnicodeDecodeError as exc:
                    self._fail(ws, 1007, f"invalid UTF-8 at position {exc.start}")
                    break
                if message is not None:
                    self._deliver(message)
            elif opcode is OP_PONG:
                if self.keepalive is not None:
                    self.keepalive.pong(frame.data)
            elif opcode is OP_CLOSE:
                close = ws.close_rcvd
                if close is not None:
                    self._close_app_side(close.code, close.reason)
        sent = ws.close_sent
        if sent is not None and self.cycle.state is OPEN:  # websockets failed the connection
            self._close_app_side(sent.code, sent.reason)
        self._flush(ws)
