"""Where an HTTP/1.1 connection stops being one: the hand-overs to other protocols.

* HTTP/2: ALPN chose ``h2`` (``connection_made``), or the first bytes in the clear are the
  HTTP/2 preface (``PREFACE``): ``h2.handover`` moves the transport to the HTTP/2 protocol.
* WebSocket: llhttp stops at an Upgrade request; a WebSocket handshake waits (``UPGRADING``)
  for the responses before it, then the transport goes to the WebSocket protocol with the
  bytes read after the handshake.
* Any other Upgrade is refused by answering the request as plain HTTP/1.1, its body read by a
  fresh parser.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, cast

import httptools

from switchboard.server.connections.h2.handover import hand_over, starts_with_preface
from switchboard.server.connections.http11_connection import Http11Connection
from switchboard.server.connections.http11_states import HTTP11, IDLE, UPGRADE
from switchboard.server.wire.http11_framing import plain_response

if TYPE_CHECKING:
    from switchboard.server.connections.http11 import HttpProtocol

__all__ = ["Upgrades"]


class Upgrades(Http11Connection):
    """The hand-overs of an HTTP/1.1 connection (a part of ``HttpProtocol``)."""

    __slots__ = ()

    def _to_h2(self, data: bytes = b"") -> None:
        # hand_over takes the whole protocol, which this part always is.
        hand_over(cast("HttpProtocol", self), data)

    def _probe_preface(self, data: bytes) -> bytes | None:
        """PREFACE: the bytes to parse as HTTP/1.1, or None when there are none (too few to
        tell yet, or they were the HTTP/2 preface and the connection went to HTTP/2)."""
        if self.h2c_probe:
            data = self.h2c_probe + data
        preface = starts_with_preface(data)
        if preface is None:
            self.h2c_probe = data
            return None
        self.h2c_probe = b""
        if preface:
            self._to_h2(data)
            return None
        self._event(HTTP11)
        return data

    def _upgraded(self, leftover: bytes) -> None:
        """llhttp stopped at an Upgrade request (CONNECT was refused in on_headers_complete):
        hand a WebSocket handshake over, answer anything else as a plain request."""
        if self.ws_scope is not None:
            # What follows are WebSocket frames, for the WebSocket protocol.
            if self._event(UPGRADE) is IDLE:
                self._hand_over_websocket(leftover)
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

    def _hand_over_websocket(self, leftover: bytes) -> None:
        """UPGRADING, and the responses before the handshake are out: the WebSocket protocol
        takes the transport, the handshake and the bytes after it."""
        scope = self.ws_scope
        assert scope is not None
        self.ws_scope = None
        self.ws_leftover = b""
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
