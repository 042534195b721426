"""Callbacks run when a server begins its graceful shutdown.

The server closes WebSockets itself (1001), but some applications hold connections the server
only sees as HTTP responses that never end: an SSE stream, a held long-poll. Code that knows
them registers a hook here (``switchboard.transports`` does); ``Server.shutdown`` calls every
hook, in its event loop, right after it stops accepting, so those responses end at once and
their clients reconnect elsewhere, instead of holding the shutdown until its timeout.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

__all__ = ["ShutdownHook", "add_shutdown_hook", "run_shutdown_hooks"]

logger = logging.getLogger("switchboard.server")

ShutdownHook = Callable[[], None]

_hooks: list[ShutdownHook] = []


def add_shutdown_hook(hook: ShutdownHook) -> None:
    """Call ``hook()`` at the start of every graceful shutdown of a server in this process;
    adding the same hook again does nothing."""
    if hook not in _hooks:
        _hooks.append(hook)


def run_shutdown_hooks() -> None:
    """Call the hooks in the order they were added; one that raises is logged, not fatal."""
    for hook in list(_hooks):
        try:
            hook()
        except Exception:
            logger.exception("Shutdown hook %r raised", hook)
