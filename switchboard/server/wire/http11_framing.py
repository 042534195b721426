"""HTTP/1.1 response framing without I/O: status lines, checked header fields, token lists.

Everything here works on bytes and raises :class:`InvalidResponse` for what an application
must not put on the wire; ``connections/http11.py`` decides what that means for the connection.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from http import HTTPStatus
from typing import Any


class InvalidResponse(RuntimeError):
    """The application's response cannot be framed as valid HTTP/1.1."""


def _status_line(status: int) -> bytes:
    try:
        phrase = HTTPStatus(status).phrase
    except ValueError:
        phrase = ""
    return f"HTTP/1.1 {status} {phrase}\r\n".encode()


STATUS_LINES: dict[int, bytes] = {code: _status_line(code) for code in range(100, 600)}

# Final statuses whose responses never carry content (RFC 9110 sections 15.3.5, 15.4.5).
NO_CONTENT_STATUSES = frozenset((204, 304))

# token = 1*tchar (RFC 9110 section 5.6.2).
_TOKEN = re.compile(rb"[!#$%&'*+\-.^_`|~0-9A-Za-z]+\Z")
# Field values: no CTL but HTAB (RFC 9110 section 5.5). CR, LF and NUL would split responses.
BAD_VALUE = re.compile(rb"[\x00-\x08\x0a-\x1f\x7f]")
# The bytes a field value may hold: ``value.translate(None, FIELD_BYTES)`` leaves only what is
# not allowed (one C pass).
FIELD_BYTES = bytes(b for b in range(256) if b == 0x09 or 0x20 <= b < 0x7F or b >= 0x80)
# Their complement, the control bytes a field may not hold: deleting these 32 is cheaper than
# keeping the 224 above (translate builds its table from the bytes it is given).
CONTROL_BYTES = bytes(b for b in range(256) if b not in FIELD_BYTES)
_DIGITS = re.compile(rb"[0-9]{1,18}\Z")

# Names already checked once: most applications send the same handful on every response, so
# the hot path is a dict lookup per field and one CONTROL_BYTES pass over the head.
KNOWN_NAMES: dict[bytes, bytes] = {}  # checked name -> its lower-case form
_KNOWN_NAMES_MAX = 1024


def final_status_line(status: Any) -> bytes:
    """The status line for an application's final response: an int in 200..599 (callers may
    look up ``STATUS_LINES`` first and come here for anything else)."""
    line = STATUS_LINES.get(status) if isinstance(status, int) else None
    if line is None or status < 200 or isinstance(status, bool):
        # A 1xx is interim (RFC 9110 section 15.2): the client would wait for a final
        # response that never comes and take the next one for it.
        raise InvalidResponse(f"Invalid status for a final response: {status!r}")
    return line


def check_field(name: Any, value: Any) -> None:
    """Refuse a header or trailer field that is not a token name with a clean value.

    On the hot path, callers skip it for names in ``KNOWN_NAMES`` and check the values of the
    whole head at once (``FIELD_BYTES``)."""
    if not isinstance(name, bytes) or not isinstance(value, bytes):
        raise InvalidResponse(f"Header names and values must be bytes: {name!r}: {value!r}")
    if name not in KNOWN_NAMES:
        if not _TOKEN.match(name):
            raise InvalidResponse(f"Invalid header name {name!r}")
        if len(KNOWN_NAMES) < _KNOWN_NAMES_MAX:
            KNOWN_NAMES[name] = name.lower()
    if BAD_VALUE.search(value):
        raise InvalidResponse(f"Invalid header value for {name.decode('latin-1')}: {value!r}")


def content_length(value: bytes) -> int:
    """The value of a ``content-length`` field (a list of equal values is one value)."""
    if value.isdigit() and len(value) <= 18:
        return int(value)
    values = {item.strip(b" \t") for item in value.split(b",")} if b"," in value else {value}
    if len(values) != 1:
        raise InvalidResponse(f"Conflicting content-length {value!r}")
    (single,) = values
    if not _DIGITS.match(single):
        raise InvalidResponse(f"Invalid content-length {value!r}")
    return int(single)


def merge_content_length(length: int | None, value: bytes) -> tuple[int, bool]:
    """Fold one more ``content-length`` field into the ``length`` seen so far: ``(length,
    repeated)``. An equal repeat is the same field again; a different one is refused."""
    announced = content_length(value)
    if length is None:
        return announced, False
    if announced != length:
        raise InvalidResponse("Conflicting content-length headers")
    return length, True


