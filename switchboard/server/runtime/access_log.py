"""One access-log format for HTTP requests and WebSocket connections.

Every line starts with the client and the request line, as an operator greps for them::

    127.0.0.1:53412 - "GET /path?q=1 HTTP/1.1" 200 1234 3.2ms
    127.0.0.1:53412 - "WEBSOCKET /ws/chat/ HTTP/1.1" 101 - 4.1ms
    127.0.0.1:53412 - "WEBSOCKET /ws/chat/" closed 1001 by server after 12.3s, 40 in / 52 out
    127.0.0.1:53412 - "POST /upload HTTP/1.1" 413 129 -

HTTP: status, bytes written for the response (head included, like nginx's ``$bytes_sent``)
and the time from the end of the request head to the end of the application (``-`` for a
request the server refused itself; ``"-"`` for the request when its head could not be parsed).
WebSocket: the
handshake's status (101, or the refusal's status) and the time the application took to answer
it; then, for an accepted connection, a line when it closes: the close code of the closing
handshake's first close frame, which side sent it (``abnormally`` when the connection ended
without one: code 1006), how long it was open and the messages received and sent.

The lines go to the ``switchboard.server.access`` logger at INFO. Protocols ask
:func:`enabled` once per request or connection, so a server with the access log off pays
nothing more per request.

Each line is an :class:`AccessLine`: the text above, carrying its parts as ``fields`` for a
structured formatter (``--log-format json``): ``event`` (``http``, ``websocket.handshake``,
``websocket.close``), ``client``, ``method``, ``path``, ``query``, ``protocol``, ``status``,
``size`` and ``duration`` (seconds, ``None`` when the server answered itself); close lines
have ``close_code``, ``closed_by``, ``messages_in`` and ``messages_out`` instead of the
status and size. Call sites log it as the message, unchanged.

A note from the application (:data:`NOTE_EXTENSION`): while the access log is on, a WebSocket
connection's scope carries ``scope["extensions"]["switchboard.access_log"]``, an empty dict of
its own. A ``str`` the application puts under ``"note"`` in it (gateway mode: the worker serving
the connection) ends the connection's lines written from then on, in brackets (the close line;
the handshake line too when set before the answer), and is the ``note`` field in JSON::

    127.0.0.1:53412 - "WEBSOCKET /ws/chat/" closed 1000 by client after 3.0s, 4 in / 4 out [w1]

The dict is read once per line, never per message.
"""

from __future__ import annotations

import logging
from typing import Any

__all__ = [
    "NOTE_EXTENSION",
    "NOTE_KEY",
    "AccessLine",
    "access_logger",
    "enabled",
    "http_line",
    "note_of",
    "refused_line",
    "ws_close_line",
    "ws_handshake_line",
]

access_logger = logging.getLogger("switchboard.server.access")

# The scope extension through which an application adds a note to its connection's lines.
NOTE_EXTENSION = "switchboard.access_log"
NOTE_KEY = "note"


class AccessLine(str):
    """An access-log line: the text, with its parts in ``fields``."""

    fields: dict[str, Any]


def _line(text: str, fields: dict[str, Any]) -> AccessLine:
    line = AccessLine(text)
    line.fields = fields
    return line


def _request_fields(scope: dict[str, Any], event: str, method: str) -> dict[str, Any]:
    query = scope.get("query_string")
    return {
        "event": event,
        "client": client_text(scope.get("client")),
        "method": method,
        "path": scope.get("path", ""),
        "query": query.decode("latin-1") if query else "",
        "protocol": f"HTTP/{scope.get('http_version', '1.1')}",
    }


def enabled(config: Any) -> bool:
    """Should this request/connection be logged? (``--access-log`` and the logger's level)."""
    return bool(config.access_log) and access_logger.isEnabledFor(logging.INFO)


