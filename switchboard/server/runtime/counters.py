"""The counters behind the server's metrics, kept by the connections as things happen.

They are plain ints that the protocols bump (an increment is all the hot path pays); the
metrics hook reads them when it is scraped, possibly from another thread, which is safe for
ints under the GIL.
"""

from __future__ import annotations

__all__ = ["OVERFLOW_REASONS", "TrafficCounters"]

# Why a WebSocket was dropped for not reading: a send waited past ws_send_timeout, or frames
# the server writes on its own (pongs, pings) piled up for it (connections/ws_connection.py).
OVERFLOW_REASONS = ("send_timeout", "control_backlog")


class TrafficCounters:
    """Requests, responses, WebSocket handshakes, messages and closes, bytes, HTTP/2 resets."""

    def __init__(self) -> None:
        self.total_requests = 0  # HTTP requests whose head was parsed
        # HTTP responses by status class: index status // 100 (0: the request got none).
        self.http_responses = [0] * 6
        self.websockets = 0  # open connections on the WebSocket protocol (also in connections)
        self.ws_accepted = 0
        self.ws_handshake_failures = 0  # handshakes answered with anything but 101
        self.ws_messages_in = 0
        self.ws_messages_out = 0
        self.ws_closes: dict[int, int] = {}  # accepted connections ended, by close code
        # Of those, dropped by the server because the client stopped reading, by reason.
        self.ws_overflow_closes = dict.fromkeys(OVERFLOW_REASONS, 0)
        self.bytes_in = 0  # read from client sockets (HTTP and WebSocket, framing included)
        self.bytes_out = 0  # written to client sockets
        # HTTP/2 streams the client reset before their response was complete (work started
        # for nothing: what rapid reset, CVE-2023-44487, does on purpose), and streams the
        # server refused before any application saw them (too many at once, a client
        # address over its reset budget, a GOAWAY sent).
        self.h2_streams_reset = 0
        self.h2_streams_refused = 0

    def count_response(self, status: int) -> None:
        """One more HTTP response of ``status`` (0, or anything out of range: none was sent)."""
        self.http_responses[status // 100 if 100 <= status < 600 else 0] += 1
