"""Routers: pick the ASGI application for a connection by protocol, URL path or channel name."""

from __future__ import annotations

import asyncio
import importlib
import logging
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.urls import URLPattern, URLResolver
from django.urls.resolvers import RoutePattern

from switchboard.classic.routing import (  # Channels 1's names, and its ROUTING setting
    include,
    route,
    route_class,
    router_for,
)

# Registers the system checks, and with them serve's startup check, even if the app is not
# installed.
from switchboard.integration import checks  # noqa: F401
from switchboard.layers.registry import DEFAULT_CHANNEL_LAYER

__all__ = [
    "ChannelNameRouter",
    "include",
    "route",
    "route_class",
    "NoRouteFound",
    "ProtocolTypeRouter",
    "URLRouter",
    "get_default_application",
    "project_application",
]

ASGIApp = Callable[..., Awaitable[None]]

logger = logging.getLogger("switchboard.routing")

# The ASGI extension that lets an application answer a WebSocket handshake with an HTTP
# response of its own (a "denial response"); the server lists it in scope["extensions"].
DENIAL_RESPONSE = "websocket.http.response"
CONNECT_WAIT = 1.0  # seconds


def get_default_application() -> ASGIApp:
    """The application named by ``settings.ASGI_APPLICATION`` (``"module.path.attribute"``)."""
    path = getattr(settings, "ASGI_APPLICATION", None)
    if not path:
        raise ImproperlyConfigured("Cannot find ASGI_APPLICATION setting.")
    module_path, _, attribute = path.rpartition(".")
    if not module_path:
        raise ImproperlyConfigured(
            f"ASGI_APPLICATION {path!r} must be a dotted path like 'mysite.asgi.application'"
        )
    try:
        module = importlib.import_module(module_path)
    except ImportError as exc:
        message = f"Cannot import ASGI_APPLICATION module {module_path!r}"
        raise ImproperlyConfigured(message) from exc
    try:
        return getattr(module, attribute)
    except AttributeError as exc:
        raise ImproperlyConfigured(f"Cannot find {attribute!r} in ASGI_APPLICATION module") from exc


def project_application(serve_static: bool = True) -> Any:
    """The project's ASGI application, as ``manage.py runserver``-style serving wants it.

    ``settings.ASGI_APPLICATION`` when set, else Django's own ASGI handler; a bare Django
    handler becomes the native HTTP path, as under ``switchboard serve`` (the static files
    handler wraps it below, where the server's swap by exact class would no longer see it).
    With ``serve_static`` (and ``STATIC_URL`` configured) HTTP requests under ``STATIC_URL``
    are answered from the static files finders; every other scope, WebSocket included, goes
    straight to the application.
    """
    # Imported on use, not for a cycle: the native HTTP path loads the server's WSGI adapter,
    # which a project run by another ASGI server never needs.
    from switchboard.integration.native_http import native_http

    classic = router_for(DEFAULT_CHANNEL_LAYER)
    modern = bool(getattr(settings, "ASGI_APPLICATION", None))
    if classic is not None:
        # A Channels 1 routing: its workers run in this process, beside the interface server
        # (or beside ASGI_APPLICATION, which may mount the routing with as_asgi()).
        from switchboard.classic.embedded import EmbeddedWorkers

        served = get_default_application() if modern else None
        application: Any = EmbeddedWorkers(classic, DEFAULT_CHANNEL_LAYER, application=served)
    elif modern:
        application = get_default_application()
    else:
        from django.core.asgi import get_asgi_application

        application = get_asgi_application()
    application = native_http(application)
    if serve_static and settings.STATIC_URL:
        # Imported late: staticfiles need not be installed when static serving is off.
        # The handler only intercepts http scopes under STATIC_URL and passes the rest on.
        from django.contrib.staticfiles.handlers import ASGIStaticFilesHandler

        application = ASGIStaticFilesHandler(application)
    return application


def _check_application(app: Any, where: str) -> None:
    # A consumer class passed instead of Consumer.as_asgi() would fail confusingly per request.
    if isinstance(app, type) and hasattr(app, "as_asgi"):
        raise ValueError(f"{where}: pass {app.__name__}.as_asgi(), not the consumer class itself")
    if not callable(app):
        raise ValueError(f"{where}: {app!r} is not an ASGI application")


