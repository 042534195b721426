"""What a trusted proxy says about a request: X-Forwarded-For / -Proto / -Port, and Daphne's
Daphne-Root-Path. Honoured only from trusted peers, and only under ``--proxy-headers``."""

from __future__ import annotations

from typing import Any
from urllib.parse import unquote

# Daphne's header for the mount point: root_path, URL-encoded ASCII, never shown to the app.
ROOT_PATH_HEADER = b"daphne-root-path"


def apply_proxy_headers(scope: dict[str, Any], trusted: set[str] | None) -> None:
    """Rewrite ``client``, ``scheme``, the port of ``server`` (and of ``client``, as Daphne
    does) and ``root_path`` from the headers of a trusted peer.

    ``trusted`` is a set of peer addresses, or ``None`` to trust every peer.
    """
    client = scope.get("client")
    if trusted is not None and (client is None or client[0] not in trusted):
        return
    port = None
    forwarded_client = False
    root: bytes | None = None
    for name, value in scope["headers"]:
        if name == b"x-forwarded-proto":
            proto = value.decode("latin-1").split(",")[0].strip().lower()
            if proto in ("http", "https", "ws", "wss"):
                scope["scheme"] = proto
        elif name == b"x-forwarded-for":
            hops = [h.strip() for h in value.decode("latin-1").split(",") if h.strip()]
            # The nearest hop we do not trust is the real client.
            for hop in reversed(hops):
                if trusted is None or hop not in trusted:
                    scope["client"] = (hop, 0)
                    forwarded_client = True
                    break
        elif name == b"x-forwarded-port":
            # The first value, like the scheme: the port the client connected to.
            first = value.split(b",")[0].strip()
            if first.isdigit() and 0 < int(first) < 65536:
                port = int(first)
        elif name == ROOT_PATH_HEADER:
            root = value
    if port is not None:
        server = scope.get("server")
        scope["server"] = (server[0] if server else None, port)
        if forwarded_client:
            # Daphne puts the port in the client address it took from X-Forwarded-For (and
            # only then: with the proxy's own address it would describe no one).
            scope["client"] = (scope["client"][0], port)
    if root is not None:
        _apply_root_path(scope, root)


def _apply_root_path(scope: dict[str, Any], value: bytes) -> None:
    """``root_path`` from Daphne-Root-Path, which wins over ``--root-path`` as in Daphne; the
    field itself is taken out of ``headers``.

    ``path`` keeps the ASGI rule that it starts with ``root_path``: a proxy that passed the
    path with the prefix on has it kept as it is, one that stripped it has it put back.
    """
    headers = scope["headers"]
    headers[:] = [field for field in headers if field[0] != ROOT_PATH_HEADER]
    try:
        text = value.decode("ascii")
    except UnicodeDecodeError:
        return  # Daphne documents URL-encoded ASCII; anything else is no root path
    root = unquote(text).rstrip("/")  # "/forum/" and "/forum" are one mount point
    if root and not root.startswith("/"):
        return
    # What the client asked for: the path without the configured root prepended to it.
    below = scope["path"][len(scope["root_path"]) :]
    if root and below != root and not below.startswith(root + "/"):
        below = root + below
    scope["root_path"] = root
    scope["path"] = below
