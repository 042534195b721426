"""The fields the server adds to every response (``Server``, ``Date``), formatted once a second
by the server rather than by every request."""

from __future__ import annotations

import time
from email.utils import formatdate

__all__ = ["DefaultHeaders"]


class DefaultHeaders:
    """``default_headers`` as field pairs (HTTP/2, WebSocket handshakes) and ``default_head``
    as HTTP/1.1 field lines, both rebuilt by :meth:`refresh_headers`."""

    def __init__(self, server_header: bool = True, date_header: bool = True) -> None:
        self._server_header = server_header
        self._date_header = date_header
        self.default_headers: list[tuple[bytes, bytes]] = []
        self.default_head = b""  # the same as HTTP/1.1 field lines, formatted once a second
        self.refresh_headers()

    def refresh_headers(self) -> None:
        """Rebuilt once a second by the server, so requests never format a date."""
        headers = []
        if self._server_header:
            headers.append((b"server", b"switchboard"))
        if self._date_header:
            headers.append((b"date", formatdate(time.time(), usegmt=True).encode()))
        self.default_headers = headers
        self.default_head = b"".join(b"%s: %s\r\n" % field for field in headers)
