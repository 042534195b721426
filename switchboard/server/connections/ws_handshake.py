"""The WebSocket opening handshake of a connection, held until the application answers it.

The HTTP side parsed the upgrade request; :meth:`OpeningHandshake.handshake` starts the
application, and the handshake stays open until it sends ``websocket.accept`` (101),
``websocket.close`` (403) or a ``websocket.http.response.*`` denial response, or until
``ws_handshake_timeout`` (500). What the answer is made of is computed without I/O in
``wire/ws_handshake``; here it is written, timed, counted and logged.
"""

from __future__ import annotations

import asyncio
import logging
from http import HTTPStatus
from typing import Any

from websockets.datastructures import Headers
from websockets.http11 import Response

from switchboard.server.asgi.types import Message, Scope
from switchboard.server.asgi.ws_cycle import ABNORMAL, CLOSED, UNANSWERED
from switchboard.server.connections.ws_accounting import Accounting
from switchboard.server.connections.ws_keepalive import Keepalive
from switchboard.server.wire.ws_handshake import (
    DenialResponse,
    frame_protocol,
    offered_subprotocols,
    upgrade_request,
)

__all__ = ["OpeningHandshake"]

error_logger = logging.getLogger("switchboard.server.error")


class OpeningHandshake(Accounting):
    """The handshake's side of a WebSocket connection: from the upgrade request to the 101,
    or to the response that refuses it."""

    __slots__ = ()

    def handshake(self, scope: Scope, leftover: bytes = b"") -> None:
        """Start the application for the upgrade request described by ``scope``."""
        config = self.config
        scope["type"] = "websocket"
        scope["subprotocols"] = offered_subprotocols(scope["headers"])
        scope["extensions"] = {"websocket.http.response": {}}
        if self.app_state is not None and "state" not in scope:
            scope["state"] = self.app_state.copy()
        self.scope = scope
        self._start_access_log()
        if leftover:
            self.pending = [leftover]
            self.flow.pause_reading()
        self.sansio = ws = frame_protocol(config.ws_per_message_deflate, config.ws_max_size)
        request = upgrade_request(scope)
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
        self.task = self._start_app()  # out of the set when it ends (_app_ended)
        self.server_state.tasks.add(self.task)

    def _start_app(self) -> asyncio.Task[None]:
        """The application task (``websocket.WebSocketProtocol``)."""
        raise NotImplementedError

    def _handshake_timeout(self) -> None:
        self.timer = None
        if self.cycle.state in UNANSWERED:
            error_logger.error(
                "WebSocket application did not accept or close within %ss",
                self.config.ws_handshake_timeout,
            )
            self._reject(HTTPStatus.INTERNAL_SERVER_ERROR, "Handshake timed out.\n")

    def _stop_handshake_timer(self) -> None:
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None

    def _accept(self, message: Message) -> None:
        response, ws = self.response, self.sansio
        assert response is not None and ws is not None
        subprotocol = message.get("subprotocol")
        if subprotocol is not None:
            response.headers["Sec-WebSocket-Protocol"] = subprotocol
            ws.subprotocol = subprotocol
        self._add_headers(response.headers, message.get("headers") or ())
        self._stop_handshake_timer()
        self.cycle.accept()
        self.accepted = True
        self.fast = self.fast_in = not ws.extensions
        head = response.serialize()
        self.transport.write(head)  # type: ignore[union-attr]
        self.server_state.bytes_out += len(head)
        self._handshake_done(101)
        self.request = self.response = None
        if self.fast:
            self.sansio = None  # see WebSocketConnection.sansio: _frames() makes another
        interval = self.config.ws_ping_interval
        if interval:
            self.keepalive = Keepalive(self, self.loop, interval, self.config.ws_ping_timeout)
        if self.pending:
            data, self.pending = b"".join(self.pending), None
            self.flow.resume_reading()
            self.data_received(data)

    def _reject(self, status: int, text: str, code: int = ABNORMAL) -> None:
        self._stop_handshake_timer()
        assert self.sansio is not None
        response = self.sansio.reject(status, text)
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

    # -- denial responses (websocket.http.response.*) ------------------------------------

    def _start_denial(self, message: Message) -> None:
        self._stop_handshake_timer()
        headers = Headers()
        self._add_headers(headers, ())
        denial = DenialResponse(message, headers)  # a bad status or header raises to the app
        self.cycle.respond()
        self.denial = denial

    def _denial_body(self, message: Message) -> None:
        assert self.denial is not None
        response = self.denial.add(message)
        if response is None:
            return
        self.denial = None
        self._close_app_side(ABNORMAL, "")
        self._write_response(response)
        self._handshake_done(response.status_code)