def has_token(value: bytes, token: bytes) -> bool:
    """Does the comma-separated list ``value`` hold ``token`` (case-insensitive, parameters
    ignored)?"""
    if token not in value.lower():
        return False
    return any(item.split(b";", 1)[0].strip(b" \t").lower() == token for item in value.split(b","))


def header_has_token(headers: Iterable[tuple[bytes, bytes]], name: bytes, token: bytes) -> bool:
    """``has_token`` over every field named ``name`` (lower-case) in ``headers``."""
    return any(n == name and has_token(v, token) for n, v in headers)


def is_websocket_upgrade(method: str, headers: Iterable[tuple[bytes, bytes]]) -> bool:
    """A WebSocket opening handshake: GET, ``Connection: upgrade`` and ``Upgrade: websocket``
    (RFC 6455 section 4.2.1; tokens compare case-insensitively).

    Upgrade must offer websocket alone: with other protocols besides (``foo, websocket``) the
    request is served on HTTP/1.1, which a server may always do (RFC 9110 section 7.8), as
    uvicorn and Daphne do."""
    headers = list(headers)
    return (
        method == "GET"
        and header_has_token(headers, b"connection", b"upgrade")
        and _offered_protocols(headers) == [b"websocket"]
    )


def _offered_protocols(headers: list[tuple[bytes, bytes]]) -> list[bytes]:
    """The protocols of every Upgrade field, lower-cased, empty list elements skipped."""
    return [
        item
        for name, value in headers
        if name == b"upgrade"
        for item in (part.strip(b" \t").lower() for part in value.split(b","))
        if item
    ]


def has_request_body(headers: Iterable[tuple[bytes, bytes]]) -> bool:
    """Does the request head announce content: any Transfer-Encoding, or a Content-Length
    other than 0 (RFC 9112 section 6.3)?"""
    for name, value in headers:
        if name == b"transfer-encoding":
            return True
        if name == b"content-length" and content_length_value(value) != 0:
            return True
    return False


def content_length_value(value: bytes) -> int | None:
    """A request's Content-Length field value as a length, ``None`` if it is not one (the
    parser enforces the rest of the framing rules)."""
    return int(value) if _DIGITS.match(value) else None


def request_content_length(headers: Iterable[tuple[bytes, bytes]]) -> int | None:
    """The announced request body length, if a valid one was given (the parser enforces the
    rest of the framing rules)."""
    for name, value in headers:
        if name == b"content-length" and (length := content_length_value(value)) is not None:
            return length
    return None


def plain_response(status: int, text: str, close: bool = True, head: bool = False) -> bytes:
    """A complete text/plain response generated by the server itself; ``head``: the answer
    to a HEAD request, which has no content (RFC 9110 section 9.3.2)."""
    body = text.encode()
    return b"".join(
        [
            STATUS_LINES[status],
            b"content-type: text/plain; charset=utf-8\r\n",
            b"content-length: %d\r\n" % len(body),
            b"connection: close\r\n" if close else b"",
            b"\r\n",
            b"" if head else body,
        ]
    )


# -- response heads, chunks and trailers (RFC 9112 sections 4-7) ------------------------------

TE_CHUNKED = b"transfer-encoding: chunked\r\n"
CONNECTION_CLOSE = b"connection: close\r\n"
# The last chunk of a chunked body: alone it ends the message; with trailers, their fields
# and the final CRLF follow (RFC 9112 section 7.1).
LAST_CHUNK = b"0\r\n\r\n"
LAST_CHUNK_BEFORE_TRAILERS = b"0\r\n"
# Framing fields can't be trailers (RFC 9110 section 6.5.1); they are dropped rather than lie.
NOT_TRAILERS = frozenset((b"content-length", b"transfer-encoding", b"trailer", b"host"))


# The fields response_head looks into; every other one goes through as it is.
_FRAMING_FIELDS = frozenset((b"content-length", b"transfer-encoding", b"connection"))

# Heads already checked, by (status, fields): most applications answer with a handful of
# distinct heads, so the common response costs one tuple and one dict lookup. Bounded like
# KNOWN_NAMES: an app whose fields differ on every response fills it once and stops there.
# Value: [status line, the app's field lines, content-length, connection: close, and the
# whole head with the default fields it was last put together with, and those fields] (they
# change once a second: most responses reuse the whole head).
_HEADS: dict[tuple[int, tuple[Any, ...]], list[Any]] = {}
_HEADS_MAX = 256


