"""The state of one WebSocket connection, and the few steps every part of its protocol takes.

:class:`~switchboard.server.connections.websocket.WebSocketProtocol` is put together from
parts that each do one thing over this state: the opening handshake and denial responses
(``ws_handshake``), the counters and access log lines (``ws_accounting``), incoming frames
(``ws_incoming``), and the protocol itself (asyncio callbacks, ``send``, the application
task). They are classes over one object rather than objects of their own because the
per-message paths (reading frames, ``send``) would otherwise pay a call and a lookup more
for every message.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from websockets.http11 import Request, Response
from websockets.protocol import State as WSProtocolState
from websockets.server import ServerProtocol

from switchboard.server.asgi.types import Message, Scope
from switchboard.server.asgi.ws_cycle import ABNORMAL, CLOSED, OPEN, WebSocketCycle
from switchboard.server.connections.flow_control import FlowControl
from switchboard.server.connections.ws_keepalive import Keepalive
from switchboard.server.wire.ws_handshake import DenialResponse, frame_protocol
from switchboard.server.wire.ws_reassembly import MessageAssembler

__all__ = ["CLOSE_TIMEOUT", "MAX_CONTROL_BACKLOG", "WebSocketConnection"]

logger = logging.getLogger("switchboard.server")

# Seconds the client gets to answer our close frame before the TCP connection is dropped.
CLOSE_TIMEOUT = 5.0
# Bytes of frames the server writes on its own (pongs above all: a client may ping without
# reading the answers) that may pile up while the transport is paused; past it the client is
# dropped. The application's own frames never pile up: its sends wait (ws_send_timeout).
MAX_CONTROL_BACKLOG = 64 * 1024


class WebSocketConnection(asyncio.Protocol):
    """One WebSocket connection's state (see the module docs for the parts that use it)."""

    __slots__ = (
        "config",
        "server_state",
        "app_state",
        "loop",
        "transport",
        "sansio",
        "scope",
        "request",
        "response",
        "cycle",
        "fast",
        "flow",
        "pending",
        "fragments",
        "task",
        "timer",
        "keepalive",
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
        "log_note",
        "backlog",
    )

    def __init__(self, config: Any, server_state: Any, app_state: dict | None = None) -> None:
        self.config = config
        self.server_state = server_state
        self.app_state = app_state
        self.loop = asyncio.get_running_loop()
        self.transport: asyncio.Transport | None = None
        # websockets' sans-I/O protocol: made at the handshake, and dropped after the 101 when
        # no extension was negotiated (~1.7 KB an idle connection would keep): frames then go
        # through the fast paths, and _frames() makes a fresh one when websockets is needed.
        self.sansio: ServerProtocol | None = None
        self.scope: Scope = {}
        self.request: Request | None = None
        self.response: Response | None = None
        self.flow = FlowControl(self.loop)
        # The ASGI side: state, the app's receive, what it may send when.
        self.cycle = WebSocketCycle(self.loop, self.flow, config.ws_max_queue)
        self.fast = False  # True while outgoing frames can skip the sans-I/O protocol
        self.pending: list[bytes] | None = None  # bytes received before the handshake completed
        self.fragments: MessageAssembler | None = None  # made at the first fragmented message
        self.task: asyncio.Task | None = None
        self.timer: asyncio.TimerHandle | None = None  # handshake timeout
        self.keepalive: Keepalive | None = None  # pings, once accepted (ws_ping_interval)
        self.close_timer: asyncio.TimerHandle | None = None
        self.denial: DenialResponse | None = None
        self.app_done = False
        self.accepted = False  # the 101 went out: bytes from the client are frames now
        # True while incoming frames are parsed here (see ws_incoming); websockets has then
        # seen no byte yet, so handing it the rest of the stream at a frame boundary is safe.
        self.fast_in = False
        self.inbuf = b""
        self.max_size: int = config.ws_max_size or 1 << 62
        self.log_access = False  # asked once, at the handshake (access_log.enabled)
        self.began = 0.0  # loop time of the handshake, then of the 101, when access-logged
        self.close_prefix = ""  # the start of the close line, kept after the scope is gone
        # The scope's access-log extension (access_log.NOTE_EXTENSION), kept after the scope
        # is gone; None while the access log is off.
        self.log_note: dict[str, Any] | None = None
        # Bytes the server wrote on its own (pongs, pings, close) since the transport paused
        # writing; reset when it resumes (MAX_CONTROL_BACKLOG).
        self.backlog = 0

    def _receive(self, data: bytes) -> None:
        """Parse ``data`` with ``websockets`` (``ws_incoming.IncomingFrames``)."""
        raise NotImplementedError

    @property
    def ws(self) -> ServerProtocol | None:
        """websockets' protocol (None before the handshake), made again if it was dropped."""
        return self._frames() if self.accepted else self.sansio

    def _frames(self) -> ServerProtocol:
        """websockets' protocol of an accepted connection, made again if it was dropped.

        Dropped only while it had seen no byte and sent none (no extension, frames on the fast
        paths), so a fresh one in state OPEN is the same as the one dropped."""
        ws = self.sansio
        if ws is None:
            ws = self.sansio = frame_protocol(False, self.config.ws_max_size)
        return ws

    def _to_websockets(self, data: bytes) -> None:
        """From here on, websockets parses this connection's incoming bytes."""
        self.fast_in = False
        if data:
            self._receive(data)

    def _stop_fast_in(self) -> None:
        if self.fast_in:  # the closing handshake is websockets' business
            data, self.inbuf = self.inbuf, b""
            self._to_websockets(data)

    def _deliver(self, message: Message) -> None:
        self.server_state.ws_messages_in += 1
        self.cycle.deliver(message)

    def _close_app_side(self, code: int, reason: str) -> None:
        """Stop exchanging messages with the app; it reads websocket.disconnect next."""
        self.fast = False
        self.cycle.finish(code, reason)
        self._stop_fast_in()

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
        if self.flow.writing_paused and self._over_backlog(sum(map(len, writes))):
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

    def _over_backlog(self, size: int) -> bool:
        """``size`` bytes more for a paused transport (the client is not taking what it was
        sent): True, with the client dropped, if that is more than it may hold."""
        self.backlog += size
        if self.backlog > MAX_CONTROL_BACKLOG:
            self._drop_slow_client("control_backlog")
            return True
        return False

    def _drop_slow_client(self, reason: str) -> None:
        """The client stopped reading: drop the connection (``reason`` is one of
        ``counters.OVERFLOW_REASONS``).

        No closing handshake: a client that does not read would not read a close frame either,
        and waiting for it to is what this ends. The application reads websocket.disconnect
        with 1006, the code of a connection closed without a close frame (RFC 6455 7.1.5),
        which is also what the client sees; recovering what it missed is the client's
        reconnect's job."""
        if self.cycle.state is CLOSED:
            return
        self.server_state.ws_overflow_closes[reason] += 1
        logger.info(
            "WebSocket client %s stopped reading (%s): connection dropped",
            _peer(self.scope),
            reason,
        )
        self._close_app_side(ABNORMAL, f"client not reading ({reason})")
        if self.transport is not None:
            self.transport.abort()

    def _close_timeout(self) -> None:
        self.close_timer = None
        if self.transport is not None and self.cycle.state is not CLOSED:
            self.transport.abort()

    # -- what the keepalive calls (ws_keepalive.Pinged) -------------------------------------

    def pinging(self) -> bool:
        # websockets is CLOSED, not the cycle, between the client's EOF and connection_lost.
        ws = self.sansio
        return self.cycle.state is OPEN and (ws is None or ws.state is WSProtocolState.OPEN)

    def send_ping(self, payload: bytes) -> None:
        ws = self.sansio
        if ws is not None:
            ws.send_ping(payload)
            self._flush(ws)
            return
        # No websockets protocol: the connection is OPEN on the fast paths; frame it here.
        frame = bytes((0x89, len(payload))) + payload
        transport = self.transport
        if transport is None or (self.flow.writing_paused and self._over_backlog(len(frame))):
            return
        transport.write(frame)
        self.server_state.bytes_out += len(frame)

    def keepalive_expired(self) -> None:
        if self.cycle.state is CLOSED:
            return
        if self.cycle.state is OPEN:
            ws = self._frames()
            self._fail(ws, 1011, "keepalive ping timeout")
            self._flush(ws)
        if self.transport is not None and self.cycle.state is not CLOSED:
            self.transport.close()


def _peer(scope: dict[str, Any]) -> str:
    client = scope.get("client")
    return f"{client[0]}:{client[1]}" if client else "(unknown)"
