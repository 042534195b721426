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
from typing import Any

from websockets.http11 import Request, Response
from websockets.server import ServerProtocol

from switchboard.server.asgi.types import Message, Scope
from switchboard.server.asgi.ws_cycle import CLOSED, OPEN, WebSocketCycle
from switchboard.server.connections.flow_control import FlowControl
from switchboard.server.connections.ws_keepalive import Keepalive
from switchboard.server.wire.ws_handshake import DenialResponse
from switchboard.server.wire.ws_reassembly import MessageAssembler

__all__ = ["CLOSE_TIMEOUT", "WebSocketConnection"]

# Seconds the client gets to answer our close frame before the TCP connection is dropped.
CLOSE_TIMEOUT = 5.0


class WebSocketConnection(asyncio.Protocol):
    """One WebSocket connection's state (see the module docs for the parts that use it)."""

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

    def _receive(self, data: bytes) -> None:
        """Parse ``data`` with ``websockets`` (``ws_incoming.IncomingFrames``)."""
        raise NotImplementedError

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

    # -- what the keepalive calls (ws_keepalive.Pinged) -------------------------------------

    def pinging(self) -> bool:
        return self.ws is not None and self.cycle.state is OPEN

    def send_ping(self, payload: bytes) -> None:
        ws = self.ws
        assert ws is not None
        ws.send_ping(payload)
        self._flush(ws)

    def keepalive_expired(self) -> None:
        ws = self.ws
        if ws is None or self.cycle.state is CLOSED:
            return
        if self.cycle.state is OPEN:
            self._fail(ws, 1011, "keepalive ping timeout")
            self._flush(ws)
        if self.transport is not None and self.cycle.state is not CLOSED:
            self.transport.close()
