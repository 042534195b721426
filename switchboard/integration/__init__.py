"""Django glue: the settings the Django-free packages read through hooks (``settings``), the
system checks (``checks``), the readiness check (``health``) and the native HTTP path that runs
Django's views in the server's thread pool (``native_http``).

Importing this package registers the native HTTP path with the server
(:func:`install_server_hooks`): whoever imports Django's glue (the app's ``ready()``, the
``switchboard`` command) has Django's own ASGI handler served through it.
"""

from __future__ import annotations

from typing import Any

from switchboard.server.runtime.interfaces import register_app_adapter

__all__ = ["install_server_hooks"]

DJANGO_ASGI_HANDLER = "django.core.handlers.asgi.ASGIHandler"


def _native_http(app: Any) -> Any:
    # Imported when a handler is served: importing this package must not import Django.
    from switchboard.integration.native_http import native_http

    return native_http(app)


def install_server_hooks() -> None:
    """Under ``--interface auto``, serve Django's own ASGI handler (exactly that class) through
    the native Django HTTP path. Done on import; calling it again changes nothing."""
    register_app_adapter(DJANGO_ASGI_HANDLER, _native_http)


install_server_hooks()
