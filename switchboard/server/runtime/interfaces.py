"""Which interface an application speaks (ASGI or WSGI), and faster stand-ins the server swaps in.

``--interface auto`` (the default): an application whose class is registered in
:data:`ADAPTERS` is handed to the adapter given there; a callable taking exactly
``(environ, start_response)`` is served as WSGI; anything else as ASGI 3. ``asgi`` and ``wsgi``
say it outright (and skip the swaps). The adapters are registered by the parts above the server
(:func:`register_app_adapter`; ``switchboard.integration`` registers the native Django HTTP
path for Django's own ASGI handler), so the server names no framework.
"""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Callable
from typing import Any

from switchboard.server.wsgi.adapter import WSGIAdapter

__all__ = [
    "ADAPTERS",
    "INTERFACES",
    "is_wsgi_application",
    "register_app_adapter",
    "resolve_interface",
    "takes_wsgi_arguments",
]

INTERFACES = ("auto", "asgi", "wsgi")

# Exact class (module.qualname) -> what returns the application to serve instead.
ADAPTERS: dict[str, Callable[[Any], Any]] = {}


def register_app_adapter(class_name: str, adapter: Callable[[Any], Any]) -> None:
    """Under ``--interface auto``, serve an application whose class is exactly ``class_name``
    (``"module.QualName"``, subclasses not included) as ``adapter(app)`` returns it."""
    ADAPTERS[class_name] = adapter


def is_wsgi_application(app: Any) -> bool:
    """A plain callable that is not a coroutine function (nor has an async ``__call__``)."""
    if asyncio.iscoroutinefunction(app):
        return False
    call = getattr(app, "__call__", None)  # noqa: B004 - instances with an async __call__
    if call is not None and asyncio.iscoroutinefunction(call):
        return False
    return callable(app)


def takes_wsgi_arguments(app: Any) -> bool:
    """Callable with exactly two positional arguments, as WSGI's ``(environ, start_response)``."""
    if not is_wsgi_application(app):
        return False
    try:
        signature = inspect.signature(app)
    except (TypeError, ValueError):
        return False
    try:
        signature.bind(None, None)
    except TypeError:
        return False
    try:
        signature.bind(None, None, None)
    except TypeError:
        return True
    return False


def resolve_interface(app: Any, interface: str = "auto") -> Any:
    """The ASGI application to serve for ``app``, spoken to as ``interface``."""
    if interface not in INTERFACES:
        raise ValueError(f"interface must be one of {INTERFACES}, not {interface!r}")
    if isinstance(app, WSGIAdapter) or interface == "asgi":
        return app
    if interface == "wsgi":
        return WSGIAdapter(app)
    cls = type(app)
    adapter = ADAPTERS.get(f"{cls.__module__}.{cls.__qualname__}")
    if adapter is not None:
        return adapter(app)
    if takes_wsgi_arguments(app):
        return WSGIAdapter(app)
    return app
