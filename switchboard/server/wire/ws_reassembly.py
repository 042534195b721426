"""WebSocket messages put back together from their fragments (RFC 6455 section 5.4), without
I/O: data frames in, the ``websocket.receive`` message out once the last fragment is in."""

from __future__ import annotations

import codecs
from typing import Any

from websockets.frames import Opcode

from switchboard.server.asgi.types import Message

__all__ = ["MessageAssembler"]

Data = bytes | bytearray | memoryview


class MessageAssembler:
    """One fragmented message at a time: text is decoded as its fragments arrive, so invalid
    UTF-8 fails fast, before the message ends (``UnicodeDecodeError`` from :meth:`add`)."""

    __slots__ = ("text", "parts", "decoder")

    def __init__(self) -> None:
        self.text = False
        self.parts: list[Any] = []  # str pieces of a text message, else bytes
        self.decoder: Any = None

    def add(self, opcode: Opcode, data: Data, fin: bool) -> Message | None:
        """A fragment (TEXT or BINARY starts a message, CONT continues it); the message once
        ``fin`` ends it, else None."""
        if opcode is not Opcode.CONT:
            self.text = opcode is Opcode.TEXT
            self.parts = []
            self.decoder = codecs.getincrementaldecoder("utf-8")() if self.text else None
        decoder = self.decoder
        if decoder is not None:
            self.parts.append(decoder.decode(data, fin))
        else:
            self.parts.append(data)
        if not fin:
            return None
        parts, self.parts, self.decoder = self.parts, [], None
        if self.text:
            return {"type": "websocket.receive", "text": "".join(parts)}
        return {"type": "websocket.receive", "bytes": b"".join(parts)}
