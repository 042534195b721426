"""The ASGI shapes the server's modules share (ASGI 3.0, spec version 2.4).

Scopes and messages are plain dicts at run time; the aliases say which one a signature means,
and the TypedDicts describe the scopes and events the server itself builds.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable, MutableMapping
from typing import Any, Literal, TypedDict

# A scope or a message as applications see them: the spec fixes the keys, not the dict type.
Scope = dict[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

# Header fields as ASGI carries them: lower-case names (in scopes), raw bytes.
Headers = list[tuple[bytes, bytes]]
HeaderIterable = Iterable[tuple[bytes, bytes]]
# (host, port) of a socket; port None for a Unix socket path.
Address = tuple[str, int]


class ASGIVersions(TypedDict):
    version: str
    spec_version: str


class HTTPScope(TypedDict, total=False):
    type: Literal["http"]
    asgi: ASGIVersions
    http_version: str
    server: Address | None
    client: Address | None
    scheme: str
    method: str
    root_path: str
    path: str
    raw_path: bytes
    query_string: bytes
    headers: Headers
    state: dict[str, Any]
    extensions: dict[str, Any]


class WebSocketScope(TypedDict, total=False):
    type: Literal["websocket"]
    asgi: ASGIVersions
    http_version: str
    server: Address | None
    client: Address | None
    scheme: str
    root_path: str
    path: str
    raw_path: bytes
    query_string: bytes
    headers: Headers
    subprotocols: list[str]
    state: dict[str, Any]
    extensions: dict[str, Any]


class HTTPRequestEvent(TypedDict):
    type: Literal["http.request"]
    body: bytes
    more_body: bool


class HTTPDisconnectEvent(TypedDict):
    type: Literal["http.disconnect"]


class WebSocketDisconnectEvent(TypedDict):
    type: Literal["websocket.disconnect"]
    code: int
    reason: str


ASGI_VERSIONS: ASGIVersions = {"version": "3.0", "spec_version": "2.4"}
