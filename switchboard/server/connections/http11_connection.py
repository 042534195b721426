"""The state of one HTTP/1.1 connection, and the steps every part of its protocol takes.

:class:`~switchboard.server.connections.http11.HttpProtocol` is put together from parts over
this state: upgrades and hand-overs to other protocols (``http11_upgrades``) and the protocol
itself (asyncio and parser callbacks, the requests in order). They are classes over one object
rather than objects of their own because the parser callbacks, once per request or field,
would otherwise pay a call and a lookup more each.

Where the connection is in its life is one value, ``conn_state``, moved only along the table
of ``http11_states`` by :meth:`Http11Connection._event` (the per-request path inlines the same
lookup); what else is kept here is data: the requests in flight, the head being parsed, the
bytes an upgrade or an error response waits with.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

import httptools

from switchboard.server.asgi.types import Scope
from switchboard.server.connections.flow_control import FlowControl
from switchboard.server.connections.http11_states import (
    AFTER,
    CLOSE,
    CLOSED,
    CLOSING,
    HAND_OVER,
    IDLE,
    PREFACE,
    REFUSE,
    ConnEvent,
    ConnState,
)
from switchboard.server.connections.lingering_close import close_in_stages
from switchboard.server.runtime import access_log
from switchboard.server.runtime.config import Config
from switchboard.server.runtime.state import ServerState
from switchboard.server.wire.http11_framing import plain_response

if TYPE_CHECKING:
    from switchboard.server.connections.http11_request import Http11Request

__all__ = ["Http11Connection", "Rejected"]

access_logger = access_log.access_logger

_AFTER_CLOSE = AFTER[CLOSE]


class Http11Connection(asyncio.Protocol):
    """One HTTP/1.1 connection's state (see the module docs for the parts that use it)."""

    __slots__ = (
        "config",
        "app",
        "state",
        "app_state",
        "loop",
        "parser",
        "transport",
        "server",
        "client",
        "scheme",
        "tls",
        "log_access",
        "flow",
        "conn_state",
        "idle_timer",
        "idle_since",
        "current",
        "queue",
        "parsing",
        "url",
        "headers",
        "header_bytes",
        "expect",
        "content_length",
        "connection_field",
        "failure",
        "ws_scope",
        "ws_leftover",
        "refused_upgrade",
        "resume_body",
        "h2c_probe",
    )

    def __init__(
        self,
        config: Config,
        state: ServerState,
        app_state: dict[str, Any] | None = None,
        loop: asyncio.AbstractEventLoop | None = None,
    ) -> None:
        self.config = config
        self.app = config.app
        self.state = state
        self.app_state = app_state if app_state is not None else {}
        self.loop = loop or asyncio.get_event_loop()
        self.parser = httptools.HttpRequestParser(self)
        self.transport: asyncio.Transport = None  # type: ignore[assignment]
        self.server: tuple[str, int] | None = None
        self.client: tuple[str, int] | None = None
        self.scheme = "http"
        self.tls: dict[str, Any] | None = None  # the ASGI tls extension, on TLS connections
        self.log_access = False  # asked once per connection (access_log.enabled)
        self.flow = FlowControl(self.loop)
        # With HTTP/2 on, the first bytes may be its preface rather than a request.
        self.conn_state = PREFACE if config.http2 else IDLE
        # The keep-alive timer (PREFACE and IDLE), armed lazily: see _arm_keep_alive.
        self.idle_timer: asyncio.TimerHandle | None = None
        self.idle_since = 0.0  # loop time the connection last became idle
        self.current: Http11Request | None = None  # the request being answered
        # Pipelined behind it (rarely any: a list costs less than a deque per connection).
        self.queue: list[Http11Request] = []
        self.parsing: Http11Request | None = None  # the request whose body is being read
        # The request head being parsed, from the parser callbacks.
        self.url = b""
        self.headers: list[tuple[bytes, bytes]] = []
        self.header_bytes = 0
        self.expect: bytes | None = None  # its Expect field
        self.content_length: bytes | None = None  # its Content-Length field
        self.connection_field = False  # and whether it has a Connection field
        self.failure = b""  # FAILING: the error response that waits
        self.ws_scope: Scope | None = None  # a WebSocket handshake was parsed
        self.ws_leftover = b""  # UPGRADING: the bytes after it
        self.refused_upgrade: Http11Request | None = None  # an Upgrade answered as plain HTTP
        self.resume_body: Http11Request | None = None  # ...whose body a new parser reads
        self.h2c_probe = b""  # PREFACE: the bytes so far, a prefix of the preface

    def _event(self, event: ConnEvent) -> ConnState:
        """Move the connection along the state table; an event the table does not allow in
        the current state raises ``ConnectionStateError``. Returns the state it left."""
        before = self.conn_state
        self.conn_state = AFTER[event][before]
        return before

    # -- closing -------------------------------------------------------------------------

    def close(self) -> None:
        """Close the connection; the requests on it see the client as gone from now on (so
        nothing more of theirs reaches the wire)."""
        before = self.conn_state
        self.conn_state = _AFTER_CLOSE[before]
        if before is not CLOSING and before is not CLOSED:
            self.flow.stop()
            if self.state.shutting_down:
                self.transport.close()
            else:  # staged: a client still sending reads our last response, not a reset
                close_in_stages(self.transport, self.loop)
        self._cancel_keep_alive()
        self._disconnect_requests()

    def _disconnect_requests(self) -> None:
        for req in (self.current, *self.queue):
            if req is not None and not req.disconnected:
                req.disconnected = True
                req.wake()

    def release_transport(self) -> None:
        """Another protocol takes the transport over (WebSocket, HTTP/2): this one lets go of
        it without closing it."""
        self._event(HAND_OVER)
        self.state.connections.discard(self)
        self.flow.stop()
        self._cancel_keep_alive()

    # -- the keep-alive timer (PREFACE and IDLE) -----------------------------------------

    def _arm_keep_alive(self) -> None:
        # Entering IDLE (or PREFACE). A timer is not cancelled when a request head comes in
        # nor armed anew each time the connection is idle again (a timer each way per request
        # is a good share of a small request's cost): the one running, if any, finds out when
        # it fires whether the connection has been idle long enough, and otherwise waits for
        # the rest of the time.
        self.idle_since = self.loop.time()
        if self.idle_timer is None:
            self.idle_timer = self.loop.call_later(
                self.config.timeout_keep_alive, self._idle_timer_fired
            )

    def _idle_timer_fired(self) -> None:
        self.idle_timer = None
        if self.conn_state is not IDLE and self.conn_state is not PREFACE:
            return  # busy: armed again when the connection is idle again
        left = self.idle_since + self.config.timeout_keep_alive - self.loop.time()
        if left > 0:  # idle again since the timer was armed
            self.idle_timer = self.loop.call_later(left, self._idle_timer_fired)
        else:
            self._keep_alive_expired()

    @property
    def keep_alive_handle(self) -> asyncio.TimerHandle | None:
        """The timer that closes the connection after ``timeout_keep_alive`` idle seconds,
        while it counts (PREFACE and IDLE)."""
        if self.conn_state is IDLE or self.conn_state is PREFACE:
            return self.idle_timer
        return None

    def _cancel_keep_alive(self) -> None:
        if self.idle_timer is not None:
            self.idle_timer.cancel()
            self.idle_timer = None

    def _keep_alive_expired(self) -> None:
        """Idle for ``timeout_keep_alive`` seconds (PREFACE, or IDLE): closed."""
        if self.conn_state is IDLE or self.conn_state is PREFACE:
            self.close()

    # -- responses of the server's own ---------------------------------------------------

    def _fail_input(self, status: int, text: str) -> None:
        """The client's bytes can't be served from here on: answer ``status`` once the
        requests before them are answered, then close."""
        bad, self.parsing = self.parsing, None
        current = self.current
        if bad is not None and bad is not current and bad in self.queue:
            self.queue.remove(bad)  # queued: it never reaches the app
        response = plain_response(status, text, head=bad is not None and bad.is_head)
        if current is None:
            self._write_error(response)
            self._refused(bad, status, len(response))
            self.close()
        elif current is bad:
            # The app sees http.disconnect; its own response can't go out any more. Its
            # access-log line and count come when it returns, with this status.
            if not current.wrote:
                current.wrote = True
                current.status = status
                current._write(response)
            self.close()
        else:
            self._event(REFUSE)
            self.failure = response
            self._refused(bad, status, len(response))
            self.flow.pause_reading()

    def _write_error(self, response: bytes) -> None:
        """An error response of the server's own (no application saw the request)."""
        self.transport.write(response)
        self.state.bytes_out += len(response)

    # -- counting and the access log -----------------------------------------------------

    def _done(self, req: Http11Request) -> None:
        """Count the response (by status class) and write its access-log line."""
        status = req.status
        # state.count_response, inline: once per request.
        self.state.http_responses[status // 100 if 100 <= status < 600 else 0] += 1
        if self.log_access:
            seconds = self.loop.time() - req.began
            access_logger.info(access_log.http_line(req.scope, status, req.sent, seconds))

    def _refused(self, bad: Http11Request | None, status: int, size: int) -> None:
        """Count, and access-log, a response of the server's own to a request that no
        application answers (``bad`` is None when its head was not even parsed)."""
        self.state.count_response(status)
        if self.log_access:
            scope = bad.scope if bad is not None else None
            client = scope.get("client") if scope is not None else self.client
            access_logger.info(access_log.refused_line(client, scope, status, size))

    # -- flow control --------------------------------------------------------------------

    def pause_writing(self) -> None:
        self.flow.pause_writing()

    def resume_writing(self) -> None:
        self.flow.resume_writing()


class Rejected(Exception):
    """Unwinds the parser after an error response was written."""
