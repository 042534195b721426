"""X-Forwarded-For / -Proto / -Port, honoured only from trusted peers."""

from __future__ import annotations

from typing import Any


def apply_proxy_headers(scope: dict[str, Any], trusted: set[str] | None) -> None:
    """Rewrite ``client``, ``scheme`` and the port of ``server`` from the forwarding headers of
    a trusted peer.

    ``trusted`` is a set of peer addresses, or ``None`` to trust every peer.
    """
    client = scope.get("client")
    if trusted is not None and (client is None or client[0] not in trusted):
        return
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
                    break
        elif name == b"x-forwarded-port":
            # The first value, like the scheme: the port the client connected to.
            port = value.split(b",")[0].strip()
            if port.isdigit() and 0 < int(port) < 65536:
                server = scope.get("server")
                scope["server"] = (server[0] if server else None, int(port))
