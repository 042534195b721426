"""Base class for ASGI middleware that decorates the scope before the inner app sees it."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

ASGIApp = Callable[..., Awaitable[None]]


class BaseMiddleware:
    """Wraps an inner ASGI application; subclasses add keys to a private copy of the scope.

    The copy matters: the server may reuse the scope dict it passed in, and one
    middleware's additions must not leak outward to the layers that wrapped it.
    """

    def __init__(self, inner: ASGIApp) -> None:
        self.inner = inner

    async def __call__(self, scope: dict[str, Any], receive: Callable, send: Callable) -> Any:
        scope = dict(scope)
        return await self.inner(scope, receive, send)
