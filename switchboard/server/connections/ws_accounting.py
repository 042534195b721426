"""What a WebSocket connection counts and logs: its handshake's answer, then how it closed.

The counters live on the server's state (read by the metrics hook when scraped); the lines go
to the access log (``runtime/access_log.py``), one for the handshake and one for the close of
an accepted connection. While the access log is on, the scope offers the application the
``switchboard.access_log`` extension (``access_log.NOTE_EXTENSION``): a note it sets there ends
the lines written after it.
"""

from __future__ import annotations

from switchboard.server.asgi.ws_cycle import ABNORMAL
from switchboard.server.connections.ws_connection import WebSocketConnection
from switchboard.server.runtime import access_log

__all__ = ["Accounting"]

access_logger = access_log.access_logger


class Accounting(WebSocketConnection):
    """Counters and access log lines of a WebSocket connection."""

    __slots__ = ()

    def _start_access_log(self) -> None:
        """At the handshake: time it, and offer the application the note extension, if the
        access log is on."""
        if access_log.enabled(self.config):
            self.log_access = True
            self.began = self.loop.time()
            self.log_note = self.scope["extensions"][access_log.NOTE_EXTENSION] = {}

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
            note = access_log.note_of(self.log_note)
            access_logger.info(access_log.ws_handshake_line(scope, status, now - self.began, note))
            if status == 101:
                self.began = now
                self.close_prefix = access_log.ws_close_prefix(scope)

    def _count_close(self) -> None:
        """An accepted connection ended: its close code counted, its close line logged.

        The code is that of the first close frame of the closing handshake, and the side
        that sent it closed the connection; with no close frame at all it is 1006."""
        ws = self.sansio  # None: dropped after the 101 and never needed again, so no close frame
        rcvd, sent = (None, None) if ws is None else (ws.close_rcvd, ws.close_sent)
        if rcvd is not None and (sent is None or ws.close_rcvd_then_sent):  # type: ignore[union-attr]
            code, by = rcvd.code, "client"
        elif sent is not None:
            code, by = sent.code, "server"
        else:
            code, by = ABNORMAL, None
        closes = self.server_state.ws_closes
        closes[code] = closes.get(code, 0) + 1
        if self.log_access:
            seconds = self.loop.time() - self.began
            cycle, note = self.cycle, access_log.note_of(self.log_note)
            line = access_log.ws_close_line(
                self.close_prefix, code, by, seconds, cycle.received, cycle.sent, note
            )
            access_logger.info(line)
