"""Refuse, at startup, objects that cannot be ASGI applications (instead of a 500 per request).

An ASGI application is ``await app(scope, receive, send)``. The usual mistakes are caught by
their shape alone, without calling anything: a consumer class served without ``.as_asgi()``,
a WSGI application (``app(environ, start_response)``), and objects that are not callable.
Anything we cannot introspect is given the benefit of the doubt.
"""

from __future__ import annotations

import inspect
from typing import Any

ASGI_CALL = "app(scope, receive, send)"


class AppShapeError(TypeError):
    """The object named as the application is not an ASGI application."""


def check_asgi_app(app: Any, name: str | None = None) -> None:
    """Raise :class:`AppShapeError` when ``app`` visibly cannot be called as ASGI 3."""
    label = repr(name) if name else _describe(app)
    if not callable(app):
        raise AppShapeError(
            f"{label} is not callable (it is a {type(app).__name__}); an ASGI application "
            f"is an async callable {ASGI_CALL}"
        )
    if inspect.isclass(app):
        # Consumers (ours and Channels') make their ASGI application with as_asgi().
        if hasattr(app, "as_asgi"):
            attr = name.rpartition(":")[2] if name else app.__name__
            raise AppShapeError(
                f"{label} is a consumer class, not an ASGI application: did you mean "
                f"{attr}.as_asgi()? (e.g. `application = {app.__name__}.as_asgi()` in a "
                "module you serve)"
            )
        return  # Instantiation might be a valid call; nothing reliable to say.
    arity = _positional_arity(app)
    if arity is None or arity[0] <= 3 <= arity[1]:
        return
    positional = arity[0] if arity[0] > 3 else arity[1]
    if positional == 2 and not _is_async(app):
        raise AppShapeError(
            f"{label} looks like a WSGI application (it takes environ, start_response) but is "
            "served as ASGI (--interface asgi): serve it with --interface wsgi (or auto, the "
            "default), or for Django give get_asgi_application() (django.core.asgi)"
        )
    raise AppShapeError(
        f"{label} takes {positional} positional argument{'s' if positional != 1 else ''}; "
        f"an ASGI application is called as {ASGI_CALL}"
    )


def _describe(app: Any) -> str:
    return getattr(app, "__qualname__", None) or type(app).__qualname__


def _positional_arity(app: Any) -> tuple[int, int] | None:
    """(required, accepted) positional arguments of ``app``; ``None`` when not bounded."""
    try:
        signature = inspect.signature(app)
    except (TypeError, ValueError):
        return None  # builtins, some C extensions: cannot tell
    required = accepted = 0
    for param in signature.parameters.values():
        if param.kind is param.VAR_POSITIONAL:
            return None
        if param.kind in (param.POSITIONAL_ONLY, param.POSITIONAL_OR_KEYWORD):
            accepted += 1
            required += param.default is param.empty
    return required, accepted


def _is_async(app: Any) -> bool:
    # The __call__ attribute itself (not callable()): is the call a coroutine function?
    call = app if inspect.isroutine(app) else getattr(app, "__call__", None)  # noqa: B004
    return inspect.iscoroutinefunction(inspect.unwrap(call)) if call is not None else False