class ProtocolTypeRouter:
    """Routes by ``scope["type"]`` (``"http"``, ``"websocket"``, ``"channel"`` ...)."""

    def __init__(self, application_mapping: dict[str, ASGIApp]) -> None:
        for protocol, app in application_mapping.items():
            _check_application(app, f"ProtocolTypeRouter[{protocol!r}]")
        if "http" in application_mapping:
            # Django's own ASGI handler -> the native HTTP path (imported on use, as in
            # project_application: it loads the server's WSGI adapter; no cycle).
            from switchboard.integration.native_http import native_http

            http = native_http(application_mapping["http"])
            application_mapping = {**application_mapping, "http": http}
        self.application_mapping = application_mapping

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        app = self.application_mapping.get(scope["type"])
        if app is None:
            raise ValueError(f"No application configured for scope type {scope['type']!r}")
        if scope["type"] != "websocket":
            if (
                scope["type"] == "http"
                # find(), not ``in``: on Python 3.11 ``bytes in bytes`` first tries the operand
                # as an int, raising and clearing a TypeError, on every request.
                and scope.get("query_string", b"").find(b"sb_transport=") >= 0
                and "websocket" in self.application_mapping
            ):
                # A WebSocket session over SSE or long-polling: the websocket application runs
                # through this router (so an unrouted path is refused as a handshake is).
                from switchboard.transports import serve_transport

                if await serve_transport(scope, receive, send, self):
                    return
            await app(scope, receive, send)
            return
        try:
            await app(scope, receive, send)
        except NoRouteFound as exc:
            # No route at all for this handshake: a client's mistake (a stale page, a scanner),
            # not the application's, so it is refused with one warning, not a 500 and a
            # traceback. The routers below raise it so an outer router can try its next route.
            if not await _refuse_unrouted(scope, receive, send, exc):
                raise


async def _refuse_unrouted(
    scope: dict[str, Any], receive: Any, send: Any, miss: NoRouteFound
) -> bool:
    """Refuse a WebSocket handshake nothing routes: 404 where the server takes a denial
    response, else a close before accept (which the server sends as 403, per the ASGI spec).
    False when the handshake cannot be refused any more (the application got further)."""
    try:
        # Servers queue websocket.connect before the application starts: waiting longer means
        # the application read it already (and maybe accepted), so it is not ours to answer.
        message = await asyncio.wait_for(receive(), CONNECT_WAIT)
    except TimeoutError:
        return False
    if message["type"] != "websocket.connect":
        return message["type"] == "websocket.disconnect"  # the client left: nothing to say
    path = scope.get("path", "")
    if DENIAL_RESPONSE in (scope.get("extensions") or {}):
        status = 404
        start = {
            "type": "websocket.http.response.start",
            "status": status,
            "headers": [(b"content-type", b"text/plain; charset=utf-8")],
        }
        body = {"type": "websocket.http.response.body", "body": b"Not Found\n"}
        messages = [start, body]
    else:
        status = 403
        messages = [{"type": "websocket.close"}]
    logger.warning("No route for WebSocket path %r: handshake refused with %d", path, status)
    for message in messages:
        await send(message)
    return True


class NoRouteFound(ValueError):
    """No route of a URLRouter matches the path (a ValueError, as Channels raises)."""

    def __init__(self, path: str, url_route: dict[str, Any] | None = None) -> None:
        super().__init__(f"No route found for path {path!r}.")
        # The scope["url_route"] the failing router was given (None at the outermost router):
        # the outer router that built that very dict knows the miss answers its own attempt.
        self.url_route = url_route


def _path_below_root(scope: dict[str, Any]) -> str:
    """``scope["path"]`` without ``scope["root_path"]``, which it must start with.

    Per ASGI, ``path`` is the full path and ``root_path`` the prefix the application is mounted
    at (WSGI's SCRIPT_NAME). A path outside that prefix was never meant for this application,
    so it is refused rather than routed as if it had no prefix. The prefix must end at a
    segment boundary: root ``/app`` owns ``/app`` and ``/app/...``, not ``/apple``.
    """
    path = scope.get("path")
    if path is None:
        raise ValueError("No 'path' key in connection scope, cannot route URLs")
    root_path = scope.get("root_path") or ""
    root = root_path.rstrip("/")
    if not root:
        return path
    if path != root and not path.startswith(root + "/"):
        raise ValueError(
            f"Path {path!r} is not under the scope's root_path {root_path!r}: the server "
            "mounted the application there, so it cannot route this path"
        )
    return path[len(root) :]


