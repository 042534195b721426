"""``http.request`` messages answered by Django's views: the route every Channels 1 project has.

The worker calls :class:`DjangoViews` for an ``http.request`` that no route takes. It turns the
message into a WSGI environ (the server's own :func:`~switchboard.server.wsgi.environ.
build_environ`, fed an ASGI scope made from the message), runs Django's WSGI handler, and
sends the response to the reply channel as ``http.response`` messages: ``status``,
``headers`` and ``content`` first, then more ``content`` while ``more_content`` says so. A
request body the interface server did not fit in the message follows on ``body_channel``.
"""

from __future__ import annotations

import io
from collections.abc import Iterable
from typing import Any

from asgiref.sync import async_to_sync

from switchboard.classic.channel import Channel
from switchboard.classic.message import Message
from switchboard.server.wsgi.environ import build_environ

__all__ = ["RESPONSE_CHUNK", "DjangoViews", "scope_of"]

# Response content per http.response message: well under the layers' message limit.
RESPONSE_CHUNK = 256 * 1024


def _text(value: Any) -> str:
    return value.decode("latin-1") if isinstance(value, bytes) else str(value or "")


def _raw(value: Any) -> bytes:
    return value if isinstance(value, bytes) else str(value or "").encode("latin-1")


def scope_of(content: dict[str, Any]) -> dict[str, Any]:
    """The ASGI 3 HTTP scope an ``http.request`` message describes."""
    client, server = content.get("client"), content.get("server")
    return {
        "type": "http",
        "http_version": content.get("http_version", "1.1"),
        "method": _text(content.get("method", "GET")).upper(),
        "scheme": content.get("scheme", "http"),
        "path": _text(content.get("path", "/")),
        "raw_path": None,
        "query_string": _raw(content.get("query_string", b"")),
        "root_path": _text(content.get("root_path", "")),
        "headers": [(_raw(name), _raw(value)) for name, value in content.get("headers", [])],
        "client": tuple(client) if client else None,
        "server": tuple(server) if server else None,
    }


def _body(message: Message) -> bytes:
    body = _raw(message.get("body", b""))
    body_channel = message.get("body_channel")
    if not body_channel:
        return body
    parts = [body]
    receive = async_to_sync(message.channel_layer.receive)
    while True:
        chunk = receive(body_channel)
        if chunk.get("closed"):
            break
        parts.append(_raw(chunk.get("content", b"")))
        if not chunk.get("more_content", False):
            break
    return b"".join(parts)


class DjangoViews:
    """A consumer answering ``http.request`` messages with Django's views (see the module)."""

    def __init__(self) -> None:
        from django.core.handlers.wsgi import WSGIHandler

        self.handler = WSGIHandler()

    def __call__(self, message: Message) -> None:
        reply = message.reply_channel
        if reply is None:
            raise ValueError("An http.request message without reply_channel cannot be answered")
        environ = build_environ(scope_of(message.content), io.BytesIO(_body(message)))
        started: dict[str, Any] = {}

        def start_response(
            status: str, headers: list[tuple[str, str]], exc_info: Any = None
        ) -> Any:
            started["status"] = int(status.split(" ", 1)[0])
            started["headers"] = [[k.encode("latin-1"), v.encode("latin-1")] for k, v in headers]
            return lambda data: None

        response = self.handler(environ, start_response)
        try:
            self._send(reply, started, response)
        finally:
            close = getattr(response, "close", None)
            if close is not None:
                close()

    @staticmethod
    def _send(reply: Channel, started: dict[str, Any], body: Iterable[bytes]) -> None:
        pending = b""
        first = True
        for chunk in body:
            pending += chunk
            while len(pending) > RESPONSE_CHUNK:
                part, pending = pending[:RESPONSE_CHUNK], pending[RESPONSE_CHUNK:]
                reply.send(_response(started, part, first, more=True))
                first = False
        reply.send(_response(started, pending, first, more=False))


def _response(started: dict[str, Any], content: bytes, first: bool, more: bool) -> dict[str, Any]:
    if first:
        return {
            "status": started["status"],
            "headers": started["headers"],
            "content": content,
            "more_content": more,
        }
    return {"content": content, "more_content": more}
