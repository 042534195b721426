"""The WebSocket opening handshake without I/O: what the request offers, the sans-I/O protocol
that answers it, and denial responses (``websocket.http.response.*``) put together.

The HTTP side has parsed the upgrade request already; these turn its ASGI scope into what the
``websockets`` sans-I/O protocol checks (:func:`upgrade_request`), and build the protocol that
answers it and then parses the connection's frames (:func:`frame_protocol`). Writing the answer
is the connection's business (``connections/ws_handshake.py``).
"""

from __future__ import annotations

from http import HTTPStatus
from typing import Any

from websockets.datastructures import Headers
from websockets.frames import Opcode
from websockets.http11 import Request, Response
from websockets.protocol import State
from websockets.server import ServerProtocol

from switchboard.server.asgi.types import Message, Scope

__all__ = [
    "DenialResponse",
    "FrameProtocol",
    "frame_protocol",
    "offered_subprotocols",
    "reason_phrase",
    "upgrade_request",
]


class FrameProtocol(ServerProtocol):
    """``websockets``' server protocol, with a close allowed between a message's fragments."""

    def recv_frame(self, frame: Any) -> None:
        # RFC 6455 5.4 lets control frames, close included, interleave with the fragments of a
        # message; websockets treats a close there as a protocol error. The unfinished message
        # is dropped either way, so forget it and run the normal closing handshake.
        if frame.opcode is Opcode.CLOSE:
            self.current_size = None
        super().recv_frame(frame)


def frame_protocol(per_message_deflate: bool, max_size: int | None) -> FrameProtocol:
    """The sans-I/O protocol of one connection, its request already parsed by the HTTP side
    (state OPEN: the frame parser runs from the start; ``accept()`` makes the 101)."""
    extensions = None
    if per_message_deflate:
        from websockets.extensions.permessage_deflate import ServerPerMessageDeflateFactory

        extensions = [ServerPerMessageDeflateFactory()]
    return FrameProtocol(
        extensions=extensions,
        select_subprotocol=_no_subprotocol,
        state=State.OPEN,
        max_size=max_size,
    )


def _no_subprotocol(protocol: ServerProtocol, offered: Any) -> None:
    # The application picks the subprotocol later, in websocket.accept.
    return None


def offered_subprotocols(headers: list[tuple[bytes, bytes]]) -> list[str]:
    """The scope's ``subprotocols``: every Sec-WebSocket-Protocol token, in order."""
    offered: list[str] = []
    for name, value in headers:
        if name == b"sec-websocket-protocol":
            offered.extend(p.strip() for p in value.decode("latin-1").split(",") if p.strip())
    return offered


def upgrade_request(scope: Scope) -> Request:
    """The upgrade request of ``scope`` as ``websockets`` checks it."""
    path = scope.get("raw_path") or scope["path"].encode()
    qs = scope.get("query_string") or b""
    target = path.decode("latin-1") + ("?" + qs.decode("latin-1") if qs else "")
    return Request(
        target,
        Headers((k.decode("latin-1"), v.decode("latin-1")) for k, v in scope["headers"]),
        method=scope.get("method", "GET"),
        protocol="HTTP/" + scope.get("http_version", "1.1"),
    )


def reason_phrase(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return ""


class DenialResponse:
    """An HTTP response the application sends instead of accepting (the ASGI
    ``websocket.http.response`` extension), collected until its body ends."""

    __slots__ = ("status", "headers", "body")

    def __init__(self, message: Message, headers: Headers) -> None:
        """``message``: its ``websocket.http.response.start``; ``headers``: the server's own
        fields, to which the application's are added."""
        self.status = int(message["status"])
        for name, value in message.get("headers") or ():
            headers[name.decode("latin-1")] = value.decode("latin-1")
        self.headers = headers
        self.body: list[bytes] = []

    def add(self, message: Message) -> Response | None:
        """Add a ``websocket.http.response.body``; the complete response once it is the last."""
        body = message.get("body") or b""
        if body:
            self.body.append(body)
        if message.get("more_body"):
            return None
        content = b"".join(self.body)
        headers = self.headers
        if "Content-Length" not in headers:
            headers["Content-Length"] = str(len(content))
        headers["Connection"] = "close"
        return Response(self.status, reason_phrase(self.status), headers, content)
