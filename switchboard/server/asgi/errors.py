"""Errors every protocol raises the same way, whichever module it lives in."""

from __future__ import annotations

from switchboard.server.wire.http11_framing import InvalidResponse

__all__ = ["ClientDisconnected", "InvalidResponse", "caused_by_disconnect"]


class ClientDisconnected(OSError):
    """The client is gone; raised by ``send`` after the connection closed."""


def caused_by_disconnect(exc: BaseException | None) -> bool:
    """Is ``exc`` (or what it was raised from) our ``ClientDisconnected``?"""
    for _ in range(8):
        if exc is None:
            return False
        if isinstance(exc, ClientDisconnected):
            return True
        exc = exc.__cause__ or exc.__context__
    return False