def response_head(
    status: Any,
    headers: Iterable[tuple[bytes, bytes]],
    default_head: bytes,
    keep_alive: bool,
) -> tuple[bytes, int | None, bool]:
    """The status line and fields of ``http.response.start``, checked, without the framing
    fields (see :func:`complete_head`): ``(head, app's content-length or None, keep_alive)``.

    The app's ``transfer-encoding`` is dropped (framing is the server's), ``content-length``
    is checked and kept except on a 204 (RFC 9110 section 8.6), ``connection: close`` ends
    keep-alive. Raises :class:`InvalidResponse` for what cannot go on the wire.
    """
    headers = tuple(headers)
    key = None
    if status.__class__ is int:  # not 200.0: equal to 200 as a key, but no status
        key = (status, headers)
        try:
            cached = _HEADS.get(key)
        except TypeError:  # unhashable fields (lists, bytearrays): checked below
            cached = key = None
        if cached is not None:
            if cached[5] is not default_head:
                cached[4] = cached[0] + default_head + cached[1]
                cached[5] = default_head
            return cached[4], cached[2], keep_alive and not cached[3]
    line = STATUS_LINES.get(status) if status.__class__ is int else None
    if line is None or status < 200:
        line = final_status_line(status)  # raises unless an int subclass like HTTPStatus
    lines = [line, default_head]
    append = lines.append
    known = KNOWN_NAMES
    length: int | None = None
    head = b""
    close = False
    try:
        for name, value in headers:
            lname = known.get(name)
            if lname is None:
                check_field(name, value)  # raises InvalidResponse unless fine
                lname = name.lower()
            if lname in _FRAMING_FIELDS:
                if lname == b"content-length":
                    length, repeated = merge_content_length(length, value)
                    if repeated or status == 204:
                        continue
                elif lname == b"transfer-encoding":
                    continue
                elif has_token(value, b"close"):  # connection
                    close = True
            append(b"%s: %s\r\n" % (name, value))
    except TypeError:
        unchecked = True  # not bytes: check_field below says which
    else:
        head = b"".join(lines)
        # All values in one C pass: the head may hold exactly one CR and one LF per line
        # (the default head is the server's own); any other control byte, or a CR LF inside
        # a value, makes more.
        line_ends = len(lines) - 1 + default_head.count(b"\n")
        unchecked = len(head) - len(head.translate(None, CONTROL_BYTES)) != 2 * line_ends
    if unchecked:
        for name, value in headers:
            check_field(name, value)
        raise InvalidResponse("Invalid header fields")  # pragma: no cover - raised above
    if key is not None and len(_HEADS) < _HEADS_MAX:
        _HEADS[key] = [line, b"".join(lines[2:]), length, close, head, default_head]
    return head, length, keep_alive and not close


def complete_head(
    head: bytes,
    length: int | None,
    more: bool,
    *,
    framed: bool,
    trailers: bool,
    http11: bool,
    keep_alive: bool,
) -> tuple[bytes, bool, bool]:
    """Add the framing fields and the blank line to ``head``: ``(bytes, chunked, keep_alive)``.

    ``length``: the whole body's size when known now (a single body message); ``more``: body
    messages follow; ``framed``: the app's content-length or a status without content frames
    the response already; ``trailers``: trailer fields will go on the wire, which only chunked
    framing can carry. Without a length on HTTP/1.0 the body ends when the connection closes.
    """
    lines = [head]
    chunked = False
    if not framed:
        if trailers:
            chunked = True
            lines.append(TE_CHUNKED)
        elif length is not None:
            lines.append(b"content-length: %d\r\n" % length)
        elif more:
            if http11:
                chunked = True
                lines.append(TE_CHUNKED)
            else:
                keep_alive = False
    if not keep_alive:
        lines.append(CONNECTION_CLOSE)
    lines.append(b"\r\n")
    return b"".join(lines), chunked, keep_alive


def chunk(data: bytes | bytearray | memoryview) -> bytes:
    """One chunk of a chunked body (nothing for no data: an empty chunk would end the body)."""
    return b"%x\r\n%s\r\n" % (len(data), data) if data else b""


def trailer_section(fields: Iterable[tuple[bytes, bytes]], last: bool) -> bytes:
    """Trailer field lines (fields already checked), framing fields left out; ``last``: the
    final CRLF that ends the chunked message follows them."""
    out = [
        b"%s: %s\r\n" % (name, value) for name, value in fields if name.lower() not in NOT_TRAILERS
    ]
    if last:
        out.append(b"\r\n")
    return b"".join(out)
