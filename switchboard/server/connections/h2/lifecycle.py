"""An HTTP/2 connection's settings and state, and its life around the traffic: set up (our
SETTINGS), written to once per batch, kept while idle up to ``timeout_keep_alive``, shut down
gracefully (GOAWAY, the streams in flight finish) or cut off (ENHANCE_YOUR_CALM), and closed
in stages. The traffic itself, frames in and streams, is ``protocol.H2Protocol``'s.
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING, Any

from h2.config import H2Configuration
from h2.connection import H2Connection
from h2.errors import ErrorCodes
from h2.exceptions import H2Error
from h2.settings import SettingCodes, Settings
from hyperframe.frame import GoAwayFrame

from switchboard.server.connections.addresses import transport_addresses
from switchboard.server.connections.flow_control import FlowControl
from switchboard.server.connections.h2.limits import FloodGuard, H2Budgets
from switchboard.server.connections.lingering_close import LINGER, close_in_stages
from switchboard.server.runtime.config import Config
from switchboard.server.runtime.state import ServerState
from switchboard.server.runtime.tls import tls_extension

if TYPE_CHECKING:
    from switchboard.server.connections.h2.stream import HttpStream
    from switchboard.server.connections.h2.websocket import StreamTransport

__all__ = ["INITIAL_WINDOW", "MAX_WINDOW", "H2Lifecycle"]

logger = logging.getLogger("switchboard.server")

# The windows RFC 9113 gives a stream and a connection before any WINDOW_UPDATE.
INITIAL_WINDOW = 65535
MAX_WINDOW = 2**31 - 1


class H2Lifecycle(asyncio.Protocol):
    """The connection's state, from ``connection_made`` to the end of its staged close."""

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
        self.max_streams = config.h2_max_concurrent_streams
        conn = H2Connection(
            H2Configuration(
                client_side=False,
                header_encoding=None,
                # Response fields are checked (and lower-cased) by wire/h2_fields.response_head.
                validate_outbound_headers=False,
                normalize_outbound_headers=False,
            )
        )
        conn.local_settings = Settings(
            client=False,
            initial_values={
                SettingCodes.MAX_CONCURRENT_STREAMS: self.max_streams,
                SettingCodes.MAX_HEADER_LIST_SIZE: config.max_header_size,
                SettingCodes.ENABLE_CONNECT_PROTOCOL: 1,  # RFC 8441 WebSockets
            },
        )
        # Enforced from the first frame, not only once the client acknowledges our SETTINGS.
        conn.decoder.max_header_list_size = config.max_header_size
        self.conn = conn
        self.transport: asyncio.Transport = None  # type: ignore[assignment]
        self.server: tuple[str, int] | None = None
        self.client: tuple[str, int] | None = None
        self.scheme = "http"
        self.tls: dict[str, Any] | None = None
        self.streams: dict[int, HttpStream | StreamTransport] = {}
        self.running = 0  # application tasks and WebSockets still alive on this connection
        self.guard = FloodGuard()
        self.budgets = H2Budgets.of(state, config.h2_max_buffered_body)
        # Receive window beyond the initial one: wanted, and borrowed from budgets.window.
        self.window_wanted = min(max(config.h2_connection_window, INITIAL_WINDOW), MAX_WINDOW)
        self.window_wanted -= INITIAL_WINDOW
        self.window_extra = 0
        self.header_block: object | None = None  # first frame of a header block in progress
        self.header_handle: asyncio.TimerHandle | None = None
        self.over_budget = False  # this connection's address is over its reset budget
        self.closing = False
        self.goaway_sent = False
        self.flow = FlowControl(self.loop)
        self.flush_scheduled = False
        self.idle_handle: asyncio.TimerHandle | None = None

    # -- connection -------------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        self.flow.transport = self.transport
        self.state.connections.add(self)
        self.client, self.server = transport_addresses(transport)
        self.tls = tls_extension(transport)
        self.scheme = "https" if self.tls is not None else "http"
        conn = self.conn
        conn.initiate_connection()
        self.flush()
        self._arm_idle()

    def connection_lost(self, exc: Exception | None) -> None:
        self.closing = True
        self.flow.stop()
        self.state.connections.discard(self)
        self._cancel_idle()
        self._let_go()
        for stream in list(self.streams.values()):
            stream.disconnect()
        self.streams.clear()
        self.flow.release()

    def eof_received(self) -> bool | None:
        return None  # the transport closes (and ends a staged close)

    def close(self) -> None:
        if self.closing:
            return
        self.closing = True
        self.flow.stop()
        self._cancel_idle()
        try:
            self.conn.close_connection(last_stream_id=self.conn.highest_inbound_stream_id)
        except H2Error:
            pass
        self._close_transport()

    def _calm(self, why: str) -> None:
        """The client abuses the connection: GOAWAY ENHANCE_YOUR_CALM and close."""
        if self.closing:
            return
        logger.warning("Closing HTTP/2 connection from %s: %s", self._peer(), why)
        self.closing = True
        self.flow.stop()
        self._cancel_idle()
        try:
            self.conn.close_connection(
                ErrorCodes.ENHANCE_YOUR_CALM, last_stream_id=self.conn.highest_inbound_stream_id
            )
        except H2Error:
            pass
        self._close_transport()

    def _let_go(self) -> None:
        """Nothing more is read: the window borrowed goes back, the header timer goes."""
        if self.window_extra:
            self.budgets.window.give_back(self.window_extra)
            self.window_extra = 0
        if self.header_handle is not None:
            self.header_handle.cancel()
            self.header_handle = None

    def _close_transport(self) -> None:
        self._let_go()
        self.flush()
        for stream in list(self.streams.values()):
            stream.disconnect()
        self.streams.clear()
        # Staged, so that a client still sending reads the GOAWAY rather than a reset; one
        # that does not read at all would hold the close forever, so it gets LINGER seconds.
        give_up = LINGER if self.flow.writing_paused else None
        close_in_stages(self.transport, self.loop, give_up_after=give_up)

    def _peer(self) -> str:
        return f"{self.client[0]}:{self.client[1]}" if self.client else "-"

    def shutdown(self) -> None:
        """GOAWAY now; close once the streams in flight are done."""
        if self.closing or self.goaway_sent:
            return
        self.goaway_sent = True
        self.flush()
        # Written by hand: h2 sends nothing more at all after its own GOAWAY, and the streams
        # in flight still need their responses (RFC 9113 section 6.8).
        frame = GoAwayFrame(0)
        frame.last_stream_id = self.conn.highest_inbound_stream_id
        frame.error_code = ErrorCodes.NO_ERROR
        self.transport.write(frame.serialize())
        self._maybe_done()

    def _maybe_done(self) -> None:
        if self.running or self.closing:
            return
        if self.goaway_sent:
            self.close()
        elif not self.streams:
            self._arm_idle()

    # -- writing ----------------------------------------------------------------------------

    def flush(self) -> None:
        self.flush_scheduled = False
        data = self.conn.data_to_send()
        if data and not self.transport.is_closing():
            self.transport.write(data)

    def schedule_flush(self) -> None:
        """Write at the end of this loop iteration: responses of many streams finishing
        together leave in one write."""
        if not self.flush_scheduled:
            self.flush_scheduled = True
            self.loop.call_soon(self.flush)

    # -- idle connections ---------------------------------------------------------------------

    def _arm_idle(self) -> None:
        self._cancel_idle()
        self.idle_handle = self.loop.call_later(self.config.timeout_keep_alive, self._idle)

    def _cancel_idle(self) -> None:
        if self.idle_handle is not None:
            self.idle_handle.cancel()
            self.idle_handle = None

    def _idle(self) -> None:
        self.idle_handle = None
        if not self.running and not self.streams:
            self.close()
