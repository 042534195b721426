"""RFC 6455 frames without I/O: the server's fast path for the frames most messages travel in.

:func:`read_simple_frame` parses one *simple* client frame: FIN set, no reserved bits, masked,
and either a text/binary frame or a ping/pong (section 5.5: control payloads are at most 125
bytes). Anything else (close frames, fragments, extensions' reserved bits, unmasked frames,
oversize payloads) is reported as :data:`FALLBACK`, and the caller hands the stream from that
frame on to the full sans-I/O protocol (``websockets``). The writers frame unmasked server
frames (section 5.1: a server never masks).
"""

from __future__ import annotations

from struct import pack

try:
    from websockets.speedups import apply_mask
except ImportError:  # pragma: no cover - websockets built without its C extension
    from websockets.utils import apply_mask

__all__ = [
    "BINARY_HEADERS",
    "FALLBACK",
    "INCOMPLETE",
    "OP_BINARY",
    "OP_PING",
    "OP_PONG",
    "OP_TEXT",
    "TEXT_HEADERS",
    "frame_header",
    "pong",
    "read_simple_frame",
]

OP_TEXT, OP_BINARY, OP_PING, OP_PONG = 0x1, 0x2, 0x9, 0xA
# read_simple_frame's opcode when there is no simple frame to return.
INCOMPLETE = 0  # not all of the frame is here yet: wait for more bytes
FALLBACK = -1  # not a simple frame: the full protocol takes over at ``pos``
# An unfinished frame bigger than this goes to the full protocol, which buffers it without
# copying the whole buffer on every read.
MAX_BUFFERED = 65536

_NONE = b""


def read_simple_frame(buf: bytes, pos: int, max_size: int) -> tuple[int, bytes, int]:
    """Parse the frame at ``buf[pos:]``: ``(opcode, unmasked payload, end of the frame)``.

    ``opcode`` is :data:`INCOMPLETE` (wait for more bytes; keep ``buf[pos:]``) or
    :data:`FALLBACK` (hand ``buf[pos:]`` to the full protocol) when there is no frame to
    return. ``max_size``: payloads above it fall back (the full protocol refuses them, 1009).
    """
    size = len(buf)
    if size - pos < 2:
        return INCOMPLETE, _NONE, pos
    first = buf[pos]
    second = buf[pos + 1]
    opcode = first & 0x0F
    length = second & 0x7F
    if (
        first & 0xF0 != 0x80  # FIN set, no reserved bits
        or not second & 0x80  # clients must mask (section 5.1)
        or (opcode != 1 and opcode != 2 and (opcode < 9 or opcode > 10 or length > 125))
    ):
        return FALLBACK, _NONE, pos
    if length < 126:
        start = pos + 6
    elif length == 126:
        start = pos + 8
        if size < start:
            return INCOMPLETE, _NONE, pos
        length = (buf[pos + 2] << 8) | buf[pos + 3]
    else:
        start = pos + 14
        if size < start:
            return INCOMPLETE, _NONE, pos
        length = int.from_bytes(buf[pos + 2 : pos + 10], "big")
    end = start + length
    if end > size:
        if length > MAX_BUFFERED or length > max_size:
            return FALLBACK, _NONE, pos
        return INCOMPLETE, _NONE, pos
    if length > max_size:
        return FALLBACK, _NONE, pos
    return opcode, apply_mask(buf[start:end], buf[start - 4 : start]), end


def frame_header(first: int, size: int) -> bytes:
    """The header of an unmasked frame: ``first`` is the first byte (FIN, RSV, opcode)."""
    if size < 126:
        return bytes((first, size))
    if size < 65536:
        return pack("!BBH", first, 126, size)
    return pack("!BBQ", first, 127, size)


# The headers of unfragmented text/binary frames, by payload size below 126: built once, so
# the per-message send path indexes a tuple instead of building a header.
TEXT_HEADERS = tuple(bytes((0x81, size)) for size in range(126))
BINARY_HEADERS = tuple(bytes((0x82, size)) for size in range(126))


def pong(payload: bytes) -> bytes:
    """The pong answering a ping with ``payload`` (at most 125 bytes, section 5.5.3)."""
    return bytes((0x8A, len(payload))) + payload
