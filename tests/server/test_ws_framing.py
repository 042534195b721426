"""``ws_framing`` without sockets: the fast-path frame parser and the frame writers (RFC 6455
section 5)."""

from __future__ import annotations

import os
import struct

import pytest
from websockets.frames import Frame, Opcode

from switchboard.server.wire.ws_framing import (
    BINARY_HEADERS,
    FALLBACK,
    INCOMPLETE,
    MAX_BUFFERED,
    TEXT_HEADERS,
    frame_header,
    pong,
    read_simple_frame,
)

BIG = 1 << 62


def client_frame(
    opcode: int, payload: bytes, fin: bool = True, rsv: int = 0, mask: bool = True
) -> bytes:
    """A client frame built by hand (section 5.2), masked with a random key (section 5.3)."""
    first = (0x80 if fin else 0) | rsv << 4 | opcode
    bit = 0x80 if mask else 0
    size = len(payload)
    if size < 126:
        head = bytes((first, bit | size))
    elif size < 65536:
        head = struct.pack("!BBH", first, bit | 126, size)
    else:
        head = struct.pack("!BBQ", first, bit | 127, size)
    if not mask:
        return head + payload
    key = os.urandom(4)
    return head + key + bytes(b ^ key[i % 4] for i, b in enumerate(payload))


@pytest.mark.parametrize("opcode", [0x1, 0x2, 0x9, 0xA])
def test_simple_frames_are_unmasked(opcode: int) -> None:
    data = client_frame(opcode, b"hello")
    assert read_simple_frame(data, 0, BIG) == (opcode, b"hello", len(data))


@pytest.mark.parametrize("size", [0, 125, 126, 65535, 65536])
def test_payload_lengths_7_16_and_64_bit(size: int) -> None:
    payload = os.urandom(size)
    data = client_frame(0x2, payload)
    assert read_simple_frame(data, 0, BIG) == (0x2, payload, len(data))


def test_frames_back_to_back_and_at_an_offset() -> None:
    first, second = client_frame(0x1, b"one"), client_frame(0x2, b"two")
    data = b"junk" + first + second
    opcode, payload, end = read_simple_frame(data, 4, BIG)
    assert (opcode, payload) == (0x1, b"one")
    assert read_simple_frame(data, end, BIG) == (0x2, b"two", len(data))


@pytest.mark.parametrize("cut", [1, 2, 5, 7, 9])
def test_incomplete_frames_wait(cut: int) -> None:
    data = client_frame(0x1, b"x" * 200)  # 16-bit length: 8 header bytes
    assert read_simple_frame(data[:cut], 0, BIG) == (INCOMPLETE, b"", 0)
    assert read_simple_frame(data[:-1], 0, BIG)[0] == INCOMPLETE
    long = client_frame(0x2, b"y" * 70000)[:13]  # 64-bit length: 14 header bytes
    assert read_simple_frame(long, 0, BIG)[0] == INCOMPLETE


def test_unfinished_big_frame_falls_back() -> None:
    # The full protocol buffers large frames as they arrive.
    data = client_frame(0x2, b"z" * (MAX_BUFFERED + 1))
    assert read_simple_frame(data[:-1], 0, BIG) == (FALLBACK, b"", 0)


def test_over_max_size_falls_back() -> None:
    # The full protocol refuses it with 1009 (section 7.4.1).
    data = client_frame(0x2, b"a" * 11)
    assert read_simple_frame(data, 0, 10) == (FALLBACK, b"", 0)
    assert read_simple_frame(data[:-1], 0, 10) == (FALLBACK, b"", 0)
    assert read_simple_frame(data, 0, 11)[0] == 0x2


@pytest.mark.parametrize(
    "data",
    [
        client_frame(0x1, b"frag", fin=False),  # fragmented message (section 5.4)
        client_frame(0x0, b"more"),  # continuation
        client_frame(0x8, b"\x03\xe8"),  # close: the closing handshake is the full protocol's
        client_frame(0x1, b"rsv", rsv=4),  # a reserved bit (extensions, section 5.2)
        client_frame(0x2, b"raw", mask=False),  # clients must mask (section 5.1)
        client_frame(0x3, b"?"),  # reserved opcode
        client_frame(0x9, b"p" * 126),  # control frames carry at most 125 bytes (section 5.5)
    ],
)
def test_anything_else_falls_back(data: bytes) -> None:
    assert read_simple_frame(data, 0, BIG) == (FALLBACK, b"", 0)


@pytest.mark.parametrize("size", [0, 5, 125, 126, 65535, 65536])
def test_frame_header_matches_websockets(size: int) -> None:
    payload = b"p" * size
    reference = Frame(Opcode.BINARY, payload).serialize(mask=False)
    assert frame_header(0x82, size) + payload == reference


def test_pong_echoes_the_ping_payload() -> None:
    assert pong(b"abc") == Frame(Opcode.PONG, b"abc").serialize(mask=False)
    assert pong(b"") == b"\x8a\x00"


def test_the_prebuilt_small_headers_are_the_headers_of_those_frames():
    # Section 5.2: payloads below 126 bytes carry their length in the second byte.
    assert len(TEXT_HEADERS) == len(BINARY_HEADERS) == 126
    for size in range(126):
        payload = b"x" * size
        assert TEXT_HEADERS[size] + payload == Frame(Opcode.TEXT, payload).serialize(mask=False)
        assert BINARY_HEADERS[size] + payload == Frame(Opcode.BINARY, payload).serialize(mask=False)
