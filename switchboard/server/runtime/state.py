"""What all connections of one server process share."""

from __future__ import annotations

import asyncio
import time
from email.utils import formatdate
from typing import Any


class ServerState:
    """Connections, tasks and the counters behind the server's metrics.

    The counters are plain ints that the protocols bump as things happen (an increment is all
    the hot path pays); ``switchboard.metrics`` reads them when it is scraped, possibly from
    another thread, which is safe for ints under the GIL.
    """

    def __init__(self, server_header: bool = True, date_header: bool = True) -> None:
        self.connections: set[Any] = set()
        self.tasks: set[asyncio.Task] = set()
        self.shutting_down = False
        # The worker slot under --workers (a metrics label), None for a single process.
        self.worker: int | None = None
        self.total_requests = 0  # HTTP requests whose head was parsed
        # HTTP responses by status class: index status // 100 (0: the request got none).
        self.http_responses = [0] * 6
        self.websockets = 0  # open connections on the WebSocket protocol (also in connections)
        self.ws_accepted = 0
        self.ws_handshake_failures = 0  # handshakes answered with anything but 101
        self.ws_messages_in = 0
        self.ws_messages_out = 0
        self.ws_closes: dict[int, int] = {}  # accepted connections ended, by close code
        self.bytes_in = 0  # read from client sockets (HTTP and WebSocket, framing included)
        self.bytes_out = 0  # written to client sockets
        # HTTP/2 streams the client reset before their response was complete (work started
        # for nothing: what rapid reset, CVE-2023-44487, does on purpose), and streams the
        # server refused before any application saw them (too many at once, a client
        # address over its reset budget, a GOAWAY sent).
        self.h2_streams_reset = 0
        self.h2_streams_refused = 0
        # The budgets all HTTP/2 connections share (connections/h2/limits.py H2Budgets), made
        # by the first.
        self.h2_budgets: Any = None
        self._server_header = server_header
        self._date_header = date_header
        self.default_headers: list[tuple[bytes, bytes]] = []
        self.default_head = b""  # the same as HTTP/1.1 field lines, formatted once a second
        self.refresh_headers()

    def count_response(self, status: int) -> None:
        """One more HTTP response of ``status`` (0, or anything out of range: none was sent)."""
        self.http_responses[status // 100 if 100 <= status < 600 else 0] += 1

    def refresh_headers(self) -> None:
        """Rebuilt once a second by the server, so requests never format a date."""
        headers = []
        if self._server_header:
            headers.append((b"server", b"switchboard"))
        if self._date_header:
            headers.append((b"date", formatdate(time.time(), usegmt=True).encode()))
        self.default_headers = headers
        self.default_head = b"".join(b"%s: %s\r\n" % field for field in headers)


# States of the servers running in this process (Server.startup/shutdown keep it), so that a
# metrics view inside the application can find them without a reference to the server.
_serving: list[ServerState] = []


def serving_states() -> list[ServerState]:
    """The states of the servers this process runs right now."""
    return list(_serving)


def websockets_open() -> bool:
    """Does any server of this process hold an open WebSocket? (Read without a lock: a stale
    answer only delays or hastens a scheduling choice.)"""
    return any(state.websockets for state in _serving)


def add_serving(state: ServerState) -> None:
    if state not in _serving:
        _serving.append(state)


def remove_serving(state: ServerState) -> None:
    if state in _serving:
        _serving.remove(state)
