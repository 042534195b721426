"""Origin checking for WebSocket handshakes, mirroring Django's ALLOWED_HOSTS patterns."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any
from urllib.parse import urlsplit

from django.conf import settings
from django.http.request import is_same_domain

from switchboard.integration import checks  # noqa: F401 - registers the checks even if the app is not installed
from switchboard.middleware import ASGIApp


class WebsocketDenier:
    """Refuses a WebSocket before accepting it; servers answer that with HTTP 403."""

    async def __call__(self, scope: dict[str, Any], receive: Callable, send: Callable) -> None:
        while True:
            message = await receive()
            if message["type"] == "websocket.connect":
                await send({"type": "websocket.close"})
            elif message["type"] == "websocket.disconnect":
                return


class OriginValidator:
    """Lets a WebSocket through only if its Origin header matches one of ``allowed_origins``.

    Patterns follow ALLOWED_HOSTS: ``"*"`` matches anything, ``".example.com"`` matches
    the domain and its subdomains, a bare host matches that host on any scheme/port, and
    ``"https://host:port"`` additionally pins scheme and port. A missing Origin (or
    ``Origin: null``) is refused unless ``"*"`` is allowed. Non-WebSocket scopes pass.
    """

    def __init__(self, application: ASGIApp, allowed_origins: Iterable[str]) -> None:
        if isinstance(allowed_origins, str):
            raise TypeError("allowed_origins must be a list of patterns, not a single string")
        self.application = application
        self.allowed_origins = list(allowed_origins)

    async def __call__(self, scope: dict[str, Any], receive: Callable, send: Callable) -> Any:
        if scope["type"] != "websocket":
            return await self.application(scope, receive, send)
        origin = None
        for name, value in scope.get("headers", ()):
            if name == b"origin":
                origin = value.decode("latin1")
                break
        if self.valid_origin(origin):
            return await self.application(scope, receive, send)
        return await WebsocketDenier()(scope, receive, send)

    def valid_origin(self, origin: str | None) -> bool:
        if "*" in self.allowed_origins:
            return True
        if not origin or origin == "null":
            return False
        parsed = urlsplit(origin.lower())
        if not parsed.scheme or not parsed.hostname:
            return False
        try:
            port = parsed.port
        except ValueError:  # garbage port such as "http://host:abc"
            return False
        host = parsed.hostname
        if ":" in host:  # IPv6 literal: ALLOWED_HOSTS spells these in brackets
            host = f"[{host}]"
        return any(self._match(parsed.scheme, host, port, p) for p in self.allowed_origins)

    @staticmethod
    def _match(scheme: str, host: str, port: int | None, pattern: str) -> bool:
        pattern = pattern.lower()
        if "://" not in pattern:
            # Host-only pattern: scheme and port are free, like Django's host validation.
            return is_same_domain(host, pattern)
        allowed = urlsplit(pattern)
        if allowed.scheme != scheme or not allowed.hostname:
            return False
        try:
            allowed_port = allowed.port
        except ValueError:
            return False
        default = {"http": 80, "https": 443, "ws": 80, "wss": 443}.get(scheme)
        if (allowed_port or default) != (port or default):
            return False
        # Match on the raw netloc host so ".example.com" and "[::1]" keep their meaning.
        allowed_host = allowed.netloc.rsplit("@", 1)[-1]
        if allowed_host.startswith("["):
            allowed_host = allowed_host.split("]", 1)[0] + "]"
        else:
            allowed_host = allowed_host.split(":", 1)[0]
        return is_same_domain(host, allowed_host)


class _AllowedHostsOriginValidator(OriginValidator):
    """OriginValidator whose patterns are settings.ALLOWED_HOSTS as they are at each handshake.

    Read per handshake, not when asgi.py builds the app: ``override_settings`` and the
    live-server test case (which adds its host) then apply to an application built earlier.
    """

    def __init__(self, application: ASGIApp) -> None:
        self.application = application

    @property
    def allowed_origins(self) -> list[str]:  # type: ignore[override]
        allowed_hosts = list(settings.ALLOWED_HOSTS)
        if settings.DEBUG and not allowed_hosts:
            # Django's own fallback for development servers.
            allowed_hosts = [".localhost", "127.0.0.1", "[::1]"]
        return allowed_hosts


def AllowedHostsOriginValidator(application: ASGIApp) -> OriginValidator:  # noqa: N802
    """OriginValidator fed from settings.ALLOWED_HOSTS (read at each handshake)."""
    return _AllowedHostsOriginValidator(application)
