"""The websocket scope a transport session runs its application with, built from the HTTP
request that opened it, and the ``sb_*`` query parameters of transport requests."""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qsl

__all__ = ["Params", "params", "websocket_scope"]

# ASGI's extension for an HTTP answer to a refused handshake: advertised so an application's
# own denial response (and the router's 404 for no route) reaches the client as it would over
# a WebSocket.
DENIAL_RESPONSE = "websocket.http.response"


class Params:
    """The transport's own query parameters (``sb_transport``, ``sb_session``, ``sb_ack``)."""

    __slots__ = ("ack", "session", "transport")

    def __init__(self, transport: str | None, session: str | None, ack: int | None) -> None:
        self.transport = transport
        self.session = session
        self.ack = ack  # None: absent or not a number


def params(query_string: bytes) -> Params:
    found: dict[str, str] = {}
    for key, value in parse_qsl(query_string.decode("latin-1"), keep_blank_values=True):
        if key.startswith("sb_") and key not in found:
            found[key] = value
    ack: int | None
    try:
        ack = int(found["sb_ack"]) if "sb_ack" in found else 0
    except ValueError:
        ack = None
    return Params(found.get("sb_transport"), found.get("sb_session"), ack)


def _without_sb(query_string: bytes) -> bytes:
    # Pieces dropped as they are, not parsed and encoded again: the rest stays byte for byte.
    if b"sb_" not in query_string:
        return query_string
    return b"&".join(p for p in query_string.split(b"&") if p and not p.startswith(b"sb_"))


def _header(headers: list[tuple[bytes, bytes]], name: bytes) -> bytes | None:
    for key, value in headers:
        if key.lower() == name:
            return value
    return None


def _with_origin(headers: list[tuple[bytes, bytes]], scheme: str) -> list[tuple[bytes, bytes]]:
    """Browsers leave ``Origin`` off a same-origin GET (an EventSource): one is added from
    the Host header so origin validators judge the request as they judge a WebSocket's. Not
    when ``Sec-Fetch-Site`` says the request came from another site: that one stays without."""
    if _header(headers, b"origin") is not None:
        return headers
    site = _header(headers, b"sec-fetch-site")
    host = _header(headers, b"host")
    if host is None or (site is not None and site != b"same-origin"):
        return headers
    return [*headers, (b"origin", f"{scheme}://".encode() + host)]


def websocket_scope(http: dict[str, Any], transport: str) -> dict[str, Any]:
    """The websocket scope for the HTTP request ``http`` carrying transport ``transport``."""
    scheme = http.get("scheme", "http")
    # Shared with the HTTP scope, not copied (an idle session is mostly what it holds): ASGI
    # servers give header names lowercased already, and _with_origin makes a new list.
    headers = http.get("headers", [])
    scope: dict[str, Any] = {
        "type": "websocket",
        "asgi": {"version": "3.0", "spec_version": "2.4"},
        "http_version": http.get("http_version", "1.1"),
        "scheme": "wss" if scheme == "https" else "ws",
        "path": http["path"],
        "raw_path": http.get("raw_path"),
        "root_path": http.get("root_path", ""),
        "query_string": _without_sb(http.get("query_string", b"")),
        "headers": _with_origin(headers, scheme),
        "client": http.get("client"),
        "server": http.get("server"),
        "subprotocols": [],
        "extensions": {DENIAL_RESPONSE: {}},
        "transport": transport,
    }
    if "state" in http:
        scope["state"] = dict(http["state"])
    return scope
