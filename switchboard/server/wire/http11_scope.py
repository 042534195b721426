"""An HTTP/1.1 request head as an ASGI ``http`` scope, without I/O.

The connection parses the head (httptools) and knows its own addresses; this turns the two
into the scope the application gets: the request target split into path and query string
(percent-decoded path, ``root_path`` in front), the header fields as read, the extensions the
server offers.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import unquote

import httptools

from switchboard.server.asgi.types import Scope

__all__ = ["request_scope"]


def request_scope(
    method: str,
    target: bytes,
    http_version: str,
    headers: list[tuple[bytes, bytes]],
    root_path: str,
    server: Any,
    client: tuple[str, int] | None,
    scheme: str,
    app_state: dict[str, Any],
    tls: dict[str, Any] | None,
) -> Scope:
    """The scope of one request: ``target`` is the request target as sent, ``headers`` its
    fields (names lower-cased), ``app_state`` the lifespan state the scope gets a copy of and
    ``tls`` the ASGI tls extension of a TLS connection."""
    path = target.decode("ascii", "replace")
    if path[:1] != "/" or "?" in path or "#" in path:
        # Not origin-form without a query, the common case whose target is the path as it
        # is (what parse_url returns for any such target llhttp accepted). Checked on the
        # str: ``bytes in bytes`` costs a raised and cleared TypeError on Python 3.11.
        if method == "CONNECT":
            raw_path, query = target, b""  # authority-form (RFC 9112 section 3.2.3)
        else:
            parsed = httptools.parse_url(target)
            raw_path, query = parsed.path or b"", parsed.query or b""
        path = raw_path.decode("ascii", "replace")
    else:
        raw_path, query = target, b""
    if "%" in path:
        path = unquote(path)
    scope: Scope = {
        "type": "http",
        "asgi": {"version": "3.0", "spec_version": "2.4"},
        "http_version": http_version,
        "server": server,
        "client": client,
        "scheme": scheme,
        "method": method,
        "root_path": root_path,
        "path": root_path + path,
        "raw_path": raw_path,
        "query_string": query,
        "headers": headers,
        "state": app_state.copy(),
        "extensions": {"http.response.pathsend": {}, "http.response.trailers": {}},
    }
    if tls is not None:
        scope["extensions"]["tls"] = tls
    return scope
