"""HTTP/2 header fields without I/O: a request's field block to the parts of an ASGI scope, an
application's response fields to an HTTP/2 field block.

The ``h2`` library has already checked the request block (pseudo-fields first, lower-case
names, no connection-specific fields: RFC 9113 section 8.2); what is left is ASGI's view.
"""

from __future__ import annotations

from collections.abc import Iterable

from switchboard.server.asgi.types import Message
from switchboard.server.wire.http11_framing import (
    FIELD_BYTES,
    KNOWN_NAMES,
    InvalidResponse,
    check_field,
    merge_content_length,
)

# Fields that only mean something to one HTTP/1.1 connection; RFC 9113 section 8.2.2 makes
# them malformed in HTTP/2, so they are dropped from what an application sends.
CONNECTION_SPECIFIC = frozenset(
    (b"connection", b"keep-alive", b"proxy-connection", b"transfer-encoding", b"upgrade")
)
# ... and framing fields cannot be trailers (RFC 9110 section 6.5.1).
NOT_TRAILERS = CONNECTION_SPECIFIC | {b"content-length", b"trailer", b"host"}

_STATUS = {code: str(code).encode() for code in range(200, 600)}


class RequestHead:
    """The pseudo-fields of a request and its regular fields as ASGI wants them."""

    __slots__ = ("method", "scheme", "authority", "path", "protocol", "headers")

    def __init__(self) -> None:
        self.method = ""
        self.scheme: str | None = None
        self.authority: bytes | None = None
        self.path = b""
        self.protocol: str | None = None  # RFC 8441 extended CONNECT
        self.headers: list[tuple[bytes, bytes]] = []


def parse_request(fields: Iterable[tuple[bytes, bytes]]) -> RequestHead:
    """Split a request field block: pseudo-fields out; ``:authority`` first as ``host`` (the
    ASGI HTTP spec), unless a ``host`` field is there already; ``cookie`` fields, which HTTP/2
    may split, joined with ``"; "`` (RFC 9113 section 8.2.3)."""
    head = RequestHead()
    headers = head.headers
    cookies: list[bytes] = []
    has_host = False
    for name, value in fields:
        if name[:1] == b":":
            if name == b":method":
                head.method = value.decode("ascii")
            elif name == b":path":
                head.path = value
            elif name == b":scheme":
                head.scheme = value.decode("ascii")
            elif name == b":authority":
                head.authority = value
            elif name == b":protocol":
                head.protocol = value.decode("ascii")
        elif name == b"cookie":
            cookies.append(value)
        else:
            if name == b"host":
                has_host = True
            headers.append((name, value))
    if cookies:
        headers.append((b"cookie", b"; ".join(cookies)))
    if head.authority is not None and not has_host:
        headers.insert(0, (b"host", head.authority))
    return head


def split_path(target: bytes) -> tuple[bytes, bytes]:
    """``:path`` -> (path, query string)."""
    path, _, query = target.partition(b"?")
    path = path.partition(b"#")[0]
    return path, query


class ResponseHead:
    """An application's ``http.response.start`` checked and turned into an HTTP/2 block."""

    __slots__ = ("status", "fields", "length")

    def __init__(self, status: int, fields: list[tuple[bytes, bytes]], length: int | None):
        self.status = status
        self.fields = fields
        self.length = length  # the app's content-length, if it set one


def response_head(message: Message, default_headers: list[tuple[bytes, bytes]]) -> ResponseHead:
    """Check ``http.response.start``: a final status, clean fields (names lower-cased, as
    HTTP/2 requires), one content-length. Raises :class:`InvalidResponse`."""
    status = message["status"]
    if status.__class__ is not int:
        if not isinstance(status, int) or isinstance(status, bool):
            raise InvalidResponse(f"Invalid status for a final response: {status!r}")
        status = int(status)
    code = _STATUS.get(status)
    if code is None:
        raise InvalidResponse(f"Invalid status for a final response: {status!r}")
    fields = [(b":status", code)]
    fields.extend(default_headers)
    length: int | None = None
    for name, value in message.get("headers", ()):
        if name not in KNOWN_NAMES or value.__class__ is not bytes:
            check_field(name, value)
        elif value.translate(None, FIELD_BYTES):
            check_field(name, value)  # raises: a byte no field value may hold
        name = name.lower()
        if name in CONNECTION_SPECIFIC:
            continue
        if name == b"content-length":
            length, repeated = merge_content_length(length, value)
            if repeated or status == 204:
                continue  # one field; never on a 204 (RFC 9110 section 8.6)
        fields.append((name, value))
    return ResponseHead(status, fields, length)