def client_text(client: Any) -> str:
    """``host:port`` (``[v6]:port``) of ``scope["client"]``, ``-`` when there is none."""
    if not client:
        return "-"
    host, port = client[0], client[1]
    if port is None:
        return str(host)
    return f"[{host}]:{port}" if ":" in str(host) else f"{host}:{port}"


def target_text(scope: dict[str, Any]) -> str:
    """The request target as the application saw it: path (with root_path) and query."""
    query = scope.get("query_string")
    path = scope.get("path", "")
    return f"{path}?{query.decode('latin-1')}" if query else path


def _request_text(scope: dict[str, Any]) -> str:
    return f"{scope.get('method', '-')} {target_text(scope)} HTTP/{scope.get('http_version')}"


def http_line(scope: dict[str, Any], status: int, size: int, seconds: float) -> AccessLine:
    client = client_text(scope.get("client"))
    request = _request_text(scope)
    fields = _request_fields(scope, "http", scope.get("method", "-"))
    fields.update(status=status, size=size, duration=round(seconds, 6))
    return _line(f'{client} - "{request}" {status} {size} {seconds * 1000.0:.1f}ms', fields)


def refused_line(client: Any, scope: dict[str, Any] | None, status: int, size: int) -> AccessLine:
    """A request the server answered itself, no application involved (``400``, ``413``,
    ``431``): ``-`` for the time, and for the request when its head was not parsed."""
    fields: dict[str, Any]
    if scope is None:
        request = "-"
        fields = {"event": "http", "client": client_text(client), "method": None}
        fields.update(path=None, query=None, protocol=None)
    else:
        request = _request_text(scope)
        fields = _request_fields(scope, "http", scope.get("method", "-"))
        fields["client"] = client_text(client)
    fields.update(status=status, size=size, duration=None)
    return _line(f'{client_text(client)} - "{request}" {status} {size} -', fields)


def note_of(extension: dict[str, Any] | None) -> str | None:
    """The note an application left in its :data:`NOTE_EXTENSION` dict, if a ``str``; made
    printable (escaped) so that it cannot break the line."""
    if not extension:
        return None
    note = extension.get(NOTE_KEY)
    if not isinstance(note, str):
        return None
    return note if note.isprintable() else note.encode("unicode_escape").decode("ascii")


def _noted(text: str, fields: dict[str, Any], note: str | None) -> AccessLine:
    if note is None:
        return _line(text, fields)
    fields[NOTE_KEY] = note
    return _line(f"{text} [{note}]", fields)


def ws_handshake_line(
    scope: dict[str, Any], status: int, seconds: float, note: str | None = None
) -> AccessLine:
    client = client_text(scope.get("client"))
    request = f"WEBSOCKET {target_text(scope)} HTTP/{scope.get('http_version', '1.1')}"
    fields = _request_fields(scope, "websocket.handshake", "WEBSOCKET")
    fields.update(status=status, size=None, duration=round(seconds, 6))
    return _noted(f'{client} - "{request}" {status} - {seconds * 1000.0:.1f}ms', fields, note)


def ws_close_prefix(scope: dict[str, Any]) -> AccessLine:
    """What the close line starts with; kept at the handshake, after which the scope goes."""
    text = f'{client_text(scope.get("client"))} - "WEBSOCKET {target_text(scope)}"'
    return _line(text, _request_fields(scope, "websocket.close", "WEBSOCKET"))


def ws_close_line(
    prefix: str,
    code: int,
    by: str | None,
    seconds: float,
    received: int,
    sent: int,
    note: str | None = None,
) -> AccessLine:
    """``by``: ``"client"`` or ``"server"``, ``None`` when no close frame was exchanged."""
    who = f"by {by}" if by else "abnormally"
    fields = dict(getattr(prefix, "fields", {}))
    fields.update(close_code=code, closed_by=by, duration=round(seconds, 6))
    fields.update(messages_in=received, messages_out=sent)
    text = f"{prefix} closed {code} {who} after {seconds:.1f}s, {received} in / {sent} out"
    return _noted(text, fields, note)