def _included_patterns(resolver: URLResolver) -> list[Any]:
    """The patterns behind ``include(...)``: a list, or a module's routing list.

    A module is searched for ``websocket_urlpatterns`` first (the usual name in a routing.py),
    then ``urlpatterns`` (what Django's include() itself looks for).
    """
    module = resolver.urlconf_module
    if isinstance(module, (list, tuple)):
        return list(module)
    for name in ("websocket_urlpatterns", "urlpatterns"):
        patterns = getattr(module, name, None)
        if patterns is not None:
            return list(patterns)
    raise ImproperlyConfigured(
        f"include({getattr(module, '__name__', module)!r}) in a URLRouter: the module defines "
        "neither 'websocket_urlpatterns' nor 'urlpatterns'"
    )


class URLRouter:
    """Routes by path using Django ``path()`` / ``re_path()`` patterns.

    Patterns match the path without its leading slash (like Django's URLconf). A route whose
    application is another URLRouter, or an ``include()`` of a pattern list or routing module,
    matches a prefix; the rest of the path goes to the inner patterns, and captured arguments
    of both levels end up merged in ``scope["url_route"]``.
    """

    def __init__(self, routes: Iterable[URLPattern | URLResolver]) -> None:
        self.routes: list[tuple[Any, ASGIApp, dict[str, Any]]] = []
        for entry in routes:
            if isinstance(entry, URLResolver):
                # include(): its pattern is already a prefix match; route the rest through a
                # router built from the included patterns, exactly like a nested URLRouter.
                inner = URLRouter(_included_patterns(entry))
                self.routes.append((entry.pattern, inner, dict(entry.default_kwargs or {})))
                continue
            if not isinstance(entry, URLPattern):
                raise ValueError(f"URLRouter routes must be path()/re_path() entries: {entry!r}")
            app = entry.callback
            _check_application(app, f"URLRouter route {entry.pattern}")
            pattern = entry.pattern
            if isinstance(app, URLRouter) and isinstance(pattern, RoutePattern):
                # path() builds endpoint patterns (whole-path matches); a nested router needs
                # a prefix match, as include() would get.
                pattern = RoutePattern(pattern._route, name=pattern.name, is_endpoint=False)
            self.routes.append((pattern, app, dict(entry.default_args or {})))

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if "path_remaining" in scope:
            path = scope["path_remaining"]
        else:
            path = _path_below_root(scope)
            path = path[1:] if path.startswith("/") else path
        for pattern, app, default_kwargs in self.routes:
            match = pattern.match(path)
            if not match:
                continue
            remaining, args, kwargs = match
            outer = scope.get("url_route", {"args": (), "kwargs": {}})
            url_route = {
                "args": (*outer["args"], *args),
                "kwargs": {**outer["kwargs"], **default_kwargs, **kwargs},
            }
            inner_scope = dict(scope, path_remaining=remaining, url_route=url_route)
            try:
                await app(inner_scope, receive, send)
            except NoRouteFound as exc:
                # A nested router (maybe behind middleware, which copies the scope but keeps
                # its values) matched none of its routes for the scope built just above: this
                # prefix was a false lead and later routes get their turn, as in Channels.
                # A miss raised for any other scope is the inner application's own error.
                if exc.url_route is not url_route:
                    raise
                continue
            return
        raise NoRouteFound(scope.get("path", path), scope.get("url_route"))


class ChannelNameRouter:
    """Routes ``channel`` scopes (from the worker) by ``scope["channel"]``."""

    def __init__(self, application_mapping: dict[str, ASGIApp]) -> None:
        for channel, app in application_mapping.items():
            _check_application(app, f"ChannelNameRouter[{channel!r}]")
        self.application_mapping = application_mapping

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if "channel" not in scope:
            raise ValueError(
                "ChannelNameRouter got a scope without a 'channel' key; it only routes "
                "worker ('channel') connections: put it under ProtocolTypeRouter's 'channel'"
            )
        app = self.application_mapping.get(scope["channel"])
        if app is None:
            raise ValueError(f"No application configured for channel {scope['channel']!r}")
        await app(scope, receive, send)
