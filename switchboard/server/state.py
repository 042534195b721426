"""What all connections of one server process share."""

from __future__ import annotations

import asyncio
import time
from email.utils import formatdate
from typing import Any


class ServerState:
    def __init__(self, server_header: bool = True, date_header: bool = True) -> None:
        self.connections: set[Any] = set()
        self.tasks: set[asyncio.Task] = set()
        self.total_requests = 0
        self.shutting_down = False
        self._server_header = server_header
        self._date_header = date_header
        self.default_headers: list[tuple[bytes, bytes]] = []
        self.refresh_headers()

    def refresh_headers(self) -> None:
        """Rebuilt once a second by the server, so requests never format a date."""
        headers = []
        if self._server_header:
            headers.append((b"server", b"switchboard"))
        if self._date_header:
            headers.append((b"date", formatdate(time.time(), usegmt=True).encode()))
        self.default_headers = headers
